//! The one middleware in front of every console route: it refuses plaintext from other
//! machines, finds the request's session (or sends the visitor to sign in), checks a
//! state-changing request's origin and CSRF token, and hands the handler its [`User`].
//! Every response gets the headers that keep the pages from being framed, sniffed or made to
//! load anything from elsewhere.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use quiver_auth::Caller;
use quiver_net::Peer;

/// Most bytes a console form may send (a SQL statement, a recipe, a description).
pub const MAX_FORM_BYTES: usize = 1 << 20;

/// The header htmx sends the CSRF token in (set on `<body hx-headers>`).
pub const CSRF_HEADER: &str = "x-quiver-csrf";

/// What a handler knows of who is asking.
#[derive(Debug, Clone)]
pub struct User {
    pub session: Session,
    /// As the APIs see a caller: the principal, the address, whether over TLS.
    pub caller: Caller,
}

impl User {
    /// The caller for one action: each authorization is checked afresh.
    pub fn caller(&self) -> Caller {
        Caller::new(
            self.caller.principal.clone(),
            self.caller.source_ip,
            self.caller.secure,
        )
    }

    /// The name shown in the header.
    pub fn name(&self) -> &str {
        self.session.principal.as_deref().unwrap_or("anonymous")
    }
}

/// Paths served to visitors without a session.
fn is_public(path: &str) -> bool {
    path == "/console/sign-in" || path.starts_with("/console/static/")
}

pub async fn gate(State(console): State<Console>, request: Request, next: Next) -> Response {
    let mut response = admit(console, request, next).await;
    let headers = response.headers_mut();
    for (name, value) in [
        // Scripts and styles from this server only; inline styles for the SVG charts.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn admit(console: Console, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    // A session cookie and an access key's secret must not cross a network in plaintext.
    if !peer.secure && peer.addr.is_some_and(|a| !a.ip().is_loopback()) {
        return layout::refusal(
            StatusCode::FORBIDDEN,
            "The console needs TLS",
            "This server has no TLS, and the console is served in plaintext only to this machine \
             (127.0.0.1). Start the server with --tls-cert and --tls-key, or open the console \
             from the server itself (an SSH tunnel will do).",
        );
    }
    let path = request.uri().path().to_string();
    let state_changing = !matches!(*request.method(), Method::GET | Method::HEAD);
    if state_changing && !same_origin(request.headers()) {
        return layout::refusal(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The request came from another site (its Origin is not this server's). Use the \
             console's own pages.",
        );
    }
    if is_public(&path) {
        return next.run(request).await;
    }
    let token = session::token_of(
        request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
    .map(str::to_string);
    let found = token.as_deref().and_then(|t| console.sessions.get(t));
    let access = console.api.access.clone();
    let source_ip = peer.addr.map(|a| a.ip());
    let (session, opened) = match found {
        Some(session) => (session, None),
        // Without authentication there is no one to sign in as: a session at once (still
        // needed for the CSRF token), but only on a read: a form posted without a session
        // came from elsewhere.
        None if !access.enabled() && !state_changing => {
            let (token, session) = console.sessions.open(None);
            (session, Some(token))
        }
        None => return sign_in_first(&request, &path),
    };
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return layout::refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                &format!("A console form may send at most {MAX_FORM_BYTES} bytes."),
            );
        }
    };
    if state_changing {
        let submitted = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.into_owned())
            });
        if !session::csrf_matches(&session, submitted.as_deref()) {
            return layout::refusal(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form's security token does not match your session (it may have been \
                 opened before you signed in again). Reload the page and submit it again.",
            );
        }
    }
    let body = Body::from(bytes);
    let caller = Caller::new(session.principal.clone(), source_ip, peer.secure);
    parts.extensions.insert(User { session, caller });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(token) = opened {
        let cookie = session::cookie(&token, console.sessions.lifetime(), peer.secure);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A state-changing request must come from this server's own pages: its `Origin` (which
/// browsers send with every POST) names the host it was sent to. A request without one (not
/// from a browser) passes on to the CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Sends a visitor without a session to the sign-in page, and back here afterwards; htmx
/// requests are told to load that page whole.
fn sign_in_first(request: &Request, path: &str) -> Response {
    let back = match request.uri().query() {
        Some(query) if request.method() == Method::GET => format!("{path}?{query}"),
        _ if request.method() == Method::GET => path.to_string(),
        _ => "/console/".to_string(),
    };
    let location = format!(
        "/console/sign-in?next={}",
        form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
    );
    if request.headers().contains_key("hx-request") {
        return (StatusCode::UNAUTHORIZED, [("hx-redirect", location)]).into_response();
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_this_servers_pages_may_post() {
        assert!(same_origin(&headers(&[("host", "localhost:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "quiver.example.com"),
            ("origin", "https://quiver.example.com")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://localhost:8080"
        )])));
    }
}
