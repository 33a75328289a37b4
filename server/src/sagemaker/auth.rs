//! Authentication and authorization of the SageMaker-compatible HTTP API, as one middleware in
//! front of every route: the request's AWS Signature V4 is verified (boto3 and the SageMaker
//! SDK sign with a Quiver access key as they would with an AWS one), then each operation is
//! authorized with SageMaker's action name on the feature group it names, with the features it
//! reads or writes as `quiver:FeatureNames`, before any handler runs.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::wire::AwsError;
use crate::auth::sigv4::SignedRequest;
use crate::auth::{Access, Caller, Features};
use crate::error::{Error, Result};
use crate::feature_store::FeatureStore;
use crate::tls::Peer;

#[derive(Clone)]
pub struct AuthState {
    pub access: Arc<Access>,
    pub store: Arc<FeatureStore>,
    pub max_body: usize,
}

/// The middleware: 403 for a bad signature, AccessDenied for what policies do not allow.
pub async fn authenticate(
    State(state): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let control_plane = request.uri().path() == "/";
    let fail = |e: Error| {
        if control_plane {
            AwsError::control(e).into_response()
        } else {
            AwsError::runtime(e).into_response()
        }
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let source_ip = peer.addr.map(|a| a.ip());
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return fail(Error::limit(format!(
                "the request body is larger than the server's limit of {} bytes",
                state.max_body
            )));
        }
    };
    // Checked in a block: the borrowed header lookup is not held across the handler's await.
    let checked = {
        let header = |name: &str| -> Vec<String> {
            parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect()
        };
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            header: &header,
            body: &body,
        };
        // Unsigned on a connection with a verified client certificate: the certificate
        // authenticates (mutual TLS); signed: the signature, by the certificate's principal.
        let principal =
            if parts.headers.contains_key("authorization") || peer.certificate_name.is_none() {
                state
                    .access
                    .authenticate_sigv4(&signed, source_ip)
                    .map(Some)
            } else {
                Ok(None)
            };
        principal
            .and_then(|p| {
                state
                    .access
                    .authenticate_certificate(&peer, p, parts.uri.path())
            })
            .map(|principal| Caller::new(Some(principal), source_ip, peer.secure))
            .and_then(|caller| authorize(&state, &caller, &parts, &body).map(|()| caller))
    };
    let caller = match checked {
        Ok(caller) => caller,
        Err(e) => return fail(e),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// What each operation asks for.
fn authorize(
    state: &AuthState,
    caller: &Caller,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<()> {
    let check = |action: &str, group: Option<&str>, features: Features| {
        state
            .access
            .authorize_group(caller, action, &state.store, group, features)
    };
    let path = parts.uri.path();
    let method = parts.method.as_str();
    if path == "/" {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let operation = target.strip_prefix("SageMaker.").unwrap_or(target);
        let named: Named = serde_json::from_slice(body).unwrap_or_default();
        let action = format!("sagemaker:{operation}");
        return match operation {
            "ListFeatureGroups" | "Search" => check(&action, None, Features::Unnamed),
            "UpdateFeatureMetadata" | "DescribeFeatureMetadata" => {
                let feature = [named.feature_name.unwrap_or_default()];
                check(
                    &action,
                    Some(&named.feature_group_name.unwrap_or_default()),
                    Features::Named(&feature),
                )
            }
            _ => match named.feature_group_name {
                Some(group) => check(&action, Some(&group), Features::Unnamed),
                // An operation naming no group (or one Quiver does not have) needs the right
                // to it on every resource.
                None => check(&action, None, Features::Unnamed),
            },
        };
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["FeatureGroup", group]) => {
            let features: Vec<String> =
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .filter(|(k, _)| k == "FeatureName")
                    .map(|(_, v)| v.into_owned())
                    .collect();
            check(
                "sagemaker:GetRecord",
                Some(group),
                Features::Named(&features),
            )
        }
        ("PUT", ["FeatureGroup", group]) => {
            let record: RecordBody = serde_json::from_slice(body).unwrap_or_default();
            let features: Vec<String> = record.record.into_iter().map(|v| v.feature_name).collect();
            check(
                "sagemaker:PutRecord",
                Some(group),
                Features::Named(&features),
            )
        }
        ("DELETE", ["FeatureGroup", group]) => {
            check("sagemaker:DeleteRecord", Some(group), Features::Unnamed)
        }
        ("POST", ["FeatureGroup", group, "ListRecords"]) => {
            check("quiver:ListRecords", Some(group), Features::All)
        }
        ("POST", ["BatchGetRecord"]) => {
            let batch: BatchGetBody = serde_json::from_slice(body).unwrap_or_default();
            if batch.identifiers.is_empty() {
                return check("sagemaker:BatchGetRecord", None, Features::Unnamed);
            }
            for id in &batch.identifiers {
                let features = id.feature_names.clone().unwrap_or_default();
                check(
                    "sagemaker:BatchGetRecord",
                    Some(&id.feature_group_name),
                    Features::Named(&features),
                )?;
            }
            Ok(())
        }
        ("POST", ["BatchWriteRecord"]) => {
            let batch: BatchWriteBody = serde_json::from_slice(body).unwrap_or_default();
            if batch.entries.is_empty() {
                return check("sagemaker:PutRecord", None, Features::Unnamed);
            }
            for entry in &batch.entries {
                let features: Vec<String> = entry
                    .record
                    .iter()
                    .map(|v| v.feature_name.clone())
                    .collect();
                check(
                    "sagemaker:PutRecord",
                    Some(&entry.feature_group_name),
                    Features::Named(&features),
                )?;
            }
            Ok(())
        }
        // No such route: the router answers it, and it reaches nothing.
        _ => check("quiver:UnknownOperation", None, Features::Unnamed),
    }
}

// Just the names authorization needs; the handlers parse (and validate) the whole body.

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Named {
    feature_group_name: Option<String>,
    feature_name: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FeatureName {
    #[serde(default)]
    feature_name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordBody {
    #[serde(default)]
    record: Vec<FeatureName>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetIdentifier {
    #[serde(default)]
    feature_group_name: String,
    feature_names: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetBody {
    #[serde(default)]
    identifiers: Vec<BatchGetIdentifier>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteEntry {
    #[serde(default)]
    feature_group_name: String,
    #[serde(default)]
    record: Vec<FeatureName>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteBody {
    #[serde(default)]
    entries: Vec<BatchWriteEntry>,
}
