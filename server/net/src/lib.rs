//! TLS on the listeners (rustls), and what each connection tells about its peer.
//!
//! Every listener (gRPC, HTTP, Flight SQL) takes its connections through [`accept`]: with TLS
//! configured, each handshake runs in its own task (a slow or silent client holds up no other)
//! with a time limit, and only finished handshakes reach the HTTP/2 or HTTP/1 server. Each
//! connection carries a [`Peer`]: its address, whether it is TLS (`aws:SecureTransport`), and,
//! with mutual TLS, the name in its verified client certificate.
//!
//! Each listener also bounds what its clients hold ([`limits`]): a cap on open connections,
//! and a deadline for a new connection's first byte; the HTTP listener is served by [`http`],
//! which times requests' headers and bodies.
//!
//! Mutual TLS is optional per connection: with `tls_client_ca` set, a client may present a
//! certificate issued by that authority; the subject's common name is then a principal name,
//! which authenticates requests that carry no signature (docs/security.md). A certificate the
//! authority did not issue fails the handshake.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::{Stream, StreamExt};
use quiver_proto::tls::{provider, read_certs, read_key};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

pub mod http;
pub mod limits;

pub use limits::{Gate, Limits, Place, Refusal};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings as configured: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate authority of client certificates (mutual TLS); none: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// The loaded TLS configuration of the listeners.
#[derive(Clone)]
pub struct ServerTls {
    /// For the gRPC and Flight SQL listeners: HTTP/2 only.
    pub h2: TlsAcceptor,
    /// For the HTTP listener: HTTP/1.1.
    pub http1: TlsAcceptor,
}

impl ServerTls {
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let chain = read_certs(&files.cert).map_err(anyhow::Error::msg)?;
        let key = read_key(&files.key).map_err(anyhow::Error::msg)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS")?;
        let builder = match &files.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path).map_err(anyhow::Error::msg)? {
                    roots.add(cert).with_context(|| {
                        format!(
                            "tls_client_ca {}: not a usable CA certificate",
                            path.display()
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        // Optional: a client without a certificate signs its requests instead.
                        .allow_unauthenticated()
                        .build()
                        .with_context(|| format!("tls_client_ca {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).with_context(|| {
            format!(
                "tls_cert {} and tls_key {}: not a matching certificate and key",
                files.cert.display(),
                files.key.display()
            )
        })?;
        let with_alpn = |protocol: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            TlsAcceptor::from(Arc::new(config))
        };
        Ok(Self {
            h2: with_alpn(b"h2"),
            http1: with_alpn(b"http/1.1"),
        })
    }
}

/// What a connection tells about its peer; handlers find it in each request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// Over TLS.
    pub secure: bool,
    /// The subject common name of the client's verified certificate (mutual TLS).
    pub certificate_name: Option<Arc<str>>,
}

/// An accepted connection, plain or TLS.
pub struct Conn<IO> {
    io: Io<IO>,
    peer: Peer,
    /// Its place under the listener's cap, given back when it closes.
    _place: Place,
    /// Until its first byte: when it is closed if none came.
    silent: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Conn<IO> {
    fn new(io: Io<IO>, peer: Peer, place: Place, idle: Duration) -> Self {
        Self {
            io,
            peer,
            _place: place,
            silent: Some(Box::pin(tokio::time::sleep(idle))),
        }
    }

    /// The peer the connection came from.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

/// A connection as accepted, before TLS: its stream, its peer's address and its place under
/// the listener's cap.
pub struct Accepted<IO> {
    pub io: IO,
    pub addr: Option<SocketAddr>,
    pub place: Place,
}

enum Io<IO> {
    Plain(IO),
    Tls(Box<tokio_rustls::server::TlsStream<IO>>),
}

/// The connections of `connections`, after their TLS handshake when `tls` is given; failed
/// handshakes are logged and dropped. A connection that sends nothing for `idle` after it is
/// handed on is closed. Runs on the calling runtime.
pub fn accept<IO, S>(
    connections: S,
    tls: Option<TlsAcceptor>,
    idle: Duration,
) -> mpsc::Receiver<Conn<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Stream<Item = Accepted<IO>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut connections = std::pin::pin!(connections);
        while let Some(Accepted { io, addr, place }) = connections.next().await {
            let Some(acceptor) = &tls else {
                let peer = Peer {
                    addr,
                    ..Peer::default()
                };
                if tx
                    .send(Conn::new(Io::Plain(io), peer, place, idle))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let certificate_name = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|leaf| subject_common_name(leaf.as_ref()))
                            .map(Arc::from);
                        let peer = Peer {
                            addr,
                            secure: true,
                            certificate_name,
                        };
                        let _ = tx
                            .send(Conn::new(Io::Tls(Box::new(stream)), peer, place, idle))
                            .await;
                    }
                    Ok(Err(e)) => tracing::info!(peer = ?addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::info!(peer = ?addr, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// The accepted connections of `listener` that `gate` lets in (it refuses the others); accept
/// errors (out of file descriptors and the like) are logged, and accepting goes on.
pub fn tcp_connections(
    listener: TcpListener,
    gate: Gate,
) -> impl Stream<Item = Accepted<TcpStream>> + Send + 'static {
    futures::stream::unfold((listener, gate), |(listener, gate)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    let Some((stream, place)) = gate.enter(stream) else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let accepted = Accepted {
                        io: stream,
                        addr: Some(addr),
                        place,
                    };
                    return Some((accepted, (listener, gate)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// `receiver` as the stream of connections tonic serves.
pub fn incoming<IO>(
    receiver: mpsc::Receiver<Conn<IO>>,
) -> impl Stream<Item = io::Result<Conn<IO>>> + Send + 'static
where
    IO: Send + 'static,
{
    tokio_stream::wrappers::ReceiverStream::new(receiver).map(Ok)
}

impl<IO> tonic::transport::server::Connected for Conn<IO> {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

/// The HTTP listener's connections, TLS done, within its [`Limits`].
pub struct Listener {
    connections: mpsc::Receiver<Conn<TcpStream>>,
    limits: Limits,
}

impl Listener {
    pub fn new(listener: TcpListener, tls: Option<TlsAcceptor>, limits: Limits) -> Self {
        // Over TLS a refusal cannot be an HTTP response before the handshake: it closes.
        let refusal = if tls.is_some() {
            Refusal::Close
        } else {
            Refusal::Http
        };
        let gate = Gate::new("http", limits.max_connections, refusal);
        Self {
            connections: accept(tcp_connections(listener, gate), tls, limits.idle_timeout),
            limits,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match &mut this.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        };
        if let Some(silent) = &mut this.silent {
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.silent = None,
                Poll::Pending if silent.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing within the idle timeout",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    /// A TLS connection says it has no vectored writes, although tokio-rustls has them: h2
    /// then copies DATA frames up to 1 KB into its write buffer (256 bytes with vectored
    /// writes) and writes the responses that are ready together as one TLS record. With
    /// vectored writes every GetRecord response (~1 KB) made h2 flush on its own, one TLS
    /// record and one `send` each (1.14 sends per request against 0.15 in plain text;
    /// docs/benchmarks.md). rustls copies the data into a record either way, so the copy in
    /// h2's buffer replaces nothing cheaper.
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(_) => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The subject common name (OID 2.5.4.3) of a DER X.509 certificate, read with a minimal DER
/// walk: Certificate → tbsCertificate → [version] serial signature issuer validity subject.
/// The certificate was verified by rustls before this is called.
pub fn subject_common_name(certificate: &[u8]) -> Option<String> {
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    let (_, certificate, _) = der(certificate)?;
    let (_, tbs, _) = der(certificate)?;
    let (tag, _, mut rest) = der(tbs)?;
    if tag == 0xa0 {
        // [0] version came first; the serial number follows.
        rest = der(rest)?.2;
    }
    let rest = der(rest)?.2; // signature algorithm
    let rest = der(rest)?.2; // issuer
    let rest = der(rest)?.2; // validity
    let (_, mut names, _) = der(rest)?; // subject: SEQUENCE OF SET OF AttributeTypeAndValue
    while !names.is_empty() {
        let (_, mut set, next) = der(names)?;
        names = next;
        while !set.is_empty() {
            let (_, attribute, next) = der(set)?;
            set = next;
            let (tag, oid, value) = der(attribute)?;
            if tag == 0x06 && oid == COMMON_NAME {
                let (_, value, _) = der(value)?;
                return String::from_utf8(value.to_vec()).ok();
            }
        }
    }
    None
}

/// One DER element of `input`: (tag, contents, the rest of `input`).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let length = if first < 0x80 {
        first as usize
    } else {
        let octets = (first & 0x7f) as usize;
        if octets == 0 || octets > 4 || input.len() < octets {
            return None;
        }
        let (length, rest) = input.split_at(octets);
        input = rest;
        length.iter().fold(0usize, |n, &b| (n << 8) | b as usize)
    };
    (input.len() >= length).then(|| {
        let (contents, rest) = input.split_at(length);
        (tag, contents, rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long() {
        assert_eq!(
            der(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        assert_eq!(
            der(&long).map(|(_, c, r)| (c.len(), r.len())),
            Some((0x80, 0))
        );
        // Truncated contents and an indefinite length are refused.
        assert_eq!(der(&[0x04, 0x05, 0x01]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
        assert_eq!(subject_common_name(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
