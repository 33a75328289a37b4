//! What the two SageMaker protocols share: error rendering, JSON bodies with errors that name the
//! field, and the enums and timestamps as SageMaker spells them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use quiver_types::error::{AwsApi, Error, Result};
use quiver_types::model::{TargetStore, TtlDuration, TtlUnit};
use quiver_types::time::EpochMillis;

/// A domain error as one of the SageMaker protocols reports it.
pub struct AwsError {
    api: AwsApi,
    error: Error,
}

impl AwsError {
    pub fn control(error: Error) -> Self {
        Self {
            api: AwsApi::ControlPlane,
            error,
        }
    }

    pub fn runtime(error: Error) -> Self {
        Self {
            api: AwsApi::Runtime,
            error,
        }
    }

    /// As the API serving `path` reports it: the control plane's JSON 1.1 at `/`, the runtime's
    /// REST-JSON elsewhere (for middleware, which runs before a route's own handler).
    pub fn for_path(path: &str, error: Error) -> Self {
        if path == "/" {
            Self::control(error)
        } else {
            Self::runtime(error)
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let (status, code) = self.error.to_aws(self.api);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = self.error.message();
        match self.api {
            AwsApi::ControlPlane => json_response(
                status,
                CONTROL_CONTENT_TYPE,
                &serde_json::json!({ "__type": code, "message": message }),
            ),
            AwsApi::Runtime => {
                let mut response = json_response(
                    status,
                    RUNTIME_CONTENT_TYPE,
                    &serde_json::json!({ "message": message, "Message": message }),
                );
                response
                    .headers_mut()
                    .insert("x-amzn-ErrorType", HeaderValue::from_static(code));
                response
            }
        }
    }
}

pub const CONTROL_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const RUNTIME_CONTENT_TYPE: &str = "application/json";

pub fn json_response(
    status: StatusCode,
    content_type: &'static str,
    body: &impl Serialize,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            bytes,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the response: {e}"),
        )
            .into_response(),
    }
}

/// Why a request's body could not be read whole: too slow to arrive (`body_timeout_secs`,
/// [`quiver_net::http`]), or larger than `max_body` (`max_request_mb`).
pub fn body_error(e: &axum::Error, max_body: usize) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(late) = error.downcast_ref::<quiver_net::http::BodyTimedOut>() {
            return Error::validation(late.to_string());
        }
        source = error.source();
    }
    Error::limit(format!(
        "the request body is larger than the server's limit of {max_body} bytes (max_request_mb)"
    ))
}

/// Parses a JSON request body; an empty body is an empty object. Errors name the field
/// (`Record[2].FeatureName: invalid type: integer `5`, expected a string`).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::validation(format!("request body: {inner}"))
        } else {
            Error::validation(format!("{path}: {inner}"))
        }
    })
}

/// `TtlDuration` as SageMaker spells it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlJson {
    pub unit: String,
    pub value: i64,
}

impl TtlJson {
    pub fn to_domain(&self, field: &str) -> Result<TtlDuration> {
        let unit = match self.unit.as_str() {
            "Seconds" => TtlUnit::Seconds,
            "Minutes" => TtlUnit::Minutes,
            "Hours" => TtlUnit::Hours,
            "Days" => TtlUnit::Days,
            "Weeks" => TtlUnit::Weeks,
            other => {
                return Err(Error::validation(format!(
                    "{field}.Unit '{other}' is not one of Seconds, Minutes, Hours, Days, Weeks"
                )));
            }
        };
        let value = u64::try_from(self.value)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                Error::validation(format!("{field}.Value {} must be at least 1", self.value))
            })?;
        Ok(TtlDuration { unit, value })
    }

    pub fn from_domain(ttl: &TtlDuration) -> Self {
        Self {
            unit: format!("{:?}", ttl.unit),
            value: i64::try_from(ttl.value).unwrap_or(i64::MAX),
        }
    }
}

pub fn target_stores(field: &str, names: &[String]) -> Result<Vec<TargetStore>> {
    if names.len() > 2 {
        return Err(Error::validation(format!(
            "{field} names {} stores; at most 2 (OnlineStore, OfflineStore)",
            names.len()
        )));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| match name.as_str() {
            "OnlineStore" => Ok(TargetStore::OnlineStore),
            "OfflineStore" => Ok(TargetStore::OfflineStore),
            other => Err(Error::validation(format!(
                "{field}[{i}] '{other}' is not OnlineStore or OfflineStore"
            ))),
        })
        .collect()
}

/// Control-plane timestamps are epoch seconds, with milliseconds as the fraction.
pub fn epoch_seconds(ms: EpochMillis) -> f64 {
    ms as f64 / 1000.0
}

/// A response body as JSON.
pub fn to_json(value: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("cannot serialize the response: {e}")))
}
