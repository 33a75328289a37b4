//! Serves the HTTP listener (HTTP/1.1, the SageMaker API, metrics and health) within its
//! [`Limits`]: each request's headers must arrive within the idle timeout, as must the next
//! request on a kept-alive connection, or the connection is closed; each request's body must
//! arrive whole within the body timeout, or reading it fails ([`BodyTimedOut`]) and the
//! handler answers with an error. The handlers find the connection's [`Peer`] in each
//! request's extensions, as axum's `ConnectInfo<Peer>`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

use crate::{Listener, Peer};

/// Serves `router` on `listener` until `shutdown` completes; then each connection finishes
/// the request in hand, and this returns when all have closed.
pub async fn serve(
    mut listener: Listener,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let limits = listener.limits;
    let (close, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = listener.connections.recv() => match conn {
                Some(conn) => conn,
                None => break,
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let peer = conn.peer().clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request =
                request.map(|body| Body::new(TimedBody::new(body, limits.body_timeout)));
            request
                .extensions_mut()
                .insert(ConnectInfo::<Peer>(peer.clone()));
            router.clone().call(request)
        });
        let mut closing = closing.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(conn), service);
            let mut connection = std::pin::pin!(connection);
            let closed = async move {
                let _ = closing.wait_for(|c| *c).await;
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                }
                () = closed => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = close.send(true);
    while connections.join_next().await.is_some() {}
}

/// A request body that fails once it has taken longer than its time to arrive.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// A request body that did not arrive within the body timeout.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s (body_timeout_secs)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
