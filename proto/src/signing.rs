//! Request signing for the gRPC API: how a client proves which access key it holds on every
//! request without the secret ever travelling.
//!
//! Each request carries, as metadata:
//!
//! - `x-quiver-date`: the signing time in Unix milliseconds;
//! - `x-quiver-nonce`: 32 random hex digits, new for every request;
//! - `x-quiver-content-sha256`: the SHA-256 (hex) of the HTTP/2 request body (the gRPC frames
//!   as sent);
//! - `authorization`: `QUIVER-HMAC-SHA256 Credential=<access key id>, Signature=<hex>`, where the
//!   signature is HMAC-SHA256, keyed with the secret access key, over
//!   `QUIVER-HMAC-SHA256\n<date>\n<method path>\n<nonce>\n<content sha256>`.
//!
//! The server recomputes the body's digest and the signature, refuses a date outside
//! [`REPLAY_WINDOW`] of its clock, and refuses a signature it has already seen within the window
//! (a replay). The scheme is AWS Signature V4's idea (a keyed hash over the method, the time
//! and the payload digest) in a form that suits gRPC metadata.
//!
//! [`Signed`] is the client side: a tower service around a channel that signs each request.
//! [`Credentials::load`] finds a client's key: `QUIVER_ACCESS_KEY_ID` and
//! `QUIVER_SECRET_ACCESS_KEY`, else the `QUIVER_PROFILE` (default `default`) profile of the
//! credentials file `QUIVER_SHARED_CREDENTIALS_FILE` (default `~/.quiver/credentials`), an
//! INI file in the AWS CLI's format.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use ring::rand::SecureRandom;

pub const AUTHORIZATION: &str = "authorization";
pub const DATE: &str = "x-quiver-date";
pub const NONCE: &str = "x-quiver-nonce";
pub const CONTENT_SHA256: &str = "x-quiver-content-sha256";
pub const ALGORITHM: &str = "QUIVER-HMAC-SHA256";

/// How far a request's date may be from the server's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// The text a signature covers.
pub fn string_to_sign(date: &str, path: &str, nonce: &str, content_sha256: &str) -> String {
    format!("{ALGORITHM}\n{date}\n{path}\n{nonce}\n{content_sha256}")
}

/// HMAC-SHA256 of `text` keyed with `secret`, in hex.
pub fn signature(secret: &str, text: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex(ring::hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Whether `signature_hex` is `text`'s signature under `secret`, compared in constant time.
pub fn verify(secret: &str, text: &str, signature_hex: &str) -> bool {
    let Some(tag) = unhex(signature_hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, text.as_bytes(), &tag).is_ok()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The `authorization` value for `key_id` and `signature`.
pub fn authorization(key_id: &str, signature: &str) -> String {
    format!("{ALGORITHM} Credential={key_id}, Signature={signature}")
}

/// `(access key id, signature)` from an `authorization` value.
pub fn parse_authorization(value: &str) -> Result<(&str, &str), String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| {
            format!("authorization: expected \"{ALGORITHM} Credential=..., Signature=...\"")
        })?;
    let mut key_id = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => key_id = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("authorization: unexpected {:?}", part.trim())),
        }
    }
    match (key_id, signature) {
        (Some(k), Some(s)) if !k.is_empty() && !s.is_empty() => Ok((k, s)),
        _ => Err("authorization: Credential and Signature are both required".into()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An access key: its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The environment's credentials, else the profile file's; `None` when neither has any.
    /// An unreadable or malformed file, or a named profile that is missing, is an error.
    pub fn load() -> Result<Option<Self>, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (env("QUIVER_ACCESS_KEY_ID"), env("QUIVER_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => {
                return Ok(Some(Self {
                    access_key_id,
                    secret_access_key,
                }));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    "QUIVER_ACCESS_KEY_ID and QUIVER_SECRET_ACCESS_KEY must be set together".into(),
                );
            }
            (None, None) => {}
        }
        let profile = env("QUIVER_PROFILE");
        let path = match env("QUIVER_SHARED_CREDENTIALS_FILE") {
            Some(p) => std::path::PathBuf::from(p),
            None => match env("HOME") {
                Some(home) => std::path::Path::new(&home)
                    .join(".quiver")
                    .join("credentials"),
                None => return Ok(None),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && profile.is_none() => {
                return Ok(None);
            }
            Err(e) => return Err(format!("credentials file {}: {e}", path.display())),
        };
        let name = profile.as_deref().unwrap_or("default");
        match Self::from_profile(&text, name) {
            Ok(Some(c)) => Ok(Some(c)),
            Ok(None) if profile.is_none() => Ok(None),
            Ok(None) => Err(format!(
                "credentials file {}: no profile [{name}]",
                path.display()
            )),
            Err(e) => Err(format!("credentials file {}: {e}", path.display())),
        }
    }

    /// The `[profile]` section of an AWS-style credentials file, with `aws_access_key_id` and
    /// `aws_secret_access_key`.
    pub fn from_profile(text: &str, profile: &str) -> Result<Option<Self>, String> {
        let mut section: Option<&str> = None;
        let (mut id, mut secret) = (None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.trim());
                continue;
            }
            if section != Some(profile) {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected key = value", n + 1))?;
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Self {
                access_key_id,
                secret_access_key,
            })),
            (None, None) => Ok(None),
            _ => Err(format!(
                "profile [{profile}] needs both aws_access_key_id and aws_secret_access_key"
            )),
        }
    }

    /// The credentials file text for one profile (what the server writes for its root key).
    pub fn to_profile(&self, profile: &str) -> String {
        format!(
            "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.access_key_id, self.secret_access_key
        )
    }

    /// The metadata a request to `path` with body digest `content_sha256` carries.
    pub fn sign(&self, path: &str, content_sha256: &str) -> [(&'static str, String); 4] {
        let date = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let mut nonce = [0u8; 16];
        // The system's random source; failing it is not something a client can go on from.
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random number generator failed");
        let nonce = hex(&nonce);
        let text = string_to_sign(&date, path, &nonce, content_sha256);
        let signature = signature(&self.secret_access_key, &text);
        [
            (DATE, date),
            (NONCE, nonce),
            (CONTENT_SHA256, content_sha256.to_string()),
            (
                AUTHORIZATION,
                authorization(&self.access_key_id, &signature),
            ),
        ]
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC transport (a tonic `Channel`) that signs each request with `credentials`, or passes
/// requests through unchanged without them.
#[derive(Clone, Debug)]
pub struct Signed<S> {
    inner: S,
    credentials: Option<Arc<Credentials>>,
}

impl<S> Signed<S> {
    pub fn new(inner: S, credentials: Option<Credentials>) -> Self {
        Self {
            inner,
            credentials: credentials.map(Arc::new),
        }
    }
}

impl<S> tower_service::Service<http::Request<tonic::body::Body>> for Signed<S>
where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let Some(credentials) = self.credentials.clone() else {
            let call = self.inner.call(request);
            return Box::pin(async move { call.await.map_err(Into::into) });
        };
        // The service polled ready goes with this call; `self` keeps a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            // Request bodies are one message (every method is unary or server-streaming).
            let bytes = body.collect().await?.to_bytes();
            let digest = sha256_hex(&bytes);
            for (name, value) in credentials.sign(parts.uri.path(), &digest) {
                parts
                    .headers
                    .insert(name, http::HeaderValue::try_from(value)?);
            }
            let body = tonic::body::Body::new(http_body_util::Full::new(bytes));
            inner
                .call(http::Request::from_parts(parts, body))
                .await
                .map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let text = string_to_sign(
            "1",
            "/quiver.featurestore.v1.FeatureStore/GetRecord",
            "n",
            "d",
        );
        let sig = signature("secret", &text);
        assert!(verify("secret", &text, &sig));
        assert!(!verify("other", &text, &sig));
        assert!(!verify(
            "secret",
            &text.replace("GetRecord", "PutRecord"),
            &sig
        ));
        assert!(!verify("secret", &text, "zz"));
        let auth = authorization("AKQV1", &sig);
        assert_eq!(parse_authorization(&auth).unwrap(), ("AKQV1", sig.as_str()));
        assert!(parse_authorization("Bearer x").is_err());
        assert!(parse_authorization("QUIVER-HMAC-SHA256 Credential=, Signature=x").is_err());
    }

    #[test]
    fn profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n[ops]\n# c\naws_access_key_id=B\naws_secret_access_key=T\n";
        let c = Credentials::from_profile(text, "ops").unwrap().unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("B", "T")
        );
        assert!(Credentials::from_profile(text, "nope").unwrap().is_none());
        assert!(Credentials::from_profile("[x]\naws_access_key_id = A\n", "x").is_err());
        let round = Credentials::from_profile(&c.to_profile("p"), "p")
            .unwrap()
            .unwrap();
        assert_eq!(round, c);
        assert!(!format!("{c:?}").contains('T'));
    }
}
