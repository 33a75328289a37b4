//! Backups and restores (`quiver admin backup / backups / restore`) against a real server: a
//! backup taken while a writer keeps writing holds every write acknowledged before it began
//! and none made after it ended; a restored server serves exactly that; backups are
//! incremental, to a directory and to S3 (moto), and restore never overwrites a database.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use quiver_client::{Client, pb};
use quiver_tests::aws::{AWS_ENV, Moto};
use quiver_tests::{TestServer, binary, customers_group, feature, put, read, record, ts};

const GROUP: &str = "customers";

fn age(record: &[pb::FeatureValue]) -> Option<i64> {
    feature(record, "age").and_then(|v| v.as_i64())
}

/// `quiver --output json admin ARGS` against `server`, parsed.
fn admin(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json", "admin"];
    all.extend_from_slice(args);
    serde_json::from_str(&server.cli(&all)).expect("JSON from quiver admin")
}

/// `quiver admin restore ARGS` (no server needed): its exit status and standard error.
fn restore(args: &[&str]) -> (bool, String) {
    let out = Command::new(binary("quiver"))
        .args(["admin", "restore"])
        .args(args)
        .envs(AWS_ENV)
        .output()
        .expect("quiver runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records `c<i>` with `age`, written at event time `ts(age * 10_000 + i)`: each age newer.
async fn write_ages(client: &Client, ids: std::ops::Range<usize>, age: i64) {
    for i in ids {
        let at = ts(age as u32 * 10_000 + i as u32);
        client
            .put_record(put(GROUP, record(&format!("c{i}"), &at, age)))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_serves_exactly_what_was_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    let args = ["--encrypt-at-rest", "--offline-flush-interval-ms", "200"];
    let server = TestServer::start_in(&data, &args).await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group(GROUP, None))
        .await
        .unwrap();
    write_ages(&client, 0..200, 1).await;
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: GROUP.into(),
            record_identifier_value_as_string: "c7".into(),
            event_time: ts(15_000),
            ..Default::default()
        })
        .await
        .unwrap();

    // A writer bumps one record's age for as long as the backup takes, each write acknowledged
    // before the next; `acked` is the last acknowledged.
    let acked = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (server.client().await, acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                client
                    .put_record(put(GROUP, record("hot", &ts(n as u32), n)))
                    .await
                    .unwrap();
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = acked.load(Ordering::SeqCst);
    let first = admin(&server, &["backup", backups.to_str().unwrap()]);
    let after = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(first["backup"]["id"], 1, "{first}");
    assert!(first["copied_files"].as_u64().unwrap() >= 1, "{first}");

    // After the backup: overwrites, a hard delete, new records.
    write_ages(&client, 0..10, 2).await;
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: GROUP.into(),
            record_identifier_value_as_string: "c20".into(),
            event_time: ts(25_000),
            deletion_mode: pb::DeletionMode::HardDelete.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    write_ages(&client, 200..210, 3).await;
    let second = admin(
        &server,
        &["backup", &format!("file://{}", backups.display())],
    );
    assert_eq!(second["backup"]["id"], 2, "{second}");
    // Incremental: backup 2 copied only the table files backup 1 did not have.
    let meta = std::fs::read_to_string(backups.join("meta/2")).unwrap();
    let table_files = meta
        .lines()
        .filter(|l| l.starts_with("shared_checksum/"))
        .count() as u64;
    let copied = second["copied_files"].as_u64().unwrap();
    assert!(
        copied >= 1 && copied < table_files,
        "backup 2 copied {copied} of its {table_files} table files: {second}"
    );
    let listed = admin(&server, &["backups", backups.to_str().unwrap()]);
    let ids: Vec<u64> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2]);
    // A relative path names no place on the server.
    let out = Command::new(binary("quiver"))
        .args([
            "--endpoint",
            &server.endpoint(),
            "admin",
            "backup",
            "backups",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not absolute"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;

    // Restore backup 1 into a new data dir, with the local master keys copied beside it.
    let restored = dir.path().join("restored");
    let (ok, stderr) = restore(&[
        "--from",
        backups.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--backup-id",
        "1",
    ]);
    assert!(ok, "{stderr}");
    copy_dir(&data.join("keys"), &restored.join("keys"));
    // Never over a database.
    let (ok, stderr) = restore(&[
        "--from",
        backups.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("already holds a database"),
        "{stderr}"
    );

    let server = TestServer::start_in(&restored, &args).await;
    let client = server.client().await;
    let hot = age(&read(&client, GROUP, "hot").await).unwrap();
    assert!(
        (before..=after).contains(&hot),
        "the hot record's version {hot} was acknowledged between {before} and {after}"
    );
    for i in 0..210 {
        let id = format!("c{i}");
        let got = age(&read(&client, GROUP, &id).await);
        let expected = match i {
            7 => None,
            200.. => None,
            _ => Some(1),
        };
        assert_eq!(got, expected, "{id}");
    }
    server.stop().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_to_s3_are_incremental_and_restore() {
    let moto = Moto::start().await;
    moto.create_bucket("quiver-backups");
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--s3-endpoint", endpoint.as_str()];
    let server = TestServer::start_with_env(&data, &args, &AWS_ENV).await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group(GROUP, None))
        .await
        .unwrap();
    write_ages(&client, 0..100, 1).await;
    let to = "s3://quiver-backups/nightly";
    let first = admin(&server, &["backup", to]);
    assert_eq!(first["backup"]["id"], 1, "{first}");
    write_ages(&client, 0..5, 2).await;
    let second = admin(&server, &["backup", to]);
    assert_eq!(second["backup"]["id"], 2, "{second}");
    // Incremental: every file of backup 2 but the table files already there, plus its list and
    // summary; a full upload would be all its files and those two.
    let uploaded = second["uploaded_files"].as_u64().unwrap();
    let files = second["backup"]["files"].as_u64().unwrap();
    assert!(
        uploaded < files,
        "backup 2 uploaded {uploaded} files of its {files}: {first} then {second}"
    );
    let listed = admin(&server, &["backups", to]);
    assert_eq!(listed["backups"].as_array().unwrap().len(), 2, "{listed}");
    server.stop().await;

    for (id, expected) in [("1", 1), ("2", 2)] {
        let restored = dir.path().join(format!("restored-{id}"));
        let (ok, stderr) = restore(&[
            "--from",
            to,
            "--data-dir",
            restored.to_str().unwrap(),
            "--backup-id",
            id,
            "--s3-endpoint",
            &endpoint,
        ]);
        assert!(ok, "{stderr}");
        let server = TestServer::start_with_env(&restored, &args, &AWS_ENV).await;
        let client = server.client().await;
        assert_eq!(age(&read(&client, GROUP, "c3").await), Some(expected));
        assert_eq!(age(&read(&client, GROUP, "c50").await), Some(1));
        server.stop().await;
    }
    let (ok, stderr) = restore(&[
        "--from",
        to,
        "--data-dir",
        dir.path().join("nowhere").to_str().unwrap(),
        "--backup-id",
        "9",
        "--s3-endpoint",
        &endpoint,
    ]);
    assert!(!ok && stderr.contains("backup 9 is not in"), "{stderr}");
}
