//! The offline store end to end: files written by the real server, read back by pyarrow (an
//! independent reader), on local disk and on S3 (moto_server); Glue registration; exactly once
//! across kill -9 and across an S3 outage, with back-pressure past the staging limit.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use quiver_client::{Client, pb, value};
use quiver_tests::aws::{AWS_ENV, Moto, Proxy, python};
use quiver_tests::{TestServer, fdef, put};
use serde_json::Value as Json;

/// `id` (Integral), `ts` (String), `amount` (Fractional), `note` (String), `tags` (String List),
/// `embedding` (Vector of 3); online and offline stores.
fn txn_group(name: &str, s3_uri: Option<&str>) -> pb::CreateFeatureGroupRequest {
    pb::CreateFeatureGroupRequest {
        feature_group_name: name.into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            fdef("id", pb::FeatureType::Integral),
            fdef("ts", pb::FeatureType::String),
            fdef("amount", pb::FeatureType::Fractional),
            fdef("note", pb::FeatureType::String),
            pb::FeatureDefinition {
                collection_type: pb::CollectionType::List as i32,
                ..fdef("tags", pb::FeatureType::String)
            },
            pb::FeatureDefinition {
                collection_type: pb::CollectionType::Vector as i32,
                vector_dimension: 3,
                ..fdef("embedding", pb::FeatureType::Fractional)
            },
        ],
        online_store_config: Some(pb::OnlineStoreConfig {
            enable_online_store: true,
            ..Default::default()
        }),
        offline_store_config: Some(pb::OfflineStoreConfig {
            s3_uri: s3_uri.unwrap_or_default().into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn txn(id: i64, ts: &str, amount: f64) -> Vec<pb::FeatureValue> {
    vec![
        value::integral("id", id),
        value::string("ts", ts),
        value::fractional("amount", amount),
        value::string("note", format!("note {id}")),
        value::string_list("tags", vec!["a".into(), format!("t{id}")]),
        value::fractional_list("embedding", vec![id as f64, 0.5, -1.0]),
    ]
}

/// A metric's value from `/metrics`.
async fn metric(server: &TestServer, name: &str) -> Option<f64> {
    let (_, body) = server.http_get("/metrics").await;
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Waits until nothing is staged: every acknowledged row is in a file.
async fn wait_drained(server: &TestServer, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if metric(server, "quiver_offline_staged_rows").await == Some(0.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offline staging not drained within {within:?}: {:?} rows staged",
            metric(server, "quiver_offline_staged_rows").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn describe(client: &Client, group: &str) -> pb::DescribeFeatureGroupResponse {
    client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.into(),
        })
        .await
        .expect("DescribeFeatureGroup")
}

fn rows(read: &Json) -> &Vec<Json> {
    read["rows"].as_array().expect("rows")
}

#[tokio::test]
async fn local_files_hold_every_write_in_sagemaker_layout_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--offline-flush-interval-ms", "200"],
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(txn_group("Txns", None))
        .await
        .unwrap();

    client
        .put_record(put("Txns", txn(1, "2024-01-01T00:10:00Z", 1.5)))
        .await
        .unwrap();
    client
        .put_record(put("Txns", txn(2, "2024-01-01T05:30:00Z", 2.5)))
        .await
        .unwrap();
    // Older than the stored record: historic, offline only.
    let historic = client
        .put_record(put("Txns", txn(1, "2023-12-31T23:59:59Z", 0.5)))
        .await
        .unwrap();
    assert_eq!(historic.outcome, pb::WriteOutcome::Historic as i32);
    for (id, ts, mode) in [
        ("2", "2024-01-01T06:00:00Z", pb::DeletionMode::SoftDelete),
        ("1", "2024-01-02T00:00:00Z", pb::DeletionMode::HardDelete),
    ] {
        client
            .delete_record(pb::DeleteRecordRequest {
                feature_group_name: "Txns".into(),
                record_identifier_value_as_string: id.into(),
                event_time: ts.into(),
                deletion_mode: mode as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    wait_drained(&server, Duration::from_secs(30)).await;

    // A feature added later is a column of later files; older rows read as null.
    client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "Txns".into(),
            feature_additions: vec![fdef("segment", pb::FeatureType::String)],
            online_store_config: None,
        })
        .await
        .unwrap();
    let mut record = txn(3, "2024-01-03T12:00:00.250Z", 3.5);
    record.push(value::string("segment", "gold"));
    client.put_record(put("Txns", record)).await.unwrap();
    wait_drained(&server, Duration::from_secs(30)).await;

    let described = describe(&client, "Txns").await;
    let offline = described.offline_store_config.expect("offline config");
    let data_uri = offline.resolved_output_s3_uri;
    let creation_epoch = described.creation_time_unix_ms / 1000;
    assert!(
        data_uri.ends_with(&format!(
            "/offline-store/000000000000/sagemaker/us-east-1/offline-store/Txns-{creation_epoch}/data"
        )),
        "{data_uri}"
    );
    let catalog = offline.data_catalog_config.expect("data catalog config");
    assert_eq!(catalog.database, "sagemaker_featurestore");
    assert_eq!(catalog.table_name, format!("txns_{creation_epoch}"));
    assert_eq!(
        described.offline_store_status.unwrap().status,
        pb::OfflineStoreStatusValue::Active as i32
    );

    let data_dir = data_uri.strip_prefix("file://").expect("a local store");
    let read = python("read_offline.py", &["local", data_dir]);
    let columns = &read["columns"];
    for (column, arrow_type) in [
        ("id", "int64"),
        ("ts", "string"),
        ("amount", "double"),
        ("note", "string"),
        ("tags", "list<item: string>"),
        ("embedding", "fixed_size_list<item: double>[3]"),
        ("write_time", "timestamp[ms, tz=UTC]"),
        ("api_invocation_time", "timestamp[ms, tz=UTC]"),
        ("is_deleted", "bool"),
        ("segment", "string"),
    ] {
        assert_eq!(columns[column], arrow_type, "type of {column}: {columns}");
    }
    for file in read["files"].as_array().unwrap() {
        let name = file.as_str().unwrap().rsplit('/').next().unwrap();
        assert!(
            name.len() == 16 + 1 + 16 + 8
                && &name[8..9] == "T"
                && &name[15..17] == "Z_"
                && name.ends_with(".parquet"),
            "file name {name} is not <YYYYMMDDTHHMMSSZ>_<16>.parquet"
        );
    }

    let rows = rows(&read);
    assert_eq!(
        rows.len(),
        6,
        "3 puts + 1 historic put + 2 delete markers: {rows:?}"
    );
    let find = |id: i64, ts: &str| {
        rows.iter()
            .find(|r| r["id"] == id && r["ts"] == ts)
            .unwrap_or_else(|| panic!("no row {id} at {ts} in {rows:?}"))
    };
    let first = find(1, "2024-01-01T00:10:00Z");
    assert_eq!(first["_partition"], "year=2024/month=01/day=01/hour=00");
    assert_eq!(first["amount"], 1.5);
    assert_eq!(first["note"], "note 1");
    assert_eq!(first["tags"], serde_json::json!(["a", "t1"]));
    assert_eq!(first["embedding"], serde_json::json!([1.0, 0.5, -1.0]));
    assert_eq!(first["is_deleted"], false);
    assert_eq!(
        first["segment"],
        Json::Null,
        "added later: null in older files"
    );
    assert!(
        first["write_time"].as_str().unwrap() >= first["api_invocation_time"].as_str().unwrap()
    );

    let old = find(1, "2023-12-31T23:59:59Z");
    assert_eq!(old["_partition"], "year=2023/month=12/day=31/hour=23");
    assert_eq!(old["amount"], 0.5);

    // Delete markers keep the event time as the request spelled it, as puts do.
    let soft = find(2, "2024-01-01T06:00:00Z");
    assert_eq!(soft["is_deleted"], true);
    assert_eq!(soft["amount"], Json::Null);
    assert_eq!(soft["_partition"], "year=2024/month=01/day=01/hour=06");
    let hard = find(1, "2024-01-02T00:00:00Z");
    assert_eq!(hard["is_deleted"], true);
    assert_eq!(hard["tags"], Json::Null);

    let later = find(3, "2024-01-03T12:00:00.250Z");
    assert_eq!(later["segment"], "gold");
    assert_eq!(later["_partition"], "year=2024/month=01/day=03/hour=12");

    // The catalog entry: served, and stored beside the data.
    let athena = client
        .get_offline_store_catalog(pb::GetOfflineStoreCatalogRequest {
            feature_group_name: "Txns".into(),
            format: pb::CatalogFormat::Athena as i32,
        })
        .await
        .unwrap();
    assert!(
        athena.definition.contains("`segment` string"),
        "{}",
        athena.definition
    );
    assert!(athena.definition.contains("`embedding` array<double>"));
    assert!(athena.definition.contains("PARTITIONED BY"));
    let group_dir = std::path::Path::new(data_dir)
        .parent()
        .unwrap()
        .to_path_buf();
    let glue_file = group_dir.join("catalog/glue-create-table.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Option<Json> = std::fs::read(&glue_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let columns = stored
            .as_ref()
            .map(|s| s["TableInput"]["StorageDescriptor"]["Columns"].to_string())
            .unwrap_or_default();
        if columns.contains("segment") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "catalog file {} not updated: {stored:?}",
            glue_file.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(group_dir.join("catalog/athena-create-table.sql").exists());

    // Deleting the group leaves its files.
    client
        .delete_feature_group(pb::DeleteFeatureGroupRequest {
            feature_group_name: "Txns".into(),
        })
        .await
        .unwrap();
    let after_delete = python("read_offline.py", &["local", data_dir]);
    assert_eq!(after_delete["rows"].as_array().unwrap().len(), rows.len());
    server.stop().await;
}

#[tokio::test]
async fn s3_store_and_glue_catalog_on_moto() {
    let moto = Moto::start().await;
    moto.create_bucket("quiver-offline");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let server = TestServer::start_with_env(
        &dir.path().join("data"),
        &[
            "--offline-flush-interval-ms",
            "200",
            "--s3-endpoint",
            &endpoint,
            "--glue-endpoint",
            &endpoint,
        ],
        &AWS_ENV,
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(txn_group("Payments", Some("s3://quiver-offline/features")))
        .await
        .unwrap();
    for id in 1..=3 {
        client
            .put_record(put("Payments", txn(id, "2024-02-29T23:00:00Z", id as f64)))
            .await
            .unwrap();
    }
    wait_drained(&server, Duration::from_secs(30)).await;

    let described = describe(&client, "Payments").await;
    let epoch = described.creation_time_unix_ms / 1000;
    let offline = described.offline_store_config.unwrap();
    let group_prefix =
        format!("features/000000000000/sagemaker/us-east-1/offline-store/Payments-{epoch}");
    assert_eq!(
        offline.resolved_output_s3_uri,
        format!("s3://quiver-offline/{group_prefix}/data")
    );
    let read = python(
        "read_offline.py",
        &[
            "s3",
            &endpoint,
            "quiver-offline",
            &format!("{group_prefix}/data"),
        ],
    );
    let rows = rows(&read);
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r["_partition"] == "year=2024/month=02/day=29/hour=23")
    );
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);

    // Registered with Glue, and kept in step when a feature is added.
    let table_name = format!("payments_{epoch}");
    let glue_table = |want_column: &'static str| {
        let endpoint = endpoint.clone();
        let table_name = table_name.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let table = python(
                    "glue_table.py",
                    &[&endpoint, "sagemaker_featurestore", &table_name],
                );
                let has = table["StorageDescriptor"]["Columns"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["Name"] == want_column));
                if has {
                    return table;
                }
                assert!(
                    Instant::now() < deadline,
                    "Glue table lacks {want_column}: {table}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let table = glue_table("embedding").await;
    assert_eq!(
        table["StorageDescriptor"]["Location"],
        format!("s3://quiver-offline/{group_prefix}/data")
    );
    let partitions: Vec<&str> = table["PartitionKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["Name"].as_str().unwrap())
        .collect();
    assert_eq!(partitions, ["year", "month", "day", "hour"]);
    assert_eq!(
        table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "Payments".into(),
            feature_additions: vec![fdef("segment", pb::FeatureType::String)],
            online_store_config: None,
        })
        .await
        .unwrap();
    let table = glue_table("segment").await;
    let columns: Vec<&str> = table["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "ts",
            "amount",
            "note",
            "tags",
            "embedding",
            "segment",
            "write_time",
            "api_invocation_time",
            "is_deleted"
        ]
    );
    server.stop().await;
}

/// Writers that record which ids were acknowledged and which were in a failed request.
struct Load {
    acknowledged: Vec<i64>,
    unknown: Vec<i64>,
    refused_unavailable: usize,
}

/// Writes batches of `batch` new records from `writers` tasks until `stop` or the server
/// goes away; ids start at `first_id` and never repeat.
async fn write_load(
    client: &Client,
    group: &str,
    first_id: i64,
    writers: i64,
    batch: i64,
    stop: tokio::sync::watch::Receiver<bool>,
    stop_on_error: bool,
) -> Load {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (client, group, stop) = (client.clone(), group.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut load = Load {
                    acknowledged: vec![],
                    unknown: vec![],
                    refused_unavailable: 0,
                };
                let mut next = first_id + w * 10_000_000;
                while !*stop.borrow() {
                    let ids: Vec<i64> = (next..next + batch).collect();
                    next += batch;
                    let records = ids
                        .iter()
                        .map(|id| pb::PutRecordRequest {
                            feature_group_name: group.clone(),
                            record: txn(*id, "2024-03-01T10:00:00Z", *id as f64),
                            ..Default::default()
                        })
                        .collect();
                    match client.put_records(pb::PutRecordsRequest { records }).await {
                        Ok(_) => load.acknowledged.extend(ids),
                        Err(e) if e.to_string().contains("offline store is behind") => {
                            // Back-pressure: nothing was written; the client retried, then gave up.
                            load.refused_unavailable += 1;
                        }
                        Err(_) => {
                            load.unknown.extend(ids);
                            if stop_on_error {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load {
        acknowledged: vec![],
        unknown: vec![],
        refused_unavailable: 0,
    };
    for task in tasks {
        let load = task.await.unwrap();
        total.acknowledged.extend(load.acknowledged);
        total.unknown.extend(load.unknown);
        total.refused_unavailable += load.refused_unavailable;
    }
    total
}

/// Every acknowledged id exactly once; ids of failed requests at most once; nothing else.
fn assert_exactly_once(rows: &[Json], acknowledged: &[i64], unknown: &[i64]) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for row in rows {
        *counts.entry(row["id"].as_i64().expect("id")).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(duplicated.is_empty(), "rows written twice: {duplicated:?}");
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !counts.contains_key(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged rows missing: {missing:?} (of {})",
        acknowledged.len()
    );
    let known: HashSet<i64> = acknowledged.iter().chain(unknown).copied().collect();
    let strangers: Vec<_> = counts
        .keys()
        .filter(|id| !known.contains(id))
        .take(10)
        .collect();
    assert!(strangers.is_empty(), "rows nobody wrote: {strangers:?}");
}

#[tokio::test]
async fn kill_9_during_load_neither_loses_nor_duplicates_offline_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small files and a short interval: many flushes, so kills land inside them.
    let args = [
        "--offline-flush-interval-ms",
        "50",
        "--offline-max-file-mb",
        "1",
        "--wal-sync",
        "periodic",
    ];
    let mut acknowledged = Vec::new();
    let mut unknown = Vec::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for round in 0..4i64 {
        let server = TestServer::start_in(&data, &args).await;
        let client = server.client().await;
        if round == 0 {
            client
                .create_feature_group(txn_group("Crash", None))
                .await
                .unwrap();
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let load = {
            let client = client.clone();
            tokio::spawn(async move {
                write_load(
                    &client,
                    "Crash",
                    round * 1_000_000_000,
                    4,
                    50,
                    stop_rx,
                    true,
                )
                .await
            })
        };
        // A different moment each round and each run.
        let pause = 400 + (seed.wrapping_mul(round as u64 + 7) % 1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill_9();
        let _ = stop_tx.send(true);
        let load = load.await.unwrap();
        assert!(!load.acknowledged.is_empty(), "round {round} wrote nothing");
        acknowledged.extend(load.acknowledged);
        unknown.extend(load.unknown);
    }
    let server = TestServer::start_in(&data, &args).await;
    wait_drained(&server, Duration::from_secs(60)).await;
    let client = server.client().await;
    let data_uri = describe(&client, "Crash")
        .await
        .offline_store_config
        .unwrap()
        .resolved_output_s3_uri;
    let read = python(
        "read_offline.py",
        &["local", data_uri.strip_prefix("file://").unwrap()],
    );
    assert_exactly_once(rows(&read), &acknowledged, &unknown);
    eprintln!(
        "{} acknowledged rows across 4 kill -9s, each in the offline store once",
        acknowledged.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn s3_outage_backs_up_refuses_past_the_limit_and_drains_exactly_once() {
    let moto = Moto::start().await;
    moto.create_bucket("quiver-outage");
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_env(
        &dir.path().join("data"),
        &[
            "--offline-flush-interval-ms",
            "100",
            "--offline-staging-limit-mb",
            "1",
            "--s3-endpoint",
            &proxy.endpoint(),
        ],
        &AWS_ENV,
    )
    .await;
    let client = server.client().await;
    client
        .create_feature_group(txn_group("Outage", Some("s3://quiver-outage/fs")))
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = {
        let client = client.clone();
        tokio::spawn(async move { write_load(&client, "Outage", 1, 2, 20, stop_rx, false).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_down(true);

    // The store is reported blocked, and once 1 MiB waits, writes are refused, not dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = describe(&client, "Outage")
            .await
            .offline_store_status
            .unwrap();
        let staged = metric(&server, "quiver_offline_staged_bytes")
            .await
            .unwrap_or(0.0);
        if status.status == pb::OfflineStoreStatusValue::Blocked as i32 && staged >= 1024.0 * 1024.0
        {
            assert!(!status.blocked_reason.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never blocked/full: {status:?}, {staged} bytes staged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client
        .put_record(put("Outage", txn(-1, "2024-03-01T10:00:00Z", 0.0)))
        .await
        .expect_err("past the staging limit a write is refused");
    assert_eq!(refused.code(), Some(tonic::Code::Unavailable), "{refused}");
    assert!(
        refused.to_string().contains("--offline-staging-limit-mb"),
        "{refused}"
    );

    proxy.set_down(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let load = load.await.unwrap();
    assert!(
        load.refused_unavailable > 0,
        "the load never met back-pressure"
    );
    wait_drained(&server, Duration::from_secs(90)).await;
    let status = describe(&client, "Outage")
        .await
        .offline_store_status
        .unwrap();
    assert_eq!(
        status.status,
        pb::OfflineStoreStatusValue::Active as i32,
        "{status:?}"
    );

    let epoch = describe(&client, "Outage").await.creation_time_unix_ms / 1000;
    let prefix = format!("fs/000000000000/sagemaker/us-east-1/offline-store/Outage-{epoch}/data");
    let read = python(
        "read_offline.py",
        &["s3", &moto.endpoint(), "quiver-outage", &prefix],
    );
    assert_exactly_once(rows(&read), &load.acknowledged, &load.unknown);
    eprintln!(
        "{} acknowledged rows through an S3 outage, {} batches refused with UNAVAILABLE",
        load.acknowledged.len(),
        load.refused_unavailable
    );
    server.stop().await;
}

/// The Parquet files under `dir`, by hour partition (`year=../month=../day=../hour=..`).
fn files_by_partition(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let mut parts = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let partition: Vec<String> = path
                    .iter()
                    .filter_map(|p| p.to_str())
                    .filter(|p| p.contains('='))
                    .map(str::to_string)
                    .collect();
                *parts.entry(partition.join("/")).or_default() += 1;
            }
        }
    }
    parts
}

#[tokio::test]
async fn each_partition_gets_one_file_per_interval_whatever_the_write_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A 3 s interval; writes every 50 ms for ~4 s, to three hour partitions (one of them
    // historic): at the old 5 s-interval policy's per-flush files, a file per partition per
    // flush, that is at most 3 files each (two timed flushes and the last one), not ~80.
    let server = TestServer::start_in(&data, &["--offline-flush-interval-ms", "3000"]).await;
    let client = server.client().await;
    client
        .create_feature_group(txn_group("busy", None))
        .await
        .unwrap();
    let started = Instant::now();
    let mut written = 0;
    while started.elapsed() < Duration::from_secs(4) {
        for (hour, ts) in [
            (0, "2024-01-01T00"),
            (1, "2024-01-01T01"),
            (2, "2023-06-01T12"),
        ] {
            let id = written * 3 + hour;
            client
                .put_record(put(
                    "busy",
                    txn(id, &format!("{ts}:00:{:02}Z", id % 60), 1.0),
                ))
                .await
                .unwrap();
        }
        written += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_drained(&server, Duration::from_secs(30)).await;
    let parts = files_by_partition(&data.join("offline-store"));
    assert_eq!(parts.len(), 3, "{parts:?}");
    for (partition, files) in &parts {
        assert!(
            *files <= 3,
            "{partition}: {files} files for {written} writes over ~4 s at a 3 s interval"
        );
    }
    // Every row is there once.
    let client_rows = client
        .query("SELECT count(*) AS n FROM busy WHERE write_time IS NOT NULL")
        .await
        .unwrap()
        .1;
    let n = client_rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, written * 3);
    server.stop().await;
}
