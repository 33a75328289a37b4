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
use tonic::transport::server::TcpConnectInfo;

use super::access::{Access, Caller};

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
    /// Whether the listener is TLS (`aws:SecureTransport`).
    secure: bool,
    /// The largest request body read for its digest (the server's request size limit).
    max_body: usize,
}

impl AuthLayer {
    pub fn new(access: Arc<Access>, secure: bool, max_body: usize) -> Self {
        Self {
            access,
            secure,
            max_body,
        }
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
        let source_ip = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|a| a.ip());
        let path = request.uri().path().to_string();
        let layer = self.layer.clone();
        // Without authentication nothing is attached: handlers then act for the anonymous
        // caller (`Caller::anonymous`), and the request path pays for no extensions.
        if !layer.access.enabled() {
            return Box::pin(self.inner.call(request));
        }
        if is_public(&path) {
            let caller = Caller::new(None, source_ip, layer.secure);
            layer.access.public(&caller);
            request.extensions_mut().insert(caller);
            return Box::pin(self.inner.call(request));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
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
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                match layer
                    .access
                    .authenticate_grpc(&path, header, &digest, source_ip)
                {
                    Ok(principal) => {
                        request = http::Request::from_parts(
                            parts,
                            Body::new(http_body_util::Full::new(bytes)),
                        );
                        Caller::new(Some(principal), source_ip, layer.secure)
                    }
                    Err(e) => return Ok(e.to_status().into_http()),
                }
            };
            request.extensions_mut().insert(caller.clone());
            let response = inner.call(request).await?;
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
        })
    }
}
