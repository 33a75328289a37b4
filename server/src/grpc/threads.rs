//! Serves gRPC on dedicated threads, one single-threaded tokio runtime each (thread per core).
//!
//! Why not the shared multi-threaded runtime: each HTTP/2 connection has one task that reads and
//! writes its socket and one task per request. On a work-stealing runtime the two run on
//! different cores at once: the connection task wakes for every response on the other core, and
//! tasks migrate between cores, so each request paid cross-core wake-ups and scheduler work
//! (server CPU per GetRecord 62-80 µs; 48-54 µs with this, docs/benchmarks.md). With a
//! connection's tasks on one thread, a wake-up is a push on a local queue. Each connection is
//! served by the thread it was handed to (round robin); the acceptor runs on the main runtime.
//!
//! Connections are wrapped in [`Coalescing`], so that the responses that are ready together
//! also leave in one write, including those that become ready together on other threads.
//!
//! A single connection is thus served by one core at a time, as in Redis; clients that want
//! more open more connections (most gRPC client libraries pool several per channel on demand).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::Router;

/// The gRPC routes behind the authentication layer.
pub type Routes = Router<tower_layer::Stack<crate::auth::grpc::AuthLayer, tower_layer::Identity>>;

/// Builds the gRPC routes; called once per serving thread.
pub type RoutesFactory = Arc<dyn Fn() -> Routes + Send + Sync>;

/// Accepts connections on `listener` and serves them on `threads` threads until `stop` says so;
/// then each thread finishes its in-flight requests (tonic's graceful shutdown) and ends.
pub async fn serve(
    listener: TcpListener,
    threads: usize,
    routes: RoutesFactory,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let mut senders = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done_tx, done_rx) = oneshot::channel::<anyhow::Result<()>>();
        let routes = routes.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        std::thread::Builder::new()
            .name(format!("quiver-grpc-{index}"))
            .spawn(move || {
                let result = serve_thread(rx, routes, stop, tls);
                let _ = done_tx.send(result);
            })
            .context("starting a gRPC serving thread")?;
        senders.push(tx);
        finished.push(done_rx);
    }

    let mut stop_accepting = stop.clone();
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_accepting.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                tracing::warn!(error = %e, "accepting a gRPC connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small request/response messages: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "handing a gRPC connection to a serving thread failed");
                continue;
            }
        };
        if senders[next % threads].send(stream).is_err() {
            anyhow::bail!("gRPC serving thread {} ended unexpectedly", next % threads);
        }
        next = next.wrapping_add(1);
    }
    drop(senders);
    for done in finished {
        done.await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a gRPC serving thread panicked")))?;
    }
    Ok(())
}

fn serve_thread(
    connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    routes: RoutesFactory,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a gRPC serving runtime")?;
    runtime.block_on(async move {
        // This thread's PutRecords are answered through one message per write.
        tokio::spawn(crate::group_commit::relay_replies());
        // TLS handshakes (if any) run as tasks of this thread, so the connection stays on it.
        let connections = UnboundedReceiverStream::new(connections).filter_map(|stream| {
            let addr = stream.peer_addr().ok();
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream));
            match stream {
                Ok(stream) => Some((Coalescing::new(stream), addr)),
                Err(e) => {
                    tracing::warn!(error = %e, "taking over a gRPC connection failed");
                    None
                }
            }
        });
        let incoming = crate::tls::incoming(crate::tls::accept(connections, tls));
        routes()
            .serve_with_incoming_shutdown(incoming, stopped(stop))
            .await
            .context("gRPC server failed")
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A connection that tells h2 it has no vectored writes, and buffers small writes until h2
/// flushes.
///
/// h2 copies a DATA frame into its own write buffer only below a threshold: 256 bytes on a
/// connection with vectored writes, 1 KB without. Larger frames are written before anything
/// else can be buffered, so ~1 KB GetRecord responses left one `writev` each. Without vectored
/// writes, frames up to 1 KB are copied and the responses that are ready together leave in one
/// `write`. Larger payloads are not copied: they go out in one `writev` together with whatever
/// is buffered before them, as h2 itself would have written them.
struct Coalescing {
    stream: tokio::net::TcpStream,
    /// Written, in order, before anything else.
    pending: Vec<u8>,
    /// The yield a flush is waiting on (see `poll_flush`).
    yielding: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The current flush has yielded once and is now writing.
    yielded: bool,
}

impl Coalescing {
    /// Writes up to this size are buffered; larger ones are written at once, without a copy.
    const COPY_LIMIT: usize = 4 * 1024;

    fn new(stream: tokio::net::TcpStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            yielding: None,
            yielded: false,
        }
    }

    /// Writes what is buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Coalescing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalescing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if data.len() <= Self::COPY_LIMIT {
            this.pending.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        loop {
            if this.pending.is_empty() {
                return Pin::new(&mut this.stream).poll_write(cx, data);
            }
            let slices = [io::IoSlice::new(&this.pending), io::IoSlice::new(data)];
            let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let buffered = this.pending.len();
            this.pending.drain(..n.min(buffered));
            if n > buffered {
                return Poll::Ready(Ok(n - buffered));
            }
        }
    }

    /// Before writing, a flush lets this thread's other ready tasks run once (a yield): answers
    /// that became ready together then leave in one write. This matters for PutRecord, whose
    /// handlers are woken one by one from the group-commit writer's thread; without the yield
    /// each woke the connection, which flushed its one answer (1.0 sends per put; 0.55 with it;
    /// docs/benchmarks.md).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() && !self.yielded {
            let yielding = self
                .yielding
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            ready!(yielding.as_mut().poll(cx));
            self.yielded = true;
        }
        self.yielding = None;
        ready!(self.poll_drain(cx))?;
        self.yielded = false;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Small writes are held until a flush, large ones go out with what is held before them;
    /// the peer receives every byte in order, including a write far larger than a socket buffer.
    #[tokio::test]
    async fn coalescing_keeps_order_and_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            peer.read_to_end(&mut received).await.unwrap();
            received
        });
        let mut conn = Coalescing::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let chunk = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| seed.wrapping_add((i % 251) as u8)).collect()
        };
        let writes = [
            chunk(100, 1),
            chunk(9, 2),
            chunk(Coalescing::COPY_LIMIT + 1, 3),
            chunk(1000, 4),
            chunk(8 << 20, 5),
            chunk(7, 6),
        ];
        let mut expected = Vec::new();
        for data in &writes {
            conn.write_all(data).await.unwrap();
            expected.extend_from_slice(data);
        }
        assert!(
            !conn.pending.is_empty(),
            "the last small write waits for a flush"
        );
        conn.flush().await.unwrap();
        assert!(conn.pending.is_empty());
        conn.shutdown().await.unwrap();
        let received = reader.await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes arrived out of order");
    }
}
