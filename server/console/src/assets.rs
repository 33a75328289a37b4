//! The console's static files, compiled into the binary: nothing is fetched from elsewhere, at
//! build time or at run time. Each vendored file's licence is served beside it and kept in
//! `server/console/static/` (see `static/README.md`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// htmx 2.0.11 (0BSD), from npm's `htmx.org` package, `dist/htmx.min.js`.
pub const HTMX_PATH: &str = "/console/static/htmx-2.0.11.min.js";

/// The console's own script, on every page (small behaviours without inline script).
pub const CONSOLE_SCRIPT: &str = "/console/static/console.js";

/// The lineage graph: cytoscape 3.35.0 (MIT), cytoscape-dagre 4.0.1 (MIT, with dagre, MIT,
/// bundled), then the console's drawing of it.
pub const LINEAGE_SCRIPTS: [&str; 3] = [
    "/console/static/cytoscape-3.35.0.min.js",
    "/console/static/cytoscape-dagre-4.0.1.min.js",
    "/console/static/lineage.js",
];

const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const FILES: [(&str, &str, &[u8]); 11] = [
    (
        "htmx-2.0.11.min.js",
        JS,
        include_bytes!("../static/htmx-2.0.11.min.js"),
    ),
    (
        "cytoscape-3.35.0.min.js",
        JS,
        include_bytes!("../static/cytoscape-3.35.0.min.js"),
    ),
    (
        "cytoscape-dagre-4.0.1.min.js",
        JS,
        include_bytes!("../static/cytoscape-dagre-4.0.1.min.js"),
    ),
    ("console.js", JS, include_bytes!("../static/console.js")),
    ("lineage.js", JS, include_bytes!("../static/lineage.js")),
    (
        "cytoscape-LICENSE",
        TEXT,
        include_bytes!("../static/cytoscape-LICENSE"),
    ),
    (
        "cytoscape-dagre-LICENSE",
        TEXT,
        include_bytes!("../static/cytoscape-dagre-LICENSE"),
    ),
    (
        "dagre-LICENSE",
        TEXT,
        include_bytes!("../static/dagre-LICENSE"),
    ),
    (
        "htmx-LICENSE",
        TEXT,
        include_bytes!("../static/htmx-LICENSE"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/console.css"),
    ),
    ("README.md", TEXT, include_bytes!("../static/README.md")),
];

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Names change with their versions; the stylesheet changes with the binary.
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
