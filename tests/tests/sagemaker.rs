//! The SageMaker-compatible HTTP API, driven by boto3 itself (`tests/python/sagemaker_api.py`):
//! every control-plane and runtime operation, error codes and statuses, pagination, ARN names,
//! collection types, TTL and ExpiresAt, BatchGetRecord and BatchWriteRecord partial errors.
//! Then the same records read over gRPC: one implementation behind both APIs.

use quiver_client::pb;
use quiver_tests::aws::python;
use quiver_tests::{TestServer, feature, start};

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_every_operation_against_quiver() {
    let (_dir, server) = start().await;
    let endpoint = format!("http://{}", server.http);
    let report = tokio::task::spawn_blocking(move || python("sagemaker_api.py", &[&endpoint]))
        .await
        .expect("python ran");
    quiver_tests::aws::assert_all_checks_passed(&report, 21);

    // What boto3 wrote is what gRPC reads.
    let client = server.client().await;
    let got = client
        .get_record(pb::GetRecordRequest {
            feature_group_name: "customers".into(),
            record_identifier_value_as_string: "c1".into(),
            ..Default::default()
        })
        .await
        .expect("gRPC GetRecord");
    assert_eq!(feature(&got.record, "age"), Some(serde_json::json!(42)));
    assert_eq!(
        feature(&got.record, "embedding"),
        Some(serde_json::json!([0.25, -1.0, 300.0]))
    );
}

/// The SageMaker Python SDK's FeatureGroup helpers, pointed at Quiver by the standard
/// `AWS_ENDPOINT_URL_*` variables (`tests/python/sagemaker_sdk.py`).
#[tokio::test(flavor = "multi_thread")]
async fn sagemaker_sdk_feature_group_helpers_work_against_quiver() {
    let (_dir, server) = start().await;
    let endpoint = format!("http://{}", server.http);
    let seen = tokio::task::spawn_blocking(move || python("sagemaker_sdk.py", &[&endpoint]))
        .await
        .expect("python ran");
    assert_eq!(
        seen["definitions"],
        serde_json::json!([
            {"name": "customer_id", "type": "String"},
            {"name": "event_time", "type": "Fractional"},
            {"name": "age", "type": "Integral"},
            {"name": "lifetime_value", "type": "Fractional"},
            {"name": "city", "type": "String"},
        ])
    );
    assert_eq!(seen["status"], "Created");
    assert_eq!(
        seen["described_features"],
        serde_json::json!(["customer_id", "event_time", "age", "lifetime_value", "city"])
    );
    assert_eq!(seen["online"], true);
    assert_eq!(
        seen["failed_rows"],
        serde_json::json!([]),
        "ingest failed rows"
    );
    assert_eq!(seen["record"]["customer_id"], "c7");
    assert_eq!(seen["record"]["age"], "27");
    assert_eq!(seen["record"]["lifetime_value"], "10.5");
    assert_eq!(seen["record"]["city"], "Paris");
    assert_eq!(seen["missing"], serde_json::Value::Null);
    assert_eq!(
        seen["after_delete"],
        serde_json::Value::Null,
        "soft-deleted"
    );
    assert_eq!(seen["last"]["customer_id"], "c199");

    // Every ingested row is there, as gRPC reads it.
    let client = server.client().await;
    let mut found = 0;
    for i in 0..200 {
        let got = client
            .get_record(pb::GetRecordRequest {
                feature_group_name: "sdk_customers".into(),
                record_identifier_value_as_string: format!("c{i}"),
                ..Default::default()
            })
            .await
            .expect("gRPC GetRecord");
        if !got.record.is_empty() {
            assert_eq!(
                feature(&got.record, "age"),
                Some(serde_json::json!(20 + i % 50))
            );
            found += 1;
        }
    }
    assert_eq!(found, 199, "every row but the soft-deleted c7");
}

/// A write the offline store cannot take yet is refused with 503 ServiceUnavailable (boto3's
/// retryable error), and writes only to the online store still go through.
#[tokio::test(flavor = "multi_thread")]
async fn offline_back_pressure_is_service_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--offline-staging-limit-mb", "0"],
    )
    .await;
    let endpoint = format!("http://{}", server.http);
    let seen =
        tokio::task::spawn_blocking(move || python("sagemaker_unavailable.py", &[&endpoint]))
            .await
            .expect("python ran");
    assert_eq!(seen["refused"]["code"], "ServiceUnavailable", "{seen}");
    assert_eq!(seen["refused"]["status"], 503, "{seen}");
    assert!(
        seen["refused"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("offline store is behind")),
        "{seen}"
    );
    assert_eq!(seen["online_only_written"], true);
}
