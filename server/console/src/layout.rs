//! The page shell every console page shares (head, navigation, who is signed in), the
//! refusal and error pages, and small formatting helpers. Everything is rendered with maud,
//! which escapes every interpolated string: feature names and values are user data.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::gate::User;
use quiver_types::error::{Error, ErrorKind};

/// The sections in the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Catalog,
    Query,
    Lineage,
    None,
}

const NAV: [(Section, &str, &str); 4] = [
    (Section::Home, "/console/", "Home"),
    (Section::Catalog, "/console/catalog", "Catalog"),
    (Section::Query, "/console/query", "Query"),
    (Section::Lineage, "/console/lineage", "Lineage"),
];

fn head(title: &str, scripts: &[&str]) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx's own indicator styles are inline, which the page's policy does not allow;
            // error responses are swapped in too, since they say what went wrong.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;
            title { (title) " · Quiver" }
            link rel="stylesheet" href="/console/static/console.css";
            // No icon to fetch (a request for /favicon.ico would reach the API and be refused).
            link rel="icon" href="data:,";
            script src=(crate::assets::HTMX_PATH) defer {}
            script src=(crate::assets::CONSOLE_SCRIPT) defer {}
            @for src in scripts {
                script src=(src) defer {}
            }
        }
    }
}

/// A whole page for `user`, in `section`.
pub fn page(user: &User, section: Section, title: &str, body: Markup) -> Markup {
    page_with_scripts(user, section, title, body, &[])
}

/// [`page`], loading `scripts` (paths under `/console/static/`) after the console's own.
pub fn page_with_scripts(
    user: &User,
    section: Section,
    title: &str,
    body: Markup,
    scripts: &[&str],
) -> Markup {
    let csrf = format!(r#"{{"X-Quiver-CSRF":"{}"}}"#, user.session.csrf);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, scripts))
            body hx-headers=(csrf) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "Quiver" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, label) in NAV {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span.principal title="Signed in as" { (user.name()) }
                        @if user.session.principal.is_some() {
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(user.session.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page with no session behind it (sign-in, refusals).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, &[]))
            body.bare {
                main #main {
                    p.brand-line { "Quiver" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A refusal before any page: what happened and what to do.
pub fn refusal(status: StatusCode, title: &str, what_to_do: &str) -> Response {
    (
        status,
        bare(title, html! { p.error role="alert" { (what_to_do) } }),
    )
        .into_response()
}

/// The HTTP status an operation's error is shown with.
pub fn status_of(error: &Error) -> StatusCode {
    match error.kind() {
        ErrorKind::Validation | ErrorKind::Conflict => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::LimitExceeded => StatusCode::BAD_REQUEST,
        ErrorKind::Unavailable | ErrorKind::DiskFull => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::AccessDenied => StatusCode::FORBIDDEN,
    }
}

/// The status a page built from `result` is answered with.
pub fn status<T>(result: &Result<T, Error>) -> StatusCode {
    result.as_ref().err().map_or(StatusCode::OK, status_of)
}

/// What the user can do about an error, after its own message.
fn advice(error: &Error) -> &'static str {
    match error.kind() {
        ErrorKind::AccessDenied => {
            "Your policies do not allow this. Ask an administrator to grant the action named above."
        }
        ErrorKind::NotFound => "Check the name, or find it in the catalog.",
        ErrorKind::Validation | ErrorKind::Conflict | ErrorKind::LimitExceeded => {
            "Correct the input and try again."
        }
        ErrorKind::Unavailable | ErrorKind::DiskFull => {
            "The server cannot do this now; try again later (the home page shows the store's health)."
        }
        ErrorKind::Internal => "This is a fault in the server; its log has the details.",
        ErrorKind::Unauthenticated => "Sign in again.",
        ErrorKind::AlreadyExists => "Choose another name.",
    }
}

/// An operation's error, as a block inside a page.
pub fn error_block(error: &Error) -> Markup {
    html! {
        div.error role="alert" {
            p { strong { (error.message()) } }
            p { (advice(error)) }
        }
    }
}

/// An operation's error as a whole page (or, to htmx, the block alone).
pub fn error_page(user: &User, section: Section, title: &str, error: &Error) -> Response {
    (
        status_of(error),
        page(user, section, title, error_block(error)),
    )
        .into_response()
}

/// An epoch-milliseconds time as ISO 8601 (UTC).
pub fn time(ms: i64) -> String {
    quiver_types::time::format_iso8601(ms)
}

/// How long ago `ms` was, from `now_ms`, in the largest whole unit.
pub fn age(now_ms: i64, ms: i64) -> String {
    let seconds = (now_ms - ms).max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `text` made safe inside a URL path segment.
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ages_and_segments_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(10_000_000), "10,000,000");
        assert_eq!(age(120_000, 60_000), "1 min ago");
        assert_eq!(age(0, 60_000), "0 s ago");
        assert_eq!(age(3 * 86_400_000, 0), "3 days ago");
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
    }
}
