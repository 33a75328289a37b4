//! Authentication of the SageMaker-compatible HTTP API, as one middleware in front of every
//! route: the request's AWS Signature V4 is verified (boto3 and the SageMaker SDK sign with a
//! Quiver access key as they would with an AWS one), or, unsigned, the connection's client
//! certificate names the principal. The caller goes to the handler, which authorizes what it
//! parsed with SageMaker's action name on the feature group it names, with the features it
//! reads or writes as `quiver:FeatureNames` ([`crate::Api::authorize`]), as the gRPC
//! handlers do. A success from a handler that authorized nothing is refused. OpenLineage's
//! `POST /api/v1/lineage` also takes `Authorization: Bearer <access key id>:<secret>`, the way
//! its producers send an API key.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::wire::AwsError;
use quiver_auth::sigv4::SignedRequest;
use quiver_auth::{Access, Caller};
use quiver_net::Peer;
use quiver_types::error::Error;

#[derive(Clone)]
pub struct AuthState {
    pub access: Arc<Access>,
    pub max_body: usize,
}

/// The caller a handler authorizes: the one the middleware authenticated, or, without
/// `--auth` (no middleware), the anonymous caller.
pub fn caller(authenticated: Option<Extension<Caller>>) -> Caller {
    match authenticated {
        Some(Extension(caller)) => caller,
        None => Caller::anonymous().clone(),
    }
}

/// The middleware: 403 for a bad signature; the handlers answer AccessDenied for what
/// policies do not allow.
pub async fn authenticate(
    State(state): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let fail = |e: Error| AwsError::for_path(&path, e).into_response();
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let source_ip = peer.addr.map(|a| a.ip());
    let (parts, body) = request.into_parts();
    // Already read whole, within the limit, by `crate::read_body`.
    let body = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(e) => return fail(super::wire::body_error(&e, state.max_body)),
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
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|_| path == crate::openlineage::PATH);
        let principal = if let Some(token) = bearer {
            // OpenLineage producers send an API key; Quiver's is `<key id>:<secret>`.
            state
                .access
                .authenticate_bearer(token.trim(), source_ip, &path)
                .map(Some)
        } else if parts.headers.contains_key("authorization") || peer.certificate_name.is_none() {
            state
                .access
                .authenticate_sigv4(&signed, source_ip)
                .map(Some)
        } else {
            Ok(None)
        };
        principal
            .and_then(|p| {
                state.access.authenticate_certificate(
                    peer.certificate_name.as_deref(),
                    source_ip,
                    p,
                    parts.uri.path(),
                )
            })
            .map(|principal| Caller::new(Some(principal), source_ip, peer.secure))
    };
    let caller = match checked {
        Ok(caller) => caller,
        Err(e) => return fail(e),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    if response.status().is_success() && !caller.was_checked() {
        tracing::error!(
            path = %path,
            "a SageMaker operation answered without an authorization check"
        );
        return fail(Error::internal(format!(
            "{path} ran no authorization check; refusing to answer"
        )));
    }
    response
}
