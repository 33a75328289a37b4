//! The gRPC listeners' authentication layer: every request but health checks and reflection
//! must be signed (see `quiver_proto::signing`); the layer verifies the signature over the
//! request body, puts the [`Caller`] in the request's extensions for the handler to authorize,
//! and refuses to send a successful answer from a handler that never ran an authorization check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use tonic::body::Body;

use crate::status::ToStatus;
use quiver_auth::access::{Access, Caller};
use quiver_net::Peer;

/// Services any client may call without signing: they expose no data.
pub const PUBLIC_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

pub fn is_public(path: &str) -> bool {
    PUBLIC_SERVICES.iter().any(|p| path.starts_with(p))
}

#[derive(Clone)]
pub struct AuthLayer {
    access: Arc<Access>,
    /// The largest request body read for its digest (the server's request size limit).
    max_body: usize,
}

impl AuthLayer {
    pub fn new(access: Arc<Access>, max_body: usize) -> Self {
        Self { access, max_body }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let layer = self.layer.clone();
        // Without authentication nothing is attached: handlers then act for the anonymous
        // caller (`Caller::anonymous`), and the request path pays for no extensions.
        if !layer.access.enabled() {
            return Box::pin(self.inner.call(request));
        }
        let peer = request
            .extensions()
            .get::<Peer>()
            .cloned()
            .unwrap_or_default();
        let source_ip = peer.addr.map(|a| a.ip());
        let path = request.uri().path().to_string();
        if is_public(&path) {
            let caller = Caller::new(None, source_ip, peer.secure);
            layer.access.public(&caller);
            request.extensions_mut().insert(caller);
            return Box::pin(self.inner.call(request));
        }
        // An unsigned request on a connection with a verified client certificate is
        // authenticated by the certificate: the body need not be read for a digest.
        let signed = request
            .headers()
            .contains_key(quiver_proto::signing::AUTHORIZATION);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !signed && peer.certificate_name.is_some() {
            return Box::pin(async move {
                let caller = match layer.access.authenticate_certificate(
                    peer.certificate_name.as_deref(),
                    source_ip,
                    None,
                    &path,
                ) {
                    Ok(principal) => Caller::new(Some(principal), source_ip, peer.secure),
                    Err(e) => return Ok(e.to_status().into_http()),
                };
                request.extensions_mut().insert(caller.clone());
                checked_answer(inner.call(request).await?, &caller, &path)
            });
        }
        Box::pin(async move {
            let caller = {
                let (parts, body) = request.into_parts();
                // The digest needs the whole body; the request size limit bounds it.
                let limit = layer.max_body + 5;
                let bytes = match http_body_util::Limited::new(body, limit).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(e) => {
                        let status = if e.is::<http_body_util::LengthLimitError>() {
                            tonic::Status::out_of_range(format!(
                                "the request is larger than the server's limit of {} bytes",
                                layer.max_body
                            ))
                        } else {
                            tonic::Status::cancelled(format!("reading the request: {e}"))
                        };
                        return Ok(status.into_http());
                    }
                };
                let digest = quiver_proto::signing::sha256_hex(&bytes);
                let authorization = parts
                    .headers
                    .get(quiver_proto::signing::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                let principal = layer
                    .access
                    .authenticate_grpc(&path, authorization, &digest, source_ip)
                    .and_then(|p| {
                        layer.access.authenticate_certificate(
                            peer.certificate_name.as_deref(),
                            source_ip,
                            Some(p),
                            &path,
                        )
                    });
                match principal {
                    Ok(principal) => {
                        request = http::Request::from_parts(
                            parts,
                            Body::new(http_body_util::Full::new(bytes)),
                        );
                        Caller::new(Some(principal), source_ip, peer.secure)
                    }
                    Err(e) => return Ok(e.to_status().into_http()),
                }
            };
            request.extensions_mut().insert(caller.clone());
            checked_answer(inner.call(request).await?, &caller, &path)
        })
    }
}

/// `response`, unless it is a success from a handler that ran no authorization check.
fn checked_answer<E>(
    response: http::Response<Body>,
    caller: &Caller,
    path: &str,
) -> Result<http::Response<Body>, E> {
    // An error answer carries grpc-status in its headers; a success does not.
    let failed = response.headers().contains_key("grpc-status");
    if !failed && !caller.was_checked() {
        tracing::error!(
            path,
            "a gRPC method answered without an authorization check"
        );
        return Ok(tonic::Status::internal(format!(
            "{path} ran no authorization check; refusing to answer"
        ))
        .into_http());
    }
    Ok(response)
}
