//! Request signing for the gRPC API: how a client proves which access key it holds on every
//! request without the secret ever travelling.
//!
//! Each request carries one metadata entry:
//!
//! `authorization: QUIVER-HMAC-SHA256 Credential=<access key id>, Date=<unix ms>, Nonce=<hex>,
//! Signature=<hex>`
//!
//! where the nonce is 32 hex digits, new for every request, and the signature is HMAC-SHA256,
//! keyed with the secret access key, over
//! `QUIVER-HMAC-SHA256\n<date>\n<method path>\n<nonce>\n<content sha256>`, the last being the
//! SHA-256 (hex) of the HTTP/2 request body (the gRPC frames as sent). The digest is not sent:
//! the server computes it from the body it received, so a changed body fails the signature.
//!
//! The server recomputes the signature, refuses a date outside [`REPLAY_WINDOW`] of its clock,
//! and refuses a signature it has already seen within the window (a replay). The scheme is AWS
//! Signature V4's idea (a keyed hash over the method, the time and the payload digest) in one
//! header, which suits gRPC metadata: HTTP/2 compresses each request's headers against the ones
//! before, and a value that is new every time costs per header field.
//!
//! [`Signed`] is the client side: a tower service around a channel that signs each request.
//! [`Credentials::load`] finds a client's key: `QUIVER_ACCESS_KEY_ID` and
//! `QUIVER_SECRET_ACCESS_KEY`, else the `QUIVER_PROFILE` (default `default`) profile of the
//! credentials file `QUIVER_SHARED_CREDENTIALS_FILE` (default `~/.quiver/credentials`), an
//! INI file in the AWS CLI's format.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use ring::rand::SecureRandom;

pub const AUTHORIZATION: &str = "authorization";
pub const ALGORITHM: &str = "QUIVER-HMAC-SHA256";

/// How far a request's date may be from the server's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// The text a signature covers.
pub fn string_to_sign(date: &str, path: &str, nonce: &str, content_sha256: &str) -> String {
    [ALGORITHM, date, path, nonce, content_sha256].join("\n")
}

/// HMAC-SHA256 of `text` keyed with `secret`, in hex.
pub fn signature(secret: &str, text: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex(ring::hmac::sign(&key, text.as_bytes()).as_ref())
}

/// A secret access key made ready to sign and verify: the HMAC key state is computed once, not
/// per request.
#[derive(Clone)]
pub struct SigningKey(ring::hmac::Key);

impl SigningKey {
    pub fn new(secret: &str) -> Self {
        Self(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            secret.as_bytes(),
        ))
    }

    /// The HMAC of [`string_to_sign`]'s text, fed in its parts (the text is never built).
    fn tag(&self, date: &str, path: &str, nonce: &str, content_sha256: &str) -> ring::hmac::Tag {
        let mut context = ring::hmac::Context::with_key(&self.0);
        context.update(ALGORITHM.as_bytes());
        for part in [date, path, nonce, content_sha256] {
            context.update(b"\n");
            context.update(part.as_bytes());
        }
        context.sign()
    }

    /// The signature, in hex, of a request to `path` whose body has `content_sha256`.
    pub fn signature(&self, date: &str, path: &str, nonce: &str, content_sha256: &str) -> String {
        hex(self.tag(date, path, nonce, content_sha256).as_ref())
    }

    /// Whether `auth`'s signature is this key's for a request to `path` whose body has
    /// `content_sha256`, compared in constant time.
    pub fn verify(&self, auth: &Authorization<'_>, path: &str, content_sha256: &str) -> bool {
        let mut offered = [0u8; 32];
        if !unhex(auth.signature, &mut offered) {
            return false;
        }
        let tag = self.tag(auth.date, path, auth.nonce, content_sha256);
        let difference = tag
            .as_ref()
            .iter()
            .zip(offered)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// What an `authorization` value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub key_id: &'a str,
    /// Unix milliseconds, as signed (parsed by the verifier, which reports a bad one).
    pub date: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses `QUIVER-HMAC-SHA256 Credential=..., Date=..., Nonce=..., Signature=...`; the
    /// error names what is missing or unexpected.
    pub fn parse(value: &'a str) -> Result<Self, String> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| {
                format!(
                    "authorization: expected \"{ALGORITHM} Credential=..., Date=..., Nonce=..., \
                     Signature=...\""
                )
            })?;
        let (mut key_id, mut date, mut nonce, mut signature) = ("", "", "", "");
        for part in rest.split(',') {
            let slot = match part.trim().split_once('=') {
                Some(("Credential", v)) => (&mut key_id, v),
                Some(("Date", v)) => (&mut date, v),
                Some(("Nonce", v)) => (&mut nonce, v),
                Some(("Signature", v)) => (&mut signature, v),
                _ => return Err(format!("authorization: unexpected {:?}", part.trim())),
            };
            *slot.0 = slot.1;
        }
        for (name, v) in [
            ("Credential", key_id),
            ("Date", date),
            ("Nonce", nonce),
            ("Signature", signature),
        ] {
            if v.is_empty() {
                return Err(format!("authorization: {name} is missing"));
            }
        }
        Ok(Self {
            key_id,
            date,
            nonce,
            signature,
        })
    }

    /// The `authorization` value.
    pub fn to_header(&self) -> String {
        format!(
            "{ALGORITHM} Credential={}, Date={}, Nonce={}, Signature={}",
            self.key_id, self.date, self.nonce, self.signature
        )
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Decodes `text` into `out`, which it must fill exactly; false if it does not or is not hex.
fn unhex(text: &str, out: &mut [u8]) -> bool {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    if text.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// A per-process random prefix and a counter: 32 hex digits, never the same twice in this
/// process (nor, but by a 2^-64 chance, in another), without asking the system for randomness
/// per request. Uniqueness is all a nonce must give here: it keeps two identical requests signed
/// in the same millisecond from looking like a replay; the signature covers it.
fn nonce() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut seed = [0u8; 8];
        // The system's random source; failing it is not something a client can go on from.
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .expect("the system random number generator failed");
        u64::from_le_bytes(seed)
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&count.to_be_bytes());
    hex(&bytes)
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

    /// The `authorization` value for a request to `path` (`/package.Service/Method`) whose
    /// HTTP/2 body is `body`. A caller that signs many requests keeps a [`Signer`].
    pub fn sign(&self, path: &str, body: &[u8]) -> String {
        self.signer().sign(path, body)
    }

    /// What signs requests with this key.
    pub fn signer(&self) -> Signer {
        Signer {
            key_id: self.access_key_id.clone(),
            key: SigningKey::new(&self.secret_access_key),
        }
    }
}

/// Signs requests with one access key.
#[derive(Clone, Debug)]
pub struct Signer {
    key_id: String,
    key: SigningKey,
}

impl Signer {
    /// The `authorization` value for a request to `path` whose HTTP/2 body is `body`.
    pub fn sign(&self, path: &str, body: &[u8]) -> String {
        let date = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let nonce = nonce();
        let signature = self.key.signature(&date, path, &nonce, &sha256_hex(body));
        Authorization {
            key_id: &self.key_id,
            date: &date,
            nonce: &nonce,
            signature: &signature,
        }
        .to_header()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC transport (a tonic `Channel`) that signs each request with `credentials`, or passes
/// requests through unchanged without them.
#[derive(Clone, Debug)]
pub struct Signed<S> {
    inner: S,
    signer: Option<Arc<Signer>>,
}

impl<S> Signed<S> {
    pub fn new(inner: S, credentials: Option<Credentials>) -> Self {
        Self {
            inner,
            signer: credentials.map(|c| Arc::new(c.signer())),
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
        let Some(signer) = self.signer.clone() else {
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
            let authorization = signer.sign(parts.uri.path(), &bytes);
            parts
                .headers
                .insert(AUTHORIZATION, http::HeaderValue::try_from(authorization)?);
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
        assert_eq!(
            text,
            "QUIVER-HMAC-SHA256\n1\n/quiver.featurestore.v1.FeatureStore/GetRecord\nn\nd"
        );
        let sig = signature("secret", &text);
        assert_eq!(sig.len(), 64);
        let key = SigningKey::new("secret");
        let path = "/quiver.featurestore.v1.FeatureStore/GetRecord";
        // The key signs the same text as `string_to_sign` spells out.
        assert_eq!(key.signature("1", path, "n", "d"), sig);
        fn auth(signature: &str) -> Authorization<'_> {
            Authorization {
                key_id: "AKQV1",
                date: "1",
                nonce: "n",
                signature,
            }
        }
        assert!(key.verify(&auth(&sig), path, "d"));
        assert!(key.verify(&auth(&sig.to_uppercase()), path, "d"));
        assert!(!SigningKey::new("other").verify(&auth(&sig), path, "d"));
        let put = "/quiver.featurestore.v1.FeatureStore/PutRecord";
        assert!(!key.verify(&auth(&sig), put, "d"));
        assert!(!key.verify(&auth(&sig), path, "e"));
        assert!(!key.verify(
            &Authorization {
                nonce: "m",
                ..auth(&sig)
            },
            path,
            "d"
        ));
        assert!(!key.verify(
            &Authorization {
                date: "2",
                ..auth(&sig)
            },
            path,
            "d"
        ));
        assert!(!key.verify(&auth("zz"), path, "d"));
        assert!(!key.verify(&auth(&sig[..62]), path, "d"));
        assert!(!key.verify(&auth(&format!("{}zz", &sig[..62])), path, "d"));
    }

    #[test]
    fn authorization_values_round_trip_and_name_what_is_wrong() {
        let credentials = Credentials {
            access_key_id: "AKQV1".into(),
            secret_access_key: "secret".into(),
        };
        let path = "/quiver.featurestore.v1.FeatureStore/GetRecord";
        let header = credentials.sign(path, b"body");
        let auth = Authorization::parse(&header).unwrap();
        assert_eq!(auth.key_id, "AKQV1");
        assert_eq!(auth.nonce.len(), 32);
        assert!(auth.date.parse::<u64>().is_ok(), "{header}");
        assert_eq!(
            auth.signature,
            signature(
                "secret",
                &string_to_sign(auth.date, path, auth.nonce, &sha256_hex(b"body"))
            )
        );
        let key = SigningKey::new("secret");
        assert!(key.verify(&auth, path, &sha256_hex(b"body")));
        assert!(!key.verify(&auth, path, &sha256_hex(b"other body")));
        assert_eq!(Authorization::parse(&auth.to_header()).unwrap(), auth);
        // Every request gets a new nonce.
        let again = credentials.sign(path, b"body");
        assert_ne!(Authorization::parse(&again).unwrap().nonce, auth.nonce);

        assert!(Authorization::parse("Bearer x").is_err());
        let missing = Authorization::parse("QUIVER-HMAC-SHA256 Credential=A, Date=1, Signature=x");
        assert_eq!(missing, Err("authorization: Nonce is missing".into()));
        let empty =
            Authorization::parse("QUIVER-HMAC-SHA256 Credential=, Date=1, Nonce=n, Signature=x");
        assert_eq!(empty, Err("authorization: Credential is missing".into()));
        assert!(
            Authorization::parse("QUIVER-HMAC-SHA256 Credential=A, Colour=red")
                .unwrap_err()
                .contains("Colour")
        );
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
