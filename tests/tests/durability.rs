//! Durability against the real binary: a clean restart keeps groups and records; `kill -9` after
//! N acknowledged writes loses none of them.

use quiver_client::pb;
use quiver_tests::*;

#[tokio::test]
async fn restart_keeps_groups_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &[]).await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();
    client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "g".into(),
            feature_additions: vec![fdef("extra", pb::FeatureType::Integral)],
            online_store_config: None,
        })
        .await
        .unwrap();
    client
        .put_record(put("g", record("a", &ts(5), 5)))
        .await
        .unwrap();
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: "g".into(),
            record_identifier_value_as_string: "a".into(),
            event_time: ts(6),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .put_record(put("g", record("b", &ts(5), 7)))
        .await
        .unwrap();
    drop(client);
    server.stop().await;

    let server = TestServer::start_in(&data, &[]).await;
    let client = server.client().await;
    let d = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "g".into(),
        })
        .await
        .unwrap();
    assert_eq!(d.feature_definitions.len(), 6, "the added feature survived");
    let b = read(&client, "g", "b").await;
    assert_eq!(feature(&b, "age"), Some(serde_json::json!(7)));
    assert!(
        read(&client, "g", "a").await.is_empty(),
        "soft delete survived"
    );
    let historic = client
        .put_record(put("g", record("a", &ts(5), 1)))
        .await
        .unwrap();
    assert_eq!(
        historic.outcome,
        pb::WriteOutcome::Historic as i32,
        "the tombstone's event time survived"
    );
    server.stop().await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for wal_sync in ["always", "periodic"] {
        let _ = std::fs::remove_dir_all(&data);
        let server = TestServer::start_in(&data, &["--wal-sync", wal_sync]).await;
        let client = server.client().await;
        client
            .create_feature_group(customers_group("g", None))
            .await
            .unwrap();

        // Concurrent writers; every write counted here was acknowledged.
        const N: usize = 400;
        let mut tasks = Vec::new();
        for writer in 0..4 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                for i in (writer..N).step_by(4) {
                    client
                        .put_record(put("g", record(&format!("r{i}"), &ts(1), i as i64)))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let batch = pb::PutRecordsRequest {
            records: (0..500)
                .map(|i| put("g", record(&format!("batch{i}"), &ts(2), i)))
                .collect(),
        };
        client.put_records(batch).await.unwrap();
        drop(client);
        server.kill_9();

        let server = TestServer::start_in(&data, &[]).await;
        let client = server.client().await;
        let mut lost = Vec::new();
        for i in 0..N {
            let got = read(&client, "g", &format!("r{i}")).await;
            if feature(&got, "age") != Some(serde_json::json!(i)) {
                lost.push(i);
            }
        }
        for i in 0..500 {
            if read(&client, "g", &format!("batch{i}")).await.is_empty() {
                lost.push(N + i);
            }
        }
        assert!(
            lost.is_empty(),
            "wal_sync={wal_sync}: lost acknowledged writes {lost:?}"
        );
        server.stop().await;
    }
}
