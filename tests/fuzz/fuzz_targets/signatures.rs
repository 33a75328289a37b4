//! Request signatures as the server checks them (`server/auth/src/access.rs`): Quiver's own
//! `QUIVER-HMAC-SHA256` authorization of gRPC calls (`quiver_proto::signing`) and AWS Signature
//! V4 of HTTP requests (`server/auth/src/sigv4.rs`). Any header is refused or accepted without a
//! panic; a request signed with the key is accepted, and the same request with a changed body is
//! not.
//! Input: `authorization` NUL `path` NUL `body` NUL `x-amz-date` NUL `query` NUL
//! `name:value` lines of further headers.

#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use quiver_auth::Access;
use quiver_auth::sigv4::SignedRequest;
use quiver_auth::store::AuthStore;
use quiver_fuzz::{parts, scratch_dir, text};
use quiver_proto::signing::{Credentials, sha256_hex};
use quiver_storage::auth_records::AuthRecords;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::{Clock, SystemClock};

struct Fixture {
    /// Holds the database the auth records are in.
    _store: Arc<quiver_core::FeatureStore>,
    access: Access,
    credentials: Credentials,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (store, _) = quiver_fuzz::store("signatures");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let auth = AuthStore::open(
            AuthRecords::new(store.online().db().clone()),
            store.online().data_keys().provider().clone(),
            clock.clone(),
            "000000000000".into(),
        )
        .expect("auth store");
        auth.create_principal("fuzz").expect("principal");
        let (key, secret) = auth.create_access_key("fuzz").expect("access key");
        // Every refusal is audited: millions of them go nowhere.
        let audit_dir = scratch_dir("signatures-audit");
        let _ = std::os::unix::fs::symlink("/dev/null", audit_dir.join("audit.log"));
        let arns = ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        };
        let access = Access::new(true, Arc::new(auth), &audit_dir, arns, clock).expect("access");
        Fixture {
            _store: store,
            access,
            credentials: Credentials {
                access_key_id: key.key_id,
                secret_access_key: secret,
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let p = parts(data, 6);
    let authorization = text(p.first());
    let path = text(p.get(1));
    let body = p.get(2).copied().unwrap_or_default();
    let amz_date = text(p.get(3));
    let query = text(p.get(4));
    let extra = text(p.get(5));
    let digest = sha256_hex(body);

    // Quiver's own signature: whatever is offered, an answer and no panic.
    let _ = f
        .access
        .authenticate_grpc(&path, Some(&authorization), &digest, None);
    // Signed with the key: accepted; the same signature over another body: refused.
    let signed = f.credentials.sign(&path, body);
    f.access
        .authenticate_grpc(&path, Some(&signed), &digest, None)
        .unwrap_or_else(|e| panic!("a request signed with the key was refused: {e}"));
    let other = sha256_hex(&[body, b"x"].concat());
    let signed = f.credentials.sign(&path, body);
    assert!(
        f.access
            .authenticate_grpc(&path, Some(&signed), &other, None)
            .is_err(),
        "a signature verified over a changed body"
    );

    // AWS Signature V4 as the HTTP listener checks it.
    let header = |name: &str| -> Vec<String> {
        let mut values = Vec::new();
        match name {
            "authorization" => values.push(authorization.clone()),
            "x-amz-date" if !amz_date.is_empty() => values.push(amz_date.clone()),
            "host" => values.push("localhost:7941".into()),
            _ => {}
        }
        for line in extra.lines() {
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                values.push(v.to_string());
            }
        }
        values
    };
    let request = SignedRequest {
        method: "POST",
        path: &path,
        query: &query,
        header: &header,
        body,
    };
    let _ = f.access.authenticate_sigv4(&request, None);
});
