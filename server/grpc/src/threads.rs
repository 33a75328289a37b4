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

use std::sync::Arc;

use anyhow::Context as _;
use quiver_proto::coalescing::Coalescing;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::Router;

/// The gRPC routes behind the authentication layer.
pub type Routes = Router<tower_layer::Stack<crate::auth_layer::AuthLayer, tower_layer::Identity>>;

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
    limits: quiver_net::Limits,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let gate = quiver_net::Gate::new("grpc", limits.max_connections, quiver_net::Refusal::Close);
    let mut senders = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<(std::net::TcpStream, quiver_net::Place)>();
        let (done_tx, done_rx) = oneshot::channel::<anyhow::Result<()>>();
        let routes = routes.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        std::thread::Builder::new()
            .name(format!("quiver-grpc-{index}"))
            .spawn(move || {
                let result = serve_thread(rx, routes, stop, tls, limits.idle_timeout);
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
        // Past the cap the connection is closed at once.
        let Some((stream, place)) = gate.enter(stream) else {
            continue;
        };
        // Small request/response messages: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => (s, place),
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
    connections: mpsc::UnboundedReceiver<(std::net::TcpStream, quiver_net::Place)>,
    routes: RoutesFactory,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
    idle: std::time::Duration,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a gRPC serving runtime")?;
    runtime.block_on(async move {
        // This thread's PutRecords are answered through one message per write.
        tokio::spawn(quiver_core::group_commit::relay_replies());
        // TLS handshakes (if any) run as tasks of this thread, so the connection stays on it.
        let connections =
            UnboundedReceiverStream::new(connections).filter_map(|(stream, place)| {
                let addr = stream.peer_addr().ok();
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(stream));
                match stream {
                    Ok(stream) => Some(quiver_net::Accepted {
                        io: Coalescing::yielding(stream),
                        addr,
                        place,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "taking over a gRPC connection failed");
                        None
                    }
                }
            });
        let incoming = quiver_net::incoming(quiver_net::accept(connections, tls, idle));
        routes()
            .serve_with_incoming_shutdown(incoming, stopped(stop))
            .await
            .context("gRPC server failed")
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
