//! Certificates for the TLS tests, made with the `openssl` command: a certificate authority, a
//! server certificate for `localhost` and 127.0.0.1, and client certificates whose subject
//! common name is a principal's name.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    dir: PathBuf,
    /// The certificate authority's certificate (PEM): clients trust it, the server takes its
    /// client certificates.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A certificate and its key (PEM files).
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    /// A new authority named `name`, with a server certificate, under `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-noenc",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        let mut pki = Self {
            ca: dir.join("ca.pem"),
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            dir,
        };
        let server = pki.issue(
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        pki.server_cert = server.cert;
        pki.server_key = server.key;
        pki
    }

    /// A client certificate whose subject common name is `name`.
    pub fn client(&self, name: &str) -> Issued {
        self.issue(name, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, extensions: &str) -> Issued {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{extensions}"),
        )
        .unwrap();
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-noenc",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/O=Quiver tests/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        Issued {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }

    /// The server's flags for TLS, with mutual TLS by this authority when `mutual`.
    pub fn server_args(&self, mutual: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_string(),
            self.server_cert.display().to_string(),
            "--tls-key".to_string(),
            self.server_key.display().to_string(),
        ];
        if mutual {
            args.extend(["--tls-client-ca".to_string(), self.ca.display().to_string()]);
        }
        args
    }
}

/// An HTTP/1.1 TLS connection over `tcp`, trusting the authority `ca`, for `localhost`.
pub async fn https(
    tcp: tokio::net::TcpStream,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in quiver_proto::tls::read_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(quiver_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the HTTP listener")
}
