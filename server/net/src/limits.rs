//! What one client can hold on a listener: a share of a capped number of connections, a new
//! connection that stays silent only so long, and (on HTTP) headers and bodies that must
//! arrive in time. Past a bound the client is refused in its protocol's terms (HTTP 503 for
//! one connection too many, a closed connection for a silent one) and the others are served
//! as before.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bounds of one listener (docs/operations.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long a connection may stay silent: before its first byte (after its TLS
    /// handshake), and on HTTP/1 while a request's headers arrive or between requests.
    pub idle_timeout: Duration,
    /// How long an HTTP request's body may take to arrive, whole.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Concurrent requests (HTTP/2 streams) one gRPC or Flight SQL connection may have open;
/// more wait for one to end (the client is told in the connection's settings).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// The most header bytes one HTTP/2 request may send.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// How often an HTTP/2 connection that is quiet is pinged, and how long the answer may take
/// before the connection is closed: a peer that is gone, or never spoke HTTP/2, lets go.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a listener refuses a connection past its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Closes it at once (HTTP/2 listeners: the client's library reports the connection
    /// refused, gRPC's UNAVAILABLE).
    Close,
    /// Answers `503 Service Unavailable` first (plain HTTP/1).
    Http,
}

/// The connections open on one listener, counted against its cap.
#[derive(Debug, Clone)]
pub struct Gate {
    listener: &'static str,
    open: Arc<Semaphore>,
    max: usize,
    refusal: Refusal,
}

impl Gate {
    pub fn new(listener: &'static str, max: usize, refusal: Refusal) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(max)),
            max,
            refusal,
        }
    }

    /// A place for `stream`, or none: then it is refused (in a task of its own) and dropped.
    pub fn enter(&self, stream: TcpStream) -> Option<(TcpStream, Place)> {
        match self.open.clone().try_acquire_owned() {
            Ok(permit) => {
                metrics::gauge!("quiver_connections_open", "listener" => self.listener)
                    .increment(1.0);
                Some((
                    stream,
                    Place {
                        _permit: permit,
                        listener: self.listener,
                    },
                ))
            }
            Err(_) => {
                metrics::counter!("quiver_connections_refused_total", "listener" => self.listener)
                    .increment(1);
                tracing::warn!(
                    listener = self.listener,
                    max_connections = self.max,
                    "refusing a connection: the listener holds its most"
                );
                if self.refusal == Refusal::Http {
                    let max = self.max;
                    tokio::spawn(refuse_http(stream, max));
                }
                None
            }
        }
    }

    /// The connections open now.
    pub fn open(&self) -> usize {
        self.max - self.open.available_permits()
    }
}

/// One open connection's place under its listener's cap, given back when it closes.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    listener: &'static str,
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("quiver_connections_open", "listener" => self.listener).decrement(1.0);
    }
}

async fn refuse_http(mut stream: TcpStream, max: usize) {
    let body = format!(
        "the server holds its most connections on this listener ({max}, max_connections); \
         try again later or reuse a connection\n"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
