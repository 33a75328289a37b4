//! The SageMaker-compatible HTTP API, driven by boto3 itself (`tests/python/sagemaker_api.py`):
//! every control-plane and runtime operation, error codes and statuses, pagination, ARN names,
//! collection types, TTL and ExpiresAt, BatchGetRecord and BatchWriteRecord partial errors.
//! Then the same records read over gRPC: one implementation behind both APIs.

use quiver_client::pb;
use quiver_tests::aws::python;
use quiver_tests::{feature, start};

#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_every_operation_against_quiver() {
    let (_dir, server) = start().await;
    let endpoint = format!("http://{}", server.http);
    let report = tokio::task::spawn_blocking(move || python("sagemaker_api.py", &[&endpoint]))
        .await
        .expect("python ran");
    let failed = report["failed"].as_array().expect("failed list");
    assert!(
        failed.is_empty(),
        "boto3 checks failed:\n{}",
        failed
            .iter()
            .map(|f| format!("- {}: {}", f["name"], f["error"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let passed = report["passed"].as_array().expect("passed list");
    assert_eq!(passed.len(), 21, "every check ran: {passed:?}");

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
