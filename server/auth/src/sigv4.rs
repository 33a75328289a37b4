//! AWS Signature Version 4, verified as botocore signs: the canonical request (method, the
//! path URI-encoded once more, the query's raw pairs sorted, the signed headers with their
//! whitespace collapsed, the payload's SHA-256), the string to sign over its digest and the
//! credential scope, and the key derived from the secret through date, region and service.
//!
//! As AWS, a request is refused outside five minutes of the server's clock; unlike gRPC's
//! signature there is no nonce, so identical requests within one second have identical
//! signatures, and no replay cache is kept (a client may send the same read twice).

use quiver_proto::signing::{REPLAY_WINDOW, sha256_hex};
use ring::hmac;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What the verifier needs of an HTTP request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded as on the wire).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Header values by lower-case name, in the order received.
    pub header: &'a dyn Fn(&str) -> Vec<String>,
    pub body: &'a [u8],
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// `date/region/service/aws4_request`.
    pub scope: &'a str,
    pub date: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .map(str::trim_start)
        .ok_or_else(|| format!("Authorization: only {ALGORITHM} is supported"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("Authorization: unexpected {:?}", part.trim())),
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err("Authorization: needs Credential, SignedHeaders and Signature".into());
    };
    let (access_key_id, scope) = credential.split_once('/').ok_or_else(|| {
        "Authorization: Credential must be KEY/DATE/REGION/SERVICE/aws4_request".to_string()
    })?;
    let parts: Vec<&str> = scope.split('/').collect();
    if parts.len() != 4 || parts[3] != "aws4_request" {
        return Err(
            "Authorization: Credential must be KEY/DATE/REGION/SERVICE/aws4_request".into(),
        );
    }
    Ok(Authorization {
        access_key_id,
        scope,
        date: parts[0],
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Checks `request`'s signature under `secret`; `now` is the server's clock. The error says
/// what is wrong, for the caller and the audit log.
pub fn verify(
    request: &SignedRequest,
    auth: &Authorization,
    secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let amz_date = single(request, "x-amz-date")?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| format!("X-Amz-Date: {amz_date:?} is not YYYYMMDDTHHMMSSZ"))?
        .and_utc();
    let skew = (now - signed_at).num_seconds().abs();
    if skew > REPLAY_WINDOW.as_secs() as i64 {
        return Err(format!(
            "Signature expired: signed at {amz_date}, {skew} s from the server's clock (at most {} s)",
            REPLAY_WINDOW.as_secs()
        ));
    }
    if !amz_date.starts_with(auth.date) {
        return Err("the Credential's date is not X-Amz-Date's".into());
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(format!("SignedHeaders must include {required}"));
        }
    }
    let body_hash = sha256_hex(request.body);
    let payload = match (request.header)("x-amz-content-sha256").first() {
        Some(declared) if declared == "UNSIGNED-PAYLOAD" => {
            return Err("UNSIGNED-PAYLOAD is not accepted: sign the body".into());
        }
        Some(declared) if *declared != body_hash => {
            return Err("X-Amz-Content-SHA256 does not match the body".into());
        }
        _ => body_hash,
    };
    let canonical = canonical_request(request, &auth.signed_headers, &payload)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        auth.scope,
        sha256_hex(canonical.as_bytes())
    );
    let scope: Vec<&str> = auth.scope.split('/').collect();
    let mut key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
        scope[0].as_bytes(),
    );
    for part in &scope[1..] {
        key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            part.as_bytes(),
        );
    }
    let expected = hmac::Key::new(hmac::HMAC_SHA256, key.as_ref());
    let Ok(given) = hex::decode(auth.signature) else {
        return Err("Signature is not hex".into());
    };
    hmac::verify(&expected, string_to_sign.as_bytes(), &given).map_err(|_| {
        "The request signature we calculated does not match the signature you provided: \
         check the secret access key"
            .to_string()
    })
}

fn single(request: &SignedRequest, name: &str) -> Result<String, String> {
    (request.header)(name)
        .into_iter()
        .next()
        .ok_or_else(|| format!("{name}: missing"))
}

fn canonical_request(
    request: &SignedRequest,
    signed_headers: &[&str],
    payload: &str,
) -> Result<String, String> {
    let mut headers = String::new();
    for name in signed_headers {
        let values = (request.header)(name);
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        let joined: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload}",
        request.method.to_ascii_uppercase(),
        uri_encode(request.path, true),
        canonical_query(request.query),
        signed_headers.join(";")
    ))
}

/// The query's raw `key=value` pairs, sorted (botocore signs the encoded URL's pairs).
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k, v),
            None => (pair, ""),
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but the unreserved characters (and `/` in paths).
fn uri_encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (path && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's Signature V4 test suite, `get-vanilla`.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = |name: &str| -> Vec<String> {
            match name {
                "host" => vec!["example.amazonaws.com".into()],
                "x-amz-date" => vec!["20150830T123600Z".into()],
                _ => vec![],
            }
        };
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            header: &headers,
            body: b"",
        };
        let value = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let auth = parse_authorization(value).unwrap();
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        let at = chrono::DateTime::parse_from_rfc3339("2015-08-30T12:36:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        verify(&request, &auth, secret, at).expect("the suite's signature verifies");
        assert!(verify(&request, &auth, "wrong", at).is_err());
        let late = at + chrono::Duration::minutes(6);
        assert!(
            verify(&request, &auth, secret, late)
                .unwrap_err()
                .contains("expired")
        );
    }

    #[test]
    fn query_and_path_canonical_forms() {
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query(""), "");
        assert_eq!(
            uri_encode("/FeatureGroup/my%20group", true),
            "/FeatureGroup/my%2520group"
        );
    }
}
