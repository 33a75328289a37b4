//! A connection wrapper that sends HTTP/2 frames ready together in one write: the server wraps
//! each gRPC connection in it (responses), and the load generator its own (requests).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection that tells h2 it has no vectored writes, and buffers small writes until h2
/// flushes.
///
/// h2 copies a DATA frame into its own write buffer only below a threshold: 256 bytes on a
/// connection with vectored writes, 1 KB without. Larger frames are written before anything
/// else can be buffered, so ~1 KB GetRecord responses (and PutRecord requests) left one
/// `writev` each. Without vectored writes, frames up to 1 KB are copied and the frames that are
/// ready together leave in one `write`. Larger payloads are not copied: they go out in one
/// `writev` together with whatever is buffered before them, as h2 itself would have written them.
pub struct Coalescing<S> {
    stream: S,
    /// Written, in order, before anything else.
    pending: Vec<u8>,
    /// Whether a flush first lets the thread's other ready tasks run (see `poll_flush`).
    yield_before_flush: bool,
    /// The yield a flush is waiting on.
    yielding: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The current flush has yielded once and is now writing.
    yielded: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Coalescing<S> {
    /// Writes up to this size are buffered; larger ones are written at once, without a copy.
    pub const COPY_LIMIT: usize = 4 * 1024;

    /// Small writes wait for h2's flush and leave with it. What the load generator uses: its
    /// requests are made ready on its one thread, before the connection task writes them.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            yield_before_flush: false,
            yielding: None,
            yielded: false,
        }
    }

    /// As [`Coalescing::new`], and each flush first lets this thread's other ready tasks run
    /// once (see `poll_flush`). What the server uses: its answers become ready one by one.
    pub fn yielding(stream: S) -> Self {
        Self {
            yield_before_flush: true,
            ..Self::new(stream)
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
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

    /// Made [`Coalescing::yielding`], a flush first lets this thread's other ready tasks run once
    /// (a yield): answers that became ready together then leave in one write. This matters for PutRecord, whose
    /// handlers are woken one by one from the group-commit writer's thread; without the yield
    /// each woke the connection, which flushed its one answer (1.0 sends per put; 0.55 with it;
    /// docs/benchmarks.md). The load generator's requests gain nothing from it: a yield there
    /// cost 4% of GetRecord's throughput and saved nothing on PutRecord's.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.yield_before_flush && !self.pending.is_empty() && !self.yielded {
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
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Small writes are held until a flush, large ones go out with what is held before them;
    /// the peer receives every byte in order, including a write far larger than a socket buffer.
    #[tokio::test]
    async fn coalescing_keeps_order_and_loses_nothing() {
        keeps_order_and_loses_nothing(Coalescing::new).await;
        keeps_order_and_loses_nothing(Coalescing::yielding).await;
    }

    async fn keeps_order_and_loses_nothing(wrap: fn(TcpStream) -> Coalescing<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            peer.read_to_end(&mut received).await.unwrap();
            received
        });
        let mut conn = wrap(TcpStream::connect(addr).await.unwrap());
        let chunk = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| seed.wrapping_add((i % 251) as u8)).collect()
        };
        let writes = [
            chunk(100, 1),
            chunk(9, 2),
            chunk(Coalescing::<TcpStream>::COPY_LIMIT + 1, 3),
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
