//! Every SageMaker-compatible operation's JSON body (control plane, runtime, lineage,
//! experiments, OpenLineage), sent through the HTTP router of a real store, as boto3 would.
//! Input: `[operation byte][group name or query] NUL [body]`. Any answer is fine; a panic is not,
//! and neither is a 500 (an internal error would mean a body reached code that cannot cope).

#![no_main]
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower_service::Service;

use quiver_auth::Access;
use quiver_auth::store::AuthStore;
use quiver_core::group_commit::GroupCommit;
use quiver_fuzz::{parts, runtime, store};
use quiver_lineage::Lineage;
use quiver_storage::auth_records::AuthRecords;
use quiver_storage::lineage_records::LineageRecords;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::{Clock, SystemClock};

/// The control-plane operations (`POST /`, `X-Amz-Target: SageMaker.<name>`).
const CONTROL: &[&str] = &[
    "CreateFeatureGroup",
    "DescribeFeatureGroup",
    "ListFeatureGroups",
    "UpdateFeatureGroup",
    "DeleteFeatureGroup",
    "UpdateFeatureMetadata",
    "DescribeFeatureMetadata",
    "Search",
    "CreateContext",
    "CreateAction",
    "CreateArtifact",
    "DescribeContext",
    "DescribeArtifact",
    "ListContexts",
    "ListActions",
    "ListArtifacts",
    "UpdateContext",
    "UpdateArtifact",
    "DeleteAction",
    "DeleteArtifact",
    "AddAssociation",
    "DeleteAssociation",
    "ListAssociations",
    "QueryLineage",
    "GetLineageGroupPolicy",
    "CreateExperiment",
    "CreateTrial",
    "CreateTrialComponent",
    "DescribeTrialComponent",
    "UpdateTrialComponent",
    "ListTrialComponents",
    "ListExperiments",
    "AssociateTrialComponent",
    "DisassociateTrialComponent",
    "DeleteExperiment",
    "CreateAutoMLJobV2",
    "DescribeAutoMLJobV2",
    "NoSuchOperation",
];

fn router() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let (store, dir) = store("sagemaker");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = store.online().db().clone();
        let arns = ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        };
        let auth = AuthStore::open(
            AuthRecords::new(db.clone()),
            store.online().data_keys().provider().clone(),
            clock.clone(),
            arns.account_id.clone(),
        )
        .expect("auth store");
        let access =
            Access::new(false, Arc::new(auth), &dir, arns.clone(), clock.clone()).expect("access");
        let lineage =
            Lineage::open(LineageRecords::new(db, false), arns, clock, 100_000).expect("lineage");
        // A group to read and write, so runtime bodies get past "no such group".
        store
            .create_feature_group(quiver_core::testing::spec(Some(3600), true))
            .expect("group g");
        let puts = GroupCommit::start(store.clone()).expect("group commit");
        let services = quiver_sagemaker::Services {
            lineage: Some(Arc::new(lineage)),
            ..Default::default()
        };
        quiver_sagemaker::router(store, puts, Arc::new(access), services, 6 << 20)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let p = parts(rest, 2);
    let name = String::from_utf8_lossy(p[0]);
    let body = p.get(1).copied().unwrap_or_default().to_vec();
    let runtime_ops = 9usize;
    let op = op as usize % (CONTROL.len() + runtime_ops);
    let (method, uri, target) = match op.checked_sub(CONTROL.len()) {
        None => (Method::POST, "/".to_string(), Some(CONTROL[op])),
        Some(0) => (Method::PUT, format!("/FeatureGroup/{name}"), None),
        Some(1) => (Method::GET, format!("/FeatureGroup/{name}"), None),
        Some(2) => (Method::DELETE, format!("/FeatureGroup/{name}"), None),
        Some(3) => (
            Method::POST,
            format!("/FeatureGroup/{name}/ListRecords"),
            None,
        ),
        Some(4) => (Method::POST, "/BatchGetRecord".to_string(), None),
        Some(5) => (Method::POST, "/BatchWriteRecord".to_string(), None),
        Some(6) => (Method::POST, "/api/v1/lineage".to_string(), None),
        Some(7) => (Method::PUT, "/BatchPutMetrics".to_string(), None),
        _ => (Method::POST, format!("/{name}"), None),
    };
    let mut request = Request::builder().method(method).uri(uri.as_str());
    if let Some(target) = target {
        request = request
            .header("x-amz-target", format!("SageMaker.{target}"))
            .header("content-type", "application/x-amz-json-1.1");
    } else {
        request = request.header("content-type", "application/json");
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return; // not a URI a client could send
    };
    let response = runtime().block_on(async {
        let mut router = router().clone();
        let response = router
            .call(request)
            .await
            .expect("axum routers are infallible");
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("a response body")
            .to_bytes();
        (status, body)
    });
    assert!(
        response.0.as_u16() < 500 || response.0.as_u16() == 503,
        "{uri} {target:?}: {} {}",
        response.0,
        String::from_utf8_lossy(&response.1)
    );
});
