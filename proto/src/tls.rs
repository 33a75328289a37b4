//! TLS for clients of Quiver's gRPC listeners (rustls, with ring as the crypto provider).
//!
//! An `https://` endpoint is reached over TLS. The server's certificate is checked against the
//! PEM bundle named by `QUIVER_CA_CERT` or, without it, the system's trusted roots; the name
//! checked is the endpoint's host (a DNS name or an IP address, which the certificate must list).
//! `QUIVER_CLIENT_CERT` and `QUIVER_CLIENT_KEY` (PEM) present a client certificate for mutual
//! TLS: a server configured with `tls_client_ca` authenticates a request that carries no
//! signature as the principal named by the certificate's subject common name
//! (docs/security.md).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// PEM bundle of the certificate authorities trusted for the server's certificate.
pub const CA_CERT: &str = "QUIVER_CA_CERT";
/// PEM certificate (chain) presented to the server for mutual TLS.
pub const CLIENT_CERT: &str = "QUIVER_CLIENT_CERT";
/// PEM private key of `QUIVER_CLIENT_CERT`.
pub const CLIENT_KEY: &str = "QUIVER_CLIENT_KEY";

/// The crypto provider of every TLS configuration in Quiver, server's and clients'.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`; an error names the file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: cannot read a PEM private key: {e}", path.display()))
}

/// The TLS settings of the environment for an `https://` endpoint; none for any other.
pub fn for_endpoint(endpoint: &str) -> Result<Option<ClientTls>, String> {
    if endpoint.starts_with("https://") {
        ClientTls::from_env().map(Some)
    } else {
        Ok(None)
    }
}

/// A client's TLS settings; cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// From `QUIVER_CA_CERT`, `QUIVER_CLIENT_CERT` and `QUIVER_CLIENT_KEY`.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let client = match (var(CLIENT_CERT), var(CLIENT_KEY)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{CLIENT_CERT} and {CLIENT_KEY} must be set together"
                ));
            }
        };
        Self::new(
            var(CA_CERT).as_deref(),
            client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
    }

    /// Trusts the certificates of the PEM bundle `ca` (the system's roots without it), and
    /// presents the client certificate and key `client` when given.
    pub fn new(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        format!("{}: not a usable CA certificate: {e}", path.display())
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(format!(
                        "no trusted root certificates on this system: set {CA_CERT} to the PEM \
                         file of the server's certificate authority"
                    ));
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| {
                    format!(
                        "{} and {}: not a matching certificate and key: {e}",
                        cert.display(),
                        key.display()
                    )
                })?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self::with_config(config))
    }

    fn with_config(mut config: ClientConfig) -> Self {
        // gRPC is HTTP/2; servers (and grpc-go clients) insist on agreeing on it in the handshake.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// A channel to `endpoint` (an `https://` URI) over TLS.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint.connect_with_connector(self.connector()).await
    }

    /// A channel to `endpoint` over TLS that connects on first use.
    pub fn connect_lazy(&self, endpoint: &Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(self.connector())
    }

    /// A TLS connection to `uri`'s host and port (443 if none), for callers that speak HTTP/2
    /// themselves.
    pub async fn connect_stream(&self, uri: &Uri) -> io::Result<TlsStream<TcpStream>> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::other(format!("{uri}: names no host")))?;
        // An IPv6 host comes bracketed in URIs.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::other(format!("{host}: not a DNS name or IP address: {e}")))?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }

    fn connector(&self) -> Connector {
        Connector { tls: self.clone() }
    }
}

/// tonic's connector for `https://` endpoints.
#[derive(Clone)]
struct Connector {
    tls: ClientTls,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move { tls.connect_stream(&uri).await.map(TokioIo::new) })
    }
}
