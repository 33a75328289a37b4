//! AutoML through SageMaker's API, driven by boto3 (`tests/python/sagemaker_automl.py`): a
//! model built from a feature group's records with CreateAutoMLJobV2 and followed to its end,
//! its candidates and the job list, a stop, and bad requests and bad data refused by name.

use quiver_tests::TestServer;
use quiver_tests::aws::python;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_builds_a_model_from_a_feature_group() {
    let (_dir, server) = quiver_tests::start().await;
    let endpoint = format!("http://{}", server.http);
    let report = tokio::task::spawn_blocking(move || python("sagemaker_automl.py", &[&endpoint]))
        .await
        .expect("python ran");
    quiver_tests::aws::assert_all_checks_passed(&report, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_automl_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(&dir.path().join("data"), &["--automl", "false"]).await;
    let endpoint = format!("http://{}", server.http);
    let seen =
        tokio::task::spawn_blocking(move || python("sagemaker_automl.py", &[&endpoint, "off"]))
            .await
            .expect("python ran");
    assert_eq!(seen["code"], "ValidationException");
    let message = seen["message"].as_str().unwrap();
    assert!(message.contains("--automl false"), "{message}");
    server.stop().await;
}
