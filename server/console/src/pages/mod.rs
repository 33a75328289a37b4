//! One module per page. Each handler takes the signed-in [`User`] from the gate, does what it
//! shows through the API's own operations (authorized as the API authorizes them), and renders
//! the page with [`crate::layout`].

pub mod catalog;
pub mod group;
pub mod home;
pub mod lineage;
pub mod query;
pub mod statistics;

use axum::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_types::error::Result;

/// Runs SageMaker operation `operation` with `request` as `user`: the console's actions are
/// the API's, under the same policies.
pub(crate) async fn call(
    console: &Console,
    user: &User,
    operation: &str,
    request: Value,
) -> Result<Value> {
    quiver_sagemaker::control::dispatch(
        &console.api,
        &user.caller(),
        operation,
        request.to_string().as_bytes(),
    )
    .await
}

/// The value of query parameter `name`.
pub(crate) fn param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Any other `/console/...` path.
pub async fn not_found(Extension(user): Extension<User>) -> Response {
    (
        StatusCode::NOT_FOUND,
        layout::page(
            &user,
            Section::None,
            "Page not found",
            html! {
                p { "There is no console page here. Start from the "
                    a href="/console/" { "home page" } " or the "
                    a href="/console/catalog" { "catalog" } "." }
            },
        ),
    )
        .into_response()
}

/// A JSON value as text for a cell: strings bare, the rest as JSON.
pub(crate) fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
