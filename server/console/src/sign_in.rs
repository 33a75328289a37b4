//! Signing in and out. With `--auth`, a visitor signs in with an access key and its secret
//! (checked as the OpenLineage bearer token is: a known active key, its secret compared in
//! constant time, failures audited), or, on a connection with a verified client certificate,
//! as the principal it names. Each sign-in is audited.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::Console;
use crate::gate::User;
use crate::layout;
use crate::session;
use quiver_auth::Caller;
use quiver_net::Peer;

const PATH: &str = "/console/sign-in";

/// Where to go after signing in: a console page, or the home page (never another site).
fn destination(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/console/")
                && !next.starts_with("/console/sign-")
                && !next.contains("//")
                && !next.contains('\\') =>
        {
            next.to_string()
        }
        _ => "/console/".to_string(),
    }
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn peer(connect: Option<Extension<ConnectInfo<Peer>>>) -> Peer {
    connect.map(|Extension(c)| c.0).unwrap_or_default()
}

/// The sign-in form; `failure` says why the last attempt failed.
fn form(peer: &Peer, next: &str, failure: Option<&str>) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            p.lead { "Sign in with a Quiver access key, as boto3 and the CLI do." }
            @if let Some(failure) = failure {
                p.error role="alert" { (failure) }
            }
            @if let Some(name) = &peer.certificate_name {
                form method="post" action=(PATH) {
                    input type="hidden" name="next" value=(next);
                    input type="hidden" name="certificate" value="1";
                    p { "Your connection presented a client certificate for " strong { (name.as_ref()) } "." }
                    button type="submit" { "Continue as " (name.as_ref()) }
                }
                p.muted { "Or sign in with an access key:" }
            }
            form method="post" action=(PATH) {
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="access_key_id" { "Access key ID" }
                    input #access_key_id type="text" name="access_key_id" autocomplete="username"
                        required autofocus spellcheck="false";
                }
                div.field {
                    label for="secret_access_key" { "Secret access key" }
                    input #secret_access_key type="password" name="secret_access_key"
                        autocomplete="current-password" required;
                }
                button type="submit" { "Sign in" }
            }
            p.muted {
                "The first start with --auth writes the root principal's key to "
                code { "<data dir>/root-credentials" } "; "
                code { "quiver admin create-access-key" } " makes more (docs/security.md)."
            }
        },
    )
}

/// `GET /console/sign-in`.
pub async fn show(
    State(console): State<Console>,
    connect: Option<Extension<ConnectInfo<Peer>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = pairs(query.unwrap_or_default().as_bytes());
    let next = destination(param(&pairs, "next").as_deref());
    if !console.api.access.enabled() {
        // Nothing to sign in with: the gate opens a session on the first page.
        return redirect(&next, None);
    }
    form(&peer(connect), &next, None).into_response()
}

/// `POST /console/sign-in`.
pub async fn submit(
    State(console): State<Console>,
    connect: Option<Extension<ConnectInfo<Peer>>>,
    body: Bytes,
) -> Response {
    let peer = peer(connect);
    let pairs = pairs(&body);
    let next = destination(param(&pairs, "next").as_deref());
    let access = &console.api.access;
    if !access.enabled() {
        return redirect(&next, None);
    }
    let source_ip = peer.addr.map(|a| a.ip());
    let (principal, how) = if param(&pairs, "certificate").is_some() {
        (
            access.authenticate_certificate(
                peer.certificate_name.as_deref(),
                source_ip,
                None,
                PATH,
            ),
            "the client certificate".to_string(),
        )
    } else {
        let key_id = param(&pairs, "access_key_id").unwrap_or_default();
        let secret = param(&pairs, "secret_access_key").unwrap_or_default();
        if key_id.trim().is_empty() || secret.is_empty() {
            let failure = "Enter both the access key ID and the secret access key.";
            return (StatusCode::BAD_REQUEST, form(&peer, &next, Some(failure))).into_response();
        }
        (
            access.authenticate_bearer(&format!("{}:{secret}", key_id.trim()), source_ip, PATH),
            format!("access key {}", key_id.trim()),
        )
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(e) => {
            // The audit log has the reason; the visitor learns only that it failed.
            tracing::info!(error = %e, "console sign-in refused");
            let failure = "Sign-in failed: the access key ID or secret is wrong, or the key is \
                           inactive. Check them and try again.";
            return (StatusCode::UNAUTHORIZED, form(&peer, &next, Some(failure))).into_response();
        }
    };
    let caller = Caller::new(Some(principal.clone()), source_ip, peer.secure);
    let arn = access.store().principal_arn(&principal);
    if let Err(e) = access.record_change(
        &caller,
        "console:SignIn",
        &arn,
        &format!("signed in to the console with {how}"),
    ) {
        return layout::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in not recorded",
            &format!(
                "The sign-in could not be audited, so it was refused: {}",
                e.message()
            ),
        );
    }
    let (token, _) = console.sessions.open(Some(principal));
    let cookie = session::cookie(&token, console.sessions.lifetime(), peer.secure);
    redirect(&next, Some(cookie))
}

/// `POST /console/sign-out`: the session closed, its cookie cleared.
pub async fn sign_out(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = session::token_of(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    ) {
        console.sessions.close(token);
    }
    if user.session.principal.is_some() {
        let arn = console.api.access.store().principal_arn(user.name());
        let _ = console.api.access.record_change(
            &user.caller(),
            "console:SignOut",
            &arn,
            "signed out of the console",
        );
    }
    redirect(PATH, Some(session::expired_cookie(user.caller.secure)))
}

fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn sign_in_returns_only_to_console_pages() {
        assert_eq!(
            destination(Some("/console/query?x=1")),
            "/console/query?x=1"
        );
        assert_eq!(destination(Some("https://evil.example/")), "/console/");
        assert_eq!(destination(Some("//evil.example/console/")), "/console/");
        assert_eq!(destination(Some("/console//evil.example")), "/console/");
        assert_eq!(destination(Some("/console/sign-in")), "/console/");
        assert_eq!(destination(Some("/console/\\evil")), "/console/");
        assert_eq!(destination(None), "/console/");
    }
}
