//! AutoML through SageMaker's API, driven by boto3 (`tests/python/sagemaker_automl.py`): a
//! model built from a feature group's records with CreateAutoMLJobV2 and followed to its end,
//! its candidates and the job list, a stop, and bad requests and bad data refused by name.

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
