//! [`Access`]: the one place requests are authenticated (their signature checked) and
//! authorized (their principal's policies evaluated), and where denials and administrative
//! changes are audited.
//!
//! With authentication off (a loopback-only development server), every request is let through
//! as an anonymous caller; the checks still run their bookkeeping so that a handler that
//! forgets to authorize is caught either way.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use quiver_proto::signing;

use super::audit::{AuditLog, Entry, rfc3339_millis};
use super::context::Context;
use super::policy::{Decision, Outcome, Request, evaluate};
use super::store::{AuthStore, PolicySet};
use quiver_types::error::{Error, Result};
use quiver_types::model::arn::{ArnContext, resolve_name};
use quiver_types::time::Clock;

/// The features a request reads or writes: the `quiver:FeatureNames` condition key.
#[derive(Debug, Clone, Copy)]
pub enum Features<'a> {
    /// The request is not about features (creating or describing a group): no key.
    Unnamed,
    /// These features; an empty list means every feature of the group (GetRecord without
    /// FeatureNames reads them all).
    Named(&'a [String]),
    /// Every feature of the group (SQL queries, which are checked per group).
    All,
}

/// Who is calling, as the transport established it; carried in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal; `None` with authentication off.
    pub principal: Option<String>,
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// Set by [`Access::authorize`]: the transport checks that every handler authorized.
    checked: Arc<AtomicBool>,
}

impl Caller {
    pub fn new(principal: Option<String>, source_ip: Option<IpAddr>, secure: bool) -> Self {
        Self {
            principal,
            source_ip,
            secure,
            checked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The caller of a request to a server without authentication (no principal).
    pub fn anonymous() -> &'static Caller {
        static ANONYMOUS: std::sync::LazyLock<Caller> =
            std::sync::LazyLock::new(|| Caller::new(None, None, false));
        &ANONYMOUS
    }

    /// Whether a handler has run an authorization check for this request.
    pub fn was_checked(&self) -> bool {
        self.checked.load(Ordering::SeqCst)
    }
}

pub struct Access {
    enabled: bool,
    store: Arc<AuthStore>,
    audit: AuditLog,
    replay: Mutex<ReplayCache>,
    arns: ArnContext,
    /// What signatures' ages, `aws:CurrentTime` and audit entries are measured against.
    clock: Arc<dyn Clock>,
}

impl Access {
    pub fn new(
        enabled: bool,
        store: Arc<AuthStore>,
        data_dir: &Path,
        arns: ArnContext,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Ok(Self {
            enabled,
            store,
            audit: AuditLog::open(data_dir)?,
            replay: Mutex::new(ReplayCache::default()),
            arns,
            clock,
        })
    }

    /// The clock's time, as a date.
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn store(&self) -> &Arc<AuthStore> {
        &self.store
    }

    pub fn arns(&self) -> &ArnContext {
        &self.arns
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Checks a gRPC request's signature (see `quiver_proto::signing`): `authorization` is its
    /// header, `body_sha256` the digest of the body received. A known active key, a date within
    /// the replay window, the signature itself, and a signature not seen before. Returns the
    /// principal; failures are audited.
    pub fn authenticate_grpc(
        &self,
        path: &str,
        authorization: Option<&str>,
        body_sha256: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<String> {
        self.verify_grpc(path, authorization, body_sha256)
            .inspect_err(|e| {
                let offered = authorization.and_then(|a| signing::Authorization::parse(a).ok());
                self.audit_unauthenticated(offered.map(|a| a.key_id), path, source_ip, e)
            })
    }

    /// Audits a request that failed authentication; `offered` is who it claimed to be.
    fn audit_unauthenticated(
        &self,
        offered: Option<&str>,
        path: &str,
        source_ip: Option<IpAddr>,
        error: &Error,
    ) {
        self.audit_denial(
            offered,
            path,
            "-",
            "unauthenticated",
            None,
            source_ip,
            error.message(),
        );
    }

    fn verify_grpc(
        &self,
        path: &str,
        authorization: Option<&str>,
        body_sha256: &str,
    ) -> Result<String> {
        let authorization = authorization.ok_or_else(|| {
            Error::unauthenticated(
                "the request is not signed: set QUIVER_ACCESS_KEY_ID and QUIVER_SECRET_ACCESS_KEY \
                 or a credentials profile (docs/security.md)",
            )
        })?;
        let auth = signing::Authorization::parse(authorization).map_err(Error::unauthenticated)?;
        let key_id = auth.key_id;
        let signed_ms: i64 = auth.date.parse().map_err(|_| {
            Error::unauthenticated(format!(
                "authorization: Date {:?} is not Unix milliseconds",
                auth.date
            ))
        })?;
        let now_ms = self.clock.now_ms();
        let window_ms = signing::REPLAY_WINDOW.as_millis() as i64;
        // abs_diff: a date near i64::MIN would overflow a subtraction.
        if now_ms.abs_diff(signed_ms) > window_ms as u64 {
            return Err(Error::unauthenticated(format!(
                "the request was signed at {signed_ms} ms, more than {} s from the server's \
                 clock ({now_ms} ms): expired, or the clocks differ",
                window_ms / 1000
            )));
        }
        let principal = self.store.with_key(key_id, |key| {
            let key = key.ok_or_else(|| {
                Error::unauthenticated(format!("access key {key_id} does not exist"))
            })?;
            if key.status != crate::keys::KeyStatus::Active {
                return Err(Error::unauthenticated(format!(
                    "access key {key_id} is inactive"
                )));
            }
            if !key.signing_key.verify(&auth, path, body_sha256) {
                return Err(Error::unauthenticated(format!(
                    "the signature does not match the request (access key {key_id}): a wrong \
                     secret key, or the method or body changed after signing"
                )));
            }
            Ok(key.principal.clone())
        })?;
        if !self
            .replay
            .lock()
            .first_use(auth.signature, now_ms, window_ms)
        {
            return Err(Error::unauthenticated(
                "this signed request was already received (a replay)",
            ));
        }
        Ok(principal)
    }

    /// Authenticates by the connection's verified client certificate (mutual TLS; its subject
    /// common name `certificate_name`): a request without a signature (`signed_by` none) acts
    /// for the principal the certificate names; a signed one must be signed by that same
    /// principal. Failures are audited.
    pub fn authenticate_certificate(
        &self,
        certificate_name: Option<&str>,
        source_ip: Option<IpAddr>,
        signed_by: Option<String>,
        path: &str,
    ) -> Result<String> {
        let checked = match (certificate_name, signed_by) {
            (None, Some(principal)) => return Ok(principal),
            (None, None) => Err(Error::unauthenticated(
                "the request is not signed and the connection presented no client certificate",
            )),
            (Some(name), Some(principal)) if *name != *principal => {
                Err(Error::unauthenticated(format!(
                    "the request is signed by {principal:?} but the client certificate names \
                     {name:?}"
                )))
            }
            (Some(name), _) if self.store.has_principal(name) => return Ok(name.to_string()),
            (Some(name), _) => Err(Error::unauthenticated(format!(
                "the client certificate names {name:?}, which is not a principal"
            ))),
        };
        checked.inspect_err(|e| self.audit_unauthenticated(certificate_name, path, source_ip, e))
    }

    /// Checks an HTTP request's AWS Signature V4 (see `sigv4`): a known active key and a
    /// matching signature within the time window. Returns the principal; failures are audited.
    pub fn authenticate_sigv4(
        &self,
        request: &super::sigv4::SignedRequest,
        source_ip: Option<IpAddr>,
    ) -> Result<String> {
        let authorization = (request.header)("authorization");
        let parsed = authorization
            .first()
            .ok_or_else(|| {
                Error::unauthenticated(
                    "Missing Authentication Token: sign requests with AWS Signature V4 using a \
                     Quiver access key (docs/security.md)",
                )
            })
            .and_then(|a| super::sigv4::parse_authorization(a).map_err(Error::unauthenticated));
        let result = parsed.and_then(|auth| {
            let key = self.store.key(auth.access_key_id).ok_or_else(|| {
                Error::unauthenticated(format!(
                    "The security token included in the request is invalid: access key {} does \
                     not exist",
                    auth.access_key_id
                ))
            })?;
            if key.status != crate::keys::KeyStatus::Active {
                return Err(Error::unauthenticated(format!(
                    "access key {} is inactive",
                    auth.access_key_id
                )));
            }
            super::sigv4::verify(request, &auth, &key.secret, self.now())
                .map_err(Error::unauthenticated)?;
            Ok(key.principal.clone())
        });
        result.inspect_err(|e| {
            let offered = authorization
                .first()
                .and_then(|a| super::sigv4::parse_authorization(a).ok())
                .map(|a| a.access_key_id.to_string());
            self.audit_unauthenticated(offered.as_deref(), request.path, source_ip, e);
        })
    }

    /// Checks a bearer token `<access key id>:<secret access key>` (OpenLineage producers send
    /// their API key as `Authorization: Bearer <key>`, and cannot sign): a known active key
    /// and its secret, compared in constant time. Returns the principal; failures are audited.
    pub fn authenticate_bearer(
        &self,
        token: &str,
        source_ip: Option<IpAddr>,
        path: &str,
    ) -> Result<String> {
        let (key_id, secret) = token.split_once(':').unwrap_or((token, ""));
        let result = match self.store.key(key_id) {
            None => Err(Error::unauthenticated(format!(
                "the bearer token names access key {key_id:?}, which does not exist (the token is <access key id>:<secret access key>)"
            ))),
            Some(key) if key.status != crate::keys::KeyStatus::Active => Err(
                Error::unauthenticated(format!("access key {key_id} is inactive")),
            ),
            Some(key) if !constant_time_eq(key.secret.as_bytes(), secret.as_bytes()) => {
                Err(Error::unauthenticated(format!(
                    "the bearer token's secret is not access key {key_id}'s"
                )))
            }
            Some(key) => Ok(key.principal.clone()),
        };
        result.inspect_err(|e| self.audit_unauthenticated(Some(key_id), path, source_ip, e))
    }

    /// The condition keys of a request by `caller`.
    pub fn context(&self, caller: &Caller) -> Context {
        let mut context = Context::default();
        let now = self.now();
        context
            .set(
                "aws:CurrentTime",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
            .set("aws:EpochTime", now.timestamp().to_string())
            .set("aws:SecureTransport", caller.secure.to_string());
        if let Some(ip) = caller.source_ip {
            context.set("aws:SourceIp", ip.to_string());
        }
        if let Some(name) = &caller.principal {
            context
                .set("aws:username", name.clone())
                .set("aws:PrincipalArn", self.store.principal_arn(name));
            if let Some(p) = self.store.principal(name) {
                context.set("aws:userid", p.id);
            }
        }
        context
    }

    /// Whether `caller` may do `action` on `resource`; `features` (the feature names read or
    /// written) become the `quiver:FeatureNames` key. A denial is audited and answered with
    /// PERMISSION_DENIED naming the principal, action, resource and reason.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        features: Option<&[String]>,
    ) -> Result<()> {
        let set = caller
            .principal
            .as_ref()
            .filter(|_| self.enabled)
            .map(|p| self.store.policy_set(p));
        self.authorize_with(caller, set, action, resource, features)
    }

    /// [`Access::authorize`] with the principal's policy set already in hand.
    fn authorize_with(
        &self,
        caller: &Caller,
        set: Option<Arc<PolicySet>>,
        action: &str,
        resource: &str,
        features: Option<&[String]>,
    ) -> Result<()> {
        caller.checked.store(true, Ordering::SeqCst);
        if !self.enabled {
            return Ok(());
        }
        let (Some(principal), Some(set)) = (&caller.principal, set) else {
            return Err(Error::unauthenticated("the request is not authenticated"));
        };
        // Condition keys are made only when some policy reads them.
        let mut context = if set.needs_context {
            self.context(caller)
        } else {
            Context::default()
        };
        if let Some(features) = features.filter(|_| set.tests_features) {
            context.set_all("quiver:FeatureNames", features.iter().cloned());
        }
        let decision = evaluate(
            set.policies.iter().map(|(n, p)| (n.as_str(), p.as_ref())),
            &Request {
                action,
                resource,
                context: &context,
            },
        );
        if decision.outcome.allowed() {
            return Ok(());
        }
        let why = match decision.outcome {
            Outcome::ExplicitDeny => "with an explicit deny in an identity-based policy",
            _ => "because no identity-based policy allows it",
        };
        let message = format!(
            "principal {} is not authorized to perform {action} on resource {resource} {why}",
            self.store.principal_arn(principal)
        );
        self.audit_denial(
            Some(principal),
            action,
            resource,
            decision.outcome.as_str(),
            decision.statement.as_ref().map(|s| s.to_string()),
            caller.source_ip,
            &message,
        );
        Err(Error::access_denied(message))
    }

    /// [`Access::authorize`] for an action on a feature group (`group`, a name or ARN; `None`
    /// for an action on no particular group, whose resource is `*`). `feature_names` lists a
    /// group's features, called only when a policy tests `quiver:FeatureNames` and the request
    /// touches every feature.
    pub fn authorize_group(
        &self,
        caller: &Caller,
        action: &str,
        group: Option<&str>,
        features: Features,
        feature_names: impl FnOnce(&str) -> Option<Vec<String>>,
    ) -> Result<()> {
        // Off: nothing to decide, and nothing built on the request path.
        let Some(group) = group.filter(|_| self.enabled) else {
            return self.authorize(caller, action, "*", None);
        };
        let resource = self.arns.feature_group_arn(resolve_name(group));
        let set = caller
            .principal
            .as_ref()
            .filter(|_| self.enabled)
            .map(|p| self.store.policy_set(p));
        // The features are listed only when a policy tests them.
        if !set.as_ref().is_some_and(|s| s.tests_features) {
            return self.authorize_with(caller, set, action, &resource, None);
        }
        let names = match features {
            Features::Unnamed => None,
            Features::Named(names) if !names.is_empty() => Some(names.to_vec()),
            Features::Named(_) | Features::All => feature_names(group),
        };
        self.authorize_with(caller, set, action, &resource, names.as_deref())
    }

    /// `quiver:Query` on every group a SQL statement reads (`groups`: its table references
    /// that name a group, or why it could not be parsed), as a read of all its features (SQL is
    /// checked per group, not per column); on `*` when it reads none. The one rule of every
    /// front door that runs SQL.
    pub fn authorize_query(
        &self,
        caller: &Caller,
        groups: Result<Vec<String>>,
        feature_names: impl Fn(&str) -> Option<Vec<String>>,
    ) -> Result<()> {
        if !self.enabled {
            return self.authorize(caller, "quiver:Query", "*", None);
        }
        let anywhere =
            || self.authorize_group(caller, "quiver:Query", None, Features::Unnamed, |_| None);
        let groups = match groups {
            Ok(groups) => groups,
            // Unparsable SQL reads nothing, but its error is only for those who may query.
            Err(e) => {
                anywhere()?;
                return Err(e);
            }
        };
        if groups.is_empty() {
            return anywhere();
        }
        for group in &groups {
            self.authorize_group(caller, "quiver:Query", Some(group), Features::All, |g| {
                feature_names(g)
            })?;
        }
        Ok(())
    }

    /// `quiver:ReadFile` on a file a recipe or a model build reads from the server's disk or
    /// its S3 credentials ([`file_arn`]): reading files is a right of its own, since the
    /// server's files and buckets are not the caller's to read because it may query.
    pub fn authorize_file(&self, caller: &Caller, uri: &str) -> Result<()> {
        self.authorize(caller, "quiver:ReadFile", &file_arn(uri), None)
    }

    /// `sagemaker:PutRecord` on each (group, names of the features written) of `writes`: how
    /// every front door authorizes a write (PutRecord, PutRecords, BatchWriteRecord, stream
    /// sources). The names are read only when a policy tests them (this runs on every write);
    /// a write of nothing still needs the right to write.
    pub fn authorize_writes<'a, N: Iterator<Item = &'a str>>(
        &self,
        caller: &Caller,
        writes: impl Iterator<Item = (&'a str, N)>,
        feature_names: impl Fn(&str) -> Option<Vec<String>>,
    ) -> Result<()> {
        const ACTION: &str = "sagemaker:PutRecord";
        if !self.enabled {
            return self.authorize(caller, ACTION, "*", None);
        }
        let with_features = self.tests_features(caller);
        let mut by_group: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (group, written) in writes {
            let names = by_group.entry(group).or_default();
            if with_features {
                names.extend(written);
            }
        }
        if by_group.is_empty() {
            return self.authorize_group(caller, ACTION, None, Features::Unnamed, |_| None);
        }
        for (group, names) in &by_group {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let features = if with_features {
                Features::Named(&names)
            } else {
                Features::Unnamed
            };
            self.authorize_group(caller, ACTION, Some(group), features, &feature_names)?;
        }
        Ok(())
    }

    /// Whether some policy of `caller`'s tests `quiver:FeatureNames` (so the features a request
    /// touches must be listed).
    pub fn tests_features(&self, caller: &Caller) -> bool {
        self.enabled
            && caller
                .principal
                .as_ref()
                .is_some_and(|p| self.store.policy_set(p).tests_features)
    }

    /// Marks a request as needing no authorization (health checks, reflection).
    pub fn public(&self, caller: &Caller) {
        caller.checked.store(true, Ordering::SeqCst);
    }

    /// The decision for `principal` (the simulator's and [`Access::authorize`]'s).
    pub fn decide(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        context: &Context,
    ) -> Decision {
        let set = self.store.policy_set(principal);
        evaluate(
            set.policies.iter().map(|(n, p)| (n.as_str(), p.as_ref())),
            &Request {
                action,
                resource,
                context,
            },
        )
    }

    /// Audits an administrative change, durably, before it is answered.
    pub fn record_change(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        detail: &str,
    ) -> Result<()> {
        self.audit.write(
            &Entry {
                time: rfc3339_millis(self.clock.now_ms()),
                principal: caller.principal.as_deref(),
                action,
                resource,
                decision: "allowed",
                statement: None,
                source_ip: caller.source_ip.map(|ip| ip.to_string()),
                detail,
            },
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_denial(
        &self,
        principal: Option<&str>,
        action: &str,
        resource: &str,
        decision: &str,
        statement: Option<String>,
        source_ip: Option<IpAddr>,
        detail: &str,
    ) {
        tracing::info!(target: "quiver::audit", principal, action, resource, decision, detail, "denied");
        // A failure to audit is logged by the audit log itself; the request is denied anyway.
        let _ = self.audit.write(
            &Entry {
                time: rfc3339_millis(self.clock.now_ms()),
                principal,
                action,
                resource,
                decision,
                statement,
                source_ip: source_ip.map(|ip| ip.to_string()),
                detail,
            },
            false,
        );
    }
}

/// Signatures seen within the replay window, as 64-bit fingerprints: one set for lookups, and
/// the same fingerprints in 10-second buckets to expire them (about 24 bytes per request of the
/// last two windows).
#[derive(Default)]
struct ReplayCache {
    seen: HashSet<u64>,
    buckets: VecDeque<(i64, Vec<u64>)>,
}

const BUCKET_MS: i64 = 10_000;

impl ReplayCache {
    /// Records `signature`; false when it was already seen.
    fn first_use(&mut self, signature: &str, now_ms: i64, window_ms: i64) -> bool {
        // A request signed up to a window ago or ahead stays valid for two windows.
        let oldest = (now_ms - 2 * window_ms) / BUCKET_MS;
        while self.buckets.front().is_some_and(|(b, _)| *b < oldest) {
            if let Some((_, expired)) = self.buckets.pop_front() {
                for f in expired {
                    self.seen.remove(&f);
                }
            }
        }
        let fingerprint = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = foldhash::fast::FixedState::with_seed(0x5157_4956_4552).build_hasher();
            h.write(signature.as_bytes());
            h.finish()
        };
        if !self.seen.insert(fingerprint) {
            return false;
        }
        let bucket = now_ms / BUCKET_MS;
        match self.buckets.back_mut() {
            Some((b, list)) if *b == bucket => list.push(fingerprint),
            _ => self.buckets.push_back((bucket, vec![fingerprint])),
        }
        true
    }
}

/// Equal byte strings, in a time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The resource a file is authorized as: `arn:aws:s3:::BUCKET/KEY` for `s3://BUCKET/KEY`
/// (S3's own ARN), `arn:quiver:file:::/ABSOLUTE/PATH` for a path or `file://` URI on the
/// server.
pub fn file_arn(uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("s3://") {
        return format!("arn:aws:s3:::{rest}");
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let path = std::path::Path::new(path);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    format!("arn:quiver:file:::{}", absolute.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_within_the_window() {
        let mut cache = ReplayCache::default();
        assert!(cache.first_use("a", 1_000_000, 300_000));
        assert!(!cache.first_use("a", 1_200_000, 300_000));
        assert!(cache.first_use("b", 1_200_000, 300_000));
        // Long after, the bucket is gone (and the date check refuses the request anyway).
        assert!(cache.first_use("a", 2_000_000, 300_000));
        assert!(cache.buckets.len() <= 2);
    }

    /// Found writing the signatures fuzz target: a date near i64::MIN overflowed the window check.
    #[test]
    fn signed_dates_far_from_the_clock_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::store(dir.path());
        store.create_principal("p").unwrap();
        let (key, _) = store.create_access_key("p").unwrap();
        let arns = ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        };
        let clock = Arc::new(quiver_types::time::SystemClock);
        let access = Access::new(true, Arc::new(store), dir.path(), arns, clock).unwrap();
        let signature = "0".repeat(64);
        for date in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            let date = date.to_string();
            let auth = signing::Authorization {
                key_id: &key.key_id,
                date: &date,
                nonce: "n",
                signature: &signature,
            };
            let e = access
                .authenticate_grpc("/p", Some(&auth.to_header()), "digest", None)
                .unwrap_err();
            assert!(
                e.message().contains("from the server's clock"),
                "{date}: {e}"
            );
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
        assert!(super::constant_time_eq(b"", b""));
    }
}
