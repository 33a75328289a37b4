//! Record semantics end to end against the real binary: latest by event time, historic writes,
//! soft and hard delete, TTL, feature addition, batch reads and writes, concurrent writers.

use std::time::Duration;

use quiver_client::{pb, value};
use quiver_tests::*;

#[tokio::test]
async fn put_get_and_feature_subset() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("customers", None))
        .await
        .unwrap();

    let mut rec = record("c1", &ts(10), 42);
    rec.push(value::fractional("score", 0.5));
    rec.push(value::string_list("tags", vec!["a".into(), "b".into()]));
    let response = client.put_record(put("customers", rec)).await.unwrap();
    assert_eq!(response.outcome, pb::WriteOutcome::Applied as i32);

    let got = read(&client, "customers", "c1").await;
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(42)));
    assert_eq!(feature(&got, "score"), Some(serde_json::json!(0.5)));
    assert_eq!(feature(&got, "tags"), Some(serde_json::json!(["a", "b"])));
    assert_eq!(feature(&got, "ts"), Some(serde_json::json!(ts(10))));

    let subset = client
        .get_record(pb::GetRecordRequest {
            feature_names: vec!["age".into()],
            ..get("customers", "c1")
        })
        .await
        .unwrap()
        .record;
    assert_eq!(subset.len(), 1);
    assert_eq!(subset[0].feature_name, "age");

    let missing = client.get_record(get("customers", "nobody")).await.unwrap();
    assert!(missing.record.is_empty());

    // A PutRecord is a full record, not a merge: features left out are gone.
    client
        .put_record(put("customers", record("c1", &ts(11), 43)))
        .await
        .unwrap();
    let got = read(&client, "customers", "c1").await;
    assert_eq!(feature(&got, "score"), None);
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(43)));
}

#[tokio::test]
async fn older_event_time_is_historic_and_not_applied_online() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();

    client
        .put_record(put("g", record("c1", &ts(100), 1)))
        .await
        .unwrap();
    let older = client
        .put_record(put("g", record("c1", &ts(50), 2)))
        .await
        .unwrap();
    assert_eq!(older.outcome, pb::WriteOutcome::Historic as i32);
    let same = client
        .put_record(put("g", record("c1", &ts(100), 3)))
        .await
        .unwrap();
    assert_eq!(
        same.outcome,
        pb::WriteOutcome::Historic as i32,
        "an equal event time is not newer"
    );
    let got = read(&client, "g", "c1").await;
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(1)));

    let newer = client
        .put_record(put("g", record("c1", &ts(101), 4)))
        .await
        .unwrap();
    assert_eq!(newer.outcome, pb::WriteOutcome::Applied as i32);
    let got = read(&client, "g", "c1").await;
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(4)));
}

fn delete(
    group: &str,
    id: &str,
    event_time: &str,
    mode: pb::DeletionMode,
) -> pb::DeleteRecordRequest {
    pb::DeleteRecordRequest {
        feature_group_name: group.into(),
        record_identifier_value_as_string: id.into(),
        event_time: event_time.into(),
        target_stores: vec![],
        deletion_mode: mode as i32,
    }
}

#[tokio::test]
async fn soft_delete_hides_and_keeps_event_time_hard_delete_removes() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();

    // Soft delete: hidden, and writes older than the delete stay historic.
    client
        .put_record(put("g", record("soft", &ts(100), 1)))
        .await
        .unwrap();
    client
        .delete_record(delete("g", "soft", &ts(200), pb::DeletionMode::SoftDelete))
        .await
        .unwrap();
    assert!(read(&client, "g", "soft").await.is_empty());
    let older = client
        .put_record(put("g", record("soft", &ts(150), 2)))
        .await
        .unwrap();
    assert_eq!(older.outcome, pb::WriteOutcome::Historic as i32);
    assert!(read(&client, "g", "soft").await.is_empty());
    let newer = client
        .put_record(put("g", record("soft", &ts(250), 3)))
        .await
        .unwrap();
    assert_eq!(newer.outcome, pb::WriteOutcome::Applied as i32);
    assert!(!read(&client, "g", "soft").await.is_empty());

    // A soft delete that is not newer leaves the online record.
    client
        .delete_record(delete("g", "soft", &ts(10), pb::DeletionMode::SoftDelete))
        .await
        .unwrap();
    assert!(!read(&client, "g", "soft").await.is_empty());

    // Hard delete: removed, so a write with any event time applies afterwards.
    client
        .put_record(put("g", record("hard", &ts(100), 1)))
        .await
        .unwrap();
    client
        .delete_record(delete("g", "hard", &ts(200), pb::DeletionMode::HardDelete))
        .await
        .unwrap();
    assert!(read(&client, "g", "hard").await.is_empty());
    let after = client
        .put_record(put("g", record("hard", &ts(50), 2)))
        .await
        .unwrap();
    assert_eq!(after.outcome, pb::WriteOutcome::Applied as i32);

    // A hard delete not newer than the stored record fails and deletes nothing.
    let err = client
        .delete_record(delete("g", "hard", &ts(50), pb::DeletionMode::HardDelete))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("not newer"), "{err}");
    assert!(!read(&client, "g", "hard").await.is_empty());

    // Epoch-seconds event times are accepted for deletes too.
    client
        .delete_record(delete(
            "g",
            "hard",
            "1893456000",
            pb::DeletionMode::HardDelete,
        ))
        .await
        .unwrap();
    assert!(read(&client, "g", "hard").await.is_empty());
}

#[tokio::test]
async fn ttl_expiry_group_default_and_per_record_override() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", Some(4)))
        .await
        .unwrap();

    let now = now_iso();
    client
        .put_record(put("g", record("short", &now, 1)))
        .await
        .unwrap();
    let long = pb::PutRecordRequest {
        ttl_duration: Some(pb::TtlDuration {
            unit: pb::TtlUnit::Hours as i32,
            value: 1,
        }),
        ..put("g", record("long", &now, 2))
    };
    client.put_record(long).await.unwrap();

    let fresh = client
        .get_record(pb::GetRecordRequest {
            expiration_time_response: true,
            ..get("g", "short")
        })
        .await
        .unwrap();
    assert!(!fresh.record.is_empty(), "not yet expired");
    assert!(
        fresh.expires_at.ends_with('Z') && fresh.expires_at > now,
        "{}",
        fresh.expires_at
    );

    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        read(&client, "g", "short").await.is_empty(),
        "expired record is never returned"
    );
    assert!(
        !read(&client, "g", "long").await.is_empty(),
        "per-record TTL overrides the default"
    );

    // An expired record does not make an older write historic: it is gone.
    let rewrite = client
        .put_record(put("g", record("short", &now, 3)))
        .await
        .unwrap();
    // Same event time, but the stored one expired: applied (and expired again at once).
    assert_eq!(rewrite.outcome, pb::WriteOutcome::Applied as i32);
}

#[tokio::test]
async fn records_written_before_a_feature_was_added_lack_it() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();
    client
        .put_record(put("g", record("old", &ts(1), 1)))
        .await
        .unwrap();

    client
        .update_feature_group(pb::UpdateFeatureGroupRequest {
            feature_group_name: "g".into(),
            feature_additions: vec![fdef("country", pb::FeatureType::String)],
            online_store_config: None,
        })
        .await
        .unwrap();
    let mut rec = record("new", &ts(2), 2);
    rec.push(value::string("country", "NZ"));
    client.put_record(put("g", rec)).await.unwrap();

    let old = read(&client, "g", "old").await;
    assert_eq!(feature(&old, "country"), None);
    assert_eq!(feature(&old, "age"), Some(serde_json::json!(1)));
    let new = read(&client, "g", "new").await;
    assert_eq!(feature(&new, "country"), Some(serde_json::json!("NZ")));
}

#[tokio::test]
async fn batch_get_across_groups_with_per_identifier_errors() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("a", None))
        .await
        .unwrap();
    let mut int_group = customers_group("b", None);
    int_group.feature_definitions[0].feature_type = pb::FeatureType::Integral as i32;
    client.create_feature_group(int_group).await.unwrap();
    client
        .put_record(put("a", record("x", &ts(1), 1)))
        .await
        .unwrap();
    client
        .put_record(put("a", record("y", &ts(1), 2)))
        .await
        .unwrap();
    client
        .put_record(put(
            "b",
            vec![
                value::integral("id", 7),
                value::string("ts", ts(1)),
                value::integral("age", 70),
            ],
        ))
        .await
        .unwrap();

    let response = client
        .batch_get_record(pb::BatchGetRecordRequest {
            identifiers: vec![
                pb::BatchGetRecordIdentifier {
                    feature_group_name: "a".into(),
                    record_identifiers_value_as_string: vec![
                        "x".into(),
                        "y".into(),
                        "missing".into(),
                    ],
                    feature_names: vec!["age".into()],
                },
                pb::BatchGetRecordIdentifier {
                    feature_group_name: "b".into(),
                    record_identifiers_value_as_string: vec!["007".into(), "not-a-number".into()],
                    feature_names: vec![],
                },
                pb::BatchGetRecordIdentifier {
                    feature_group_name: "nope".into(),
                    record_identifiers_value_as_string: vec!["z".into()],
                    feature_names: vec![],
                },
            ],
            expiration_time_response: false,
        })
        .await
        .unwrap();
    let found: Vec<(String, String)> = response
        .records
        .iter()
        .map(|r| {
            (
                r.feature_group_name.clone(),
                r.record_identifier_value_as_string.clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("a".into(), "x".into()),
            ("a".into(), "y".into()),
            ("b".into(), "7".into())
        ]
    );
    assert_eq!(
        response.records[0].record.len(),
        1,
        "only the asked-for feature"
    );
    let errors: Vec<(String, String)> = response
        .errors
        .iter()
        .map(|e| {
            (
                e.record_identifier_value_as_string.clone(),
                e.error_code.clone(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("not-a-number".into(), "ValidationError".into()),
            ("z".into(), "ResourceNotFound".into())
        ]
    );

    let too_many = client
        .batch_get_record(pb::BatchGetRecordRequest {
            identifiers: vec![pb::BatchGetRecordIdentifier {
                feature_group_name: "a".into(),
                record_identifiers_value_as_string: (0..101).map(|i| i.to_string()).collect(),
                feature_names: vec![],
            }],
            expiration_time_response: false,
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Some(tonic::Code::ResourceExhausted));
}

#[tokio::test]
async fn put_records_is_atomic() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();

    let good = pb::PutRecordsRequest {
        records: (0..100)
            .map(|i| put("g", record(&format!("r{i}"), &ts(1), i)))
            .collect(),
    };
    let response = client.put_records(good).await.unwrap();
    assert_eq!(response.outcomes.len(), 100);
    assert!(
        response
            .outcomes
            .iter()
            .all(|o| *o == pb::WriteOutcome::Applied as i32)
    );

    // One bad record: nothing in the batch is written, and the error names the record.
    let mut records: Vec<_> = (0..10)
        .map(|i| put("g", record(&format!("s{i}"), &ts(1), i)))
        .collect();
    records[7].record.push(value::string("age", "not an int"));
    let err = client
        .put_records(pb::PutRecordsRequest { records })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
    assert!(err.to_string().contains("Records[7]"), "{err}");
    for i in 0..10 {
        assert!(read(&client, "g", &format!("s{i}")).await.is_empty());
    }

    // Within a batch, later records see earlier ones.
    let response = client
        .put_records(pb::PutRecordsRequest {
            records: vec![
                put("g", record("dup", &ts(5), 1)),
                put("g", record("dup", &ts(3), 2)),
                put("g", record("dup", &ts(9), 3)),
            ],
        })
        .await
        .unwrap();
    assert_eq!(
        response.outcomes,
        vec![
            pb::WriteOutcome::Applied as i32,
            pb::WriteOutcome::Historic as i32,
            pb::WriteOutcome::Applied as i32
        ]
    );
    let got = read(&client, "g", "dup").await;
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(3)));
}

#[tokio::test]
async fn concurrent_writers_to_one_identifier_converge_to_the_greatest_event_time() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    client
        .create_feature_group(customers_group("g", None))
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for writer in 0..8u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            // Each writer covers a shuffled slice of event times; writer 3 holds the greatest.
            for step in 0..50u32 {
                let t = (step * 7 + writer * 13) % 400;
                client
                    .put_record(put("g", record("hot", &ts(t), i64::from(t))))
                    .await
                    .unwrap();
            }
            if writer == 3 {
                client
                    .put_record(put("g", record("hot", &ts(1000), 1000)))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let got = read(&client, "g", "hot").await;
    assert_eq!(feature(&got, "age"), Some(serde_json::json!(1000)));
    assert_eq!(feature(&got, "ts"), Some(serde_json::json!(ts(1000))));
}

#[tokio::test]
async fn offline_only_group_accepts_writes_and_refuses_online_reads() {
    let (_dir, server) = start().await;
    let client = server.client().await;
    let mut request = customers_group("history", None);
    request.online_store_config = None;
    request.offline_store_config = Some(pb::OfflineStoreConfig::default());
    client.create_feature_group(request).await.unwrap();

    let response = client
        .put_record(put("history", record("a", &ts(1), 1)))
        .await
        .unwrap();
    assert_eq!(response.outcome, pb::WriteOutcome::OfflineOnly as i32);
    let err = client.get_record(get("history", "a")).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
    assert!(err.to_string().contains("no online store"), "{err}");

    let d = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: "history".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        d.offline_store_status.unwrap().status,
        pb::OfflineStoreStatusValue::Active as i32
    );
    let offline = d.offline_store_config.unwrap();
    assert!(
        offline
            .resolved_output_s3_uri
            .contains("/000000000000/sagemaker/us-east-1/offline-store/history-")
            && offline.resolved_output_s3_uri.ends_with("/data"),
        "{}",
        offline.resolved_output_s3_uri
    );
    assert!(d.online_store_config.is_none());
}
