//! Encryption at rest, end to end against a real `quiver-server`: after writing known sentinel
//! identifiers and values with encryption on, no file under the data dir or in the offline
//! store holds them in plaintext, WAL and SST files included (and, as a control, without
//! encryption they are found); everything still reads
//! back through GetRecord and SQL, after a restart and after a key rotation; pyarrow decrypts
//! an offline file through a KMS client of its own; a missing or wrong key is a clear error;
//! the AWS KMS provider round-trips against moto.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quiver_client::{Client, pb, value};
use quiver_tests::aws::{AWS_ENV, Moto, python};
use quiver_tests::{TestServer, fdef, feature};

const GROUP: &str = "patients";

fn group(kms_key_id: Option<&str>) -> pb::CreateFeatureGroupRequest {
    let key = kms_key_id.unwrap_or_default().to_string();
    pb::CreateFeatureGroupRequest {
        feature_group_name: GROUP.into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            fdef("id", pb::FeatureType::String),
            fdef("ts", pb::FeatureType::String),
            fdef("diagnosis", pb::FeatureType::String),
            fdef("age", pb::FeatureType::Integral),
        ],
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            kms_key_id: key.clone(),
            ..Default::default()
        }),
        offline_store_config: Some(pb::OfflineStoreConfig {
            kms_key_id: key,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A value no file could hold by chance.
fn sentinel() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("SENTINEL-{nanos:x}-PII")
}

/// The identifier of record `i`: as personal as identifiers often are.
fn id(sentinel: &str, i: usize) -> String {
    format!("{}-{i}@example.com", sentinel.to_lowercase())
}

async fn write(client: &Client, sentinel: &str, n: usize) {
    for i in 0..n {
        client
            .put_record(pb::PutRecordRequest {
                feature_group_name: GROUP.into(),
                record: vec![
                    value::string("id", id(sentinel, i)),
                    value::string("ts", "2026-01-01T00:00:00Z"),
                    value::string("diagnosis", format!("{sentinel} #{i}")),
                    value::integral("age", 40 + i as i64),
                ],
                ..Default::default()
            })
            .await
            .expect("PutRecord");
    }
}

/// Writes and deletes records with identifiers and values made from `sentinel` through each
/// other way in: PutRecords, soft and hard DeleteRecord, `quiver ingest` of a CSV file (in
/// `scratch`, outside the data dir), and boto3's PutRecord and DeleteRecord over HTTP.
async fn write_through_every_api(
    server: &TestServer,
    client: &Client,
    sentinel: &str,
    scratch: &Path,
) {
    let record = |i: usize| pb::PutRecordRequest {
        feature_group_name: GROUP.into(),
        record: vec![
            value::string("id", id(sentinel, i)),
            value::string("ts", "2026-01-01T00:00:00Z"),
            value::string("diagnosis", format!("{sentinel} #{i}")),
        ],
        ..Default::default()
    };
    let batch = client
        .put_records(pb::PutRecordsRequest {
            records: (100..103).map(record).collect(),
        })
        .await
        .expect("PutRecords");
    assert_eq!(batch.outcomes.len(), 3, "{batch:?}");
    for (i, mode) in [
        (100, pb::DeletionMode::SoftDelete),
        (101, pb::DeletionMode::HardDelete),
    ] {
        client
            .delete_record(pb::DeleteRecordRequest {
                feature_group_name: GROUP.into(),
                record_identifier_value_as_string: id(sentinel, i),
                event_time: "2026-01-02T00:00:00Z".into(),
                deletion_mode: mode.into(),
                ..Default::default()
            })
            .await
            .expect("DeleteRecord");
    }
    let csv = scratch.join("records.csv");
    let rows: String = (200..205)
        .map(|i| {
            format!(
                "{},2026-01-01T00:00:00Z,{sentinel} csv #{i},{i}\n",
                id(sentinel, i)
            )
        })
        .collect();
    std::fs::write(&csv, format!("id,ts,diagnosis,age\n{rows}")).unwrap();
    server.cli(&["ingest", GROUP, csv.to_str().unwrap(), "--no-progress"]);
    assert_eq!(
        diagnosis(client, &id(sentinel, 203)).await.unwrap(),
        format!("{sentinel} csv #203")
    );
    let endpoint = format!("http://{}", server.http);
    let owned = sentinel.to_string();
    let written = tokio::task::spawn_blocking(move || {
        python("sentinel_writes.py", &[&endpoint, GROUP, &owned])
    })
    .await
    .unwrap();
    assert_eq!(written["written"].as_array().unwrap().len(), 2, "{written}");
}

async fn diagnosis(client: &Client, id: &str) -> Result<String, quiver_client::ClientError> {
    let read = client
        .get_record(pb::GetRecordRequest {
            feature_group_name: GROUP.into(),
            record_identifier_value_as_string: id.into(),
            ..Default::default()
        })
        .await?;
    Ok(feature(&read.record, "diagnosis")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default())
}

async fn group_arn(client: &Client) -> String {
    client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: GROUP.into(),
        })
        .await
        .unwrap()
        .feature_group_arn
}

/// Every file under `root` (none if it does not exist).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Every file under `root` that holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|path| {
            std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// Waits until the offline store holds a file.
async fn wait_for_files(root: &Path) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files = parquet_files(root);
        if !files.is_empty() {
            return files;
        }
        assert!(Instant::now() < deadline, "no offline file within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sql_diagnoses(client: &Client) -> Result<Vec<String>, quiver_client::ClientError> {
    let (_, batches) = client
        .query(&format!("SELECT diagnosis FROM {GROUP} ORDER BY diagnosis"))
        .await?;
    let mut out = Vec::new();
    for batch in batches {
        let column = arrow::array::cast::as_string_array(batch.column(0));
        out.extend(column.iter().map(|v| v.unwrap_or_default().to_string()));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_stored_in_plaintext_and_rotation_keeps_data_readable() {
    const N: usize = 20;
    let args = ["--offline-flush-interval-ms", "100"];

    // Control: without encryption the sentinel is on disk, so the scan below can see it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("plain");
    let server = TestServer::start_in(&data, &args).await;
    let client = server.client().await;
    client.create_feature_group(group(None)).await.unwrap();
    let plain = sentinel();
    write(&client, &plain, N).await;
    wait_for_files(&data.join("offline-store")).await;
    assert!(
        !files_holding(&data, plain.as_bytes()).is_empty(),
        "the control found no plaintext: the scan is blind"
    );
    assert!(
        !files_holding(&data, id(&plain, 0).as_bytes()).is_empty(),
        "the control found no plaintext identifier: the scan is blind"
    );
    server.stop().await;

    // With encryption at rest.
    let data = dir.path().join("encrypted");
    let mut encrypted_args = args.to_vec();
    encrypted_args.push("--encrypt-at-rest");
    let server = TestServer::start_in(&data, &encrypted_args).await;
    let client = server.client().await;
    client.create_feature_group(group(None)).await.unwrap();
    let secret = sentinel();
    write(&client, &secret, N).await;
    assert_eq!(
        diagnosis(&client, &id(&secret, 3)).await.unwrap(),
        format!("{secret} #3")
    );
    let files = wait_for_files(&data.join("offline-store")).await;
    let mut expected: Vec<String> = (0..N).map(|i| format!("{secret} #{i}")).collect();
    expected.sort();
    assert_eq!(
        sql_diagnoses(&client).await.unwrap(),
        expected,
        "SQL decrypts the files"
    );
    let arn = group_arn(&client).await;
    write_through_every_api(&server, &client, &secret, dir.path()).await;
    server.stop().await;
    let leaked = files_holding(&data, secret.as_bytes());
    assert!(leaked.is_empty(), "plaintext sentinel in {leaked:?}");
    let leaked = files_holding(&data, secret.to_lowercase().as_bytes());
    assert!(leaked.is_empty(), "plaintext identifier in {leaked:?}");

    // pyarrow, with a KMS client of its own, decrypts an offline file; without keys it cannot.
    let read = python(
        "decrypt_offline.py",
        &[
            files[0].to_str().unwrap(),
            "local",
            data.join("keys").to_str().unwrap(),
            &arn,
        ],
    );
    assert!(
        read["plain_read"].as_str().unwrap().starts_with("refused"),
        "{read}"
    );
    let rows = read["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{read}");
    assert!(
        rows.iter()
            .all(|r| r["diagnosis"].as_str().unwrap().starts_with(&secret)),
        "{read}"
    );

    // After a restart everything reads back; then the master key is rotated.
    let server = TestServer::start_in(&data, &encrypted_args).await;
    let client = server.client().await;
    assert_eq!(
        diagnosis(&client, &id(&secret, 7)).await.unwrap(),
        format!("{secret} #7")
    );
    let rotated = client
        .admin()
        .rotate_key(pb::RotateKeyRequest {
            kms_key_id: "local/default".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.version, 2);
    assert!(rotated.data_keys >= 1, "{rotated:?}");
    // Writes after the rotation use the new version.
    write(&client, &secret, 2).await;
    server.stop().await;

    // Online records need only the new version now: their data keys were re-wrapped.
    std::fs::rename(
        data.join("keys/local_default.key"),
        dir.path().join("local_default.key.v1"),
    )
    .unwrap();
    let server = TestServer::start_in(&data, &encrypted_args).await;
    let client = server.client().await;
    assert_eq!(
        diagnosis(&client, &id(&secret, 11)).await.unwrap(),
        format!("{secret} #11")
    );
    // Offline files keep their own wrapped keys: without version 1 they fail, clearly.
    let err = sql_diagnoses(&client).await.unwrap_err().to_string();
    assert!(
        err.contains("version 1") && err.contains("missing"),
        "{err}"
    );
    server.stop().await;

    // A wrong master key is an error that says so, never garbage.
    std::fs::write(data.join("keys/local_default.v2.key"), [9u8; 32]).unwrap();
    let server = TestServer::start_in(&data, &encrypted_args).await;
    let client = server.client().await;
    let err = diagnosis(&client, &id(&secret, 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot unwrap"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_provider_round_trips_against_moto() {
    let moto = Moto::start().await;
    let key = python("kms_key.py", &[&moto.endpoint()]);
    let key_arn = key["arn"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let endpoint = moto.endpoint();
    let args = [
        "--offline-flush-interval-ms",
        "100",
        "--kms-endpoint",
        endpoint.as_str(),
        "--s3-endpoint",
        endpoint.as_str(),
        "--s3-sse-kms",
    ];
    let server = TestServer::start_with_env(&data, &args, &AWS_ENV).await;
    let client = server.client().await;
    client
        .create_feature_group(group(Some(&key_arn)))
        .await
        .unwrap();
    let secret = sentinel();
    write(&client, &secret, 5).await;
    assert_eq!(
        diagnosis(&client, &id(&secret, 2)).await.unwrap(),
        format!("{secret} #2")
    );
    let files = wait_for_files(&data.join("offline-store")).await;
    assert_eq!(sql_diagnoses(&client).await.unwrap().len(), 5);
    let arn = group_arn(&client).await;

    // A key id KMS does not know fails the write with a message naming KMS and the key.
    let mut unknown = group(Some("arn:aws:kms:us-east-1:000000000000:key/no-such-key"));
    unknown.feature_group_name = "unknown-key".into();
    client.create_feature_group(unknown).await.unwrap();
    let err = client
        .put_record(pb::PutRecordRequest {
            feature_group_name: "unknown-key".into(),
            record: vec![
                value::string("id", "x"),
                value::string("ts", "2026-01-01T00:00:00Z"),
            ],
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AWS KMS") && err.contains("no-such-key"),
        "{err}"
    );

    // On S3, with --s3-sse-kms, S3 also encrypts each object under the group's KMS key.
    moto.create_bucket("quiver-sse");
    let mut on_s3 = group(Some(&key_arn));
    on_s3.feature_group_name = "patients-s3".into();
    on_s3.offline_store_config.as_mut().unwrap().s3_uri = "s3://quiver-sse/offline".into();
    client.create_feature_group(on_s3).await.unwrap();
    client
        .put_record(pb::PutRecordRequest {
            feature_group_name: "patients-s3".into(),
            record: vec![
                value::string("id", "s1"),
                value::string("ts", "2026-01-01T00:00:00Z"),
                value::string("diagnosis", secret.clone()),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let objects = loop {
        let listed = python("s3_sse.py", &[&moto.endpoint(), "quiver-sse", "offline/"]);
        let objects = listed["objects"].as_array().unwrap().clone();
        if objects
            .iter()
            .any(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
        {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "no S3 object within 30 s: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for object in objects
        .iter()
        .filter(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
    {
        assert_eq!(object["sse"], "aws:kms", "{object}");
        assert!(
            object["kms_key"]
                .as_str()
                .unwrap()
                .contains(key_arn.rsplit('/').next().unwrap()),
            "{object}"
        );
    }
    server.stop().await;

    assert!(files_holding(&data, secret.as_bytes()).is_empty());
    // No local master key was needed for this group.
    let read = python(
        "decrypt_offline.py",
        &[files[0].to_str().unwrap(), "aws", &moto.endpoint(), &arn],
    );
    assert!(read["unwraps"].as_u64().unwrap() >= 1, "{read}");
    assert!(
        read["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["diagnosis"].as_str().unwrap().starts_with(&secret)),
        "{read}"
    );

    // After a restart the data keys are unwrapped by KMS again.
    let server = TestServer::start_with_env(&data, &args, &AWS_ENV).await;
    let client = server.client().await;
    assert_eq!(
        diagnosis(&client, &id(&secret, 4)).await.unwrap(),
        format!("{secret} #4")
    );
    server.stop().await;
}
