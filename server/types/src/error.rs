//! The server's one error type. Every failure is classified once ([`ErrorKind`]); each front
//! door maps the class to its wire form in one place: the gRPC status in `quiver-server`'s
//! `grpc::status`, SageMaker's HTTP status and error code here ([`Error::to_aws`]), because both
//! front doors report SageMaker codes (the gRPC BatchGetRecord names a failed record's
//! `error_code` as SageMaker does), so every API reports the same failure the same way.

use std::fmt;

/// How a failure is reported to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (INVALID_ARGUMENT / ValidationError).
    Validation,
    /// The named feature group or feature does not exist (NOT_FOUND / ResourceNotFound).
    NotFound,
    /// The resource already exists (ALREADY_EXISTS / ResourceInUse).
    AlreadyExists,
    /// The request is valid but the stored state forbids it (FAILED_PRECONDITION).
    Conflict,
    /// A size or count limit was exceeded (RESOURCE_EXHAUSTED / ResourceLimitExceeded).
    LimitExceeded,
    /// The server cannot take the request now; retrying later may succeed (UNAVAILABLE).
    Unavailable,
    /// The data directory's disk is full: writes are refused until space returns, reads go on
    /// (RESOURCE_EXHAUSTED / HTTP 503 ServiceUnavailable). The message starts [`DISK_FULL`].
    DiskFull,
    /// A fault inside the server; logged with context (INTERNAL).
    Internal,
    /// No valid signature: missing, unknown or revoked key, wrong signature, outside the replay
    /// window, or replayed (UNAUTHENTICATED / HTTP 403).
    Unauthenticated,
    /// A valid caller whose policies do not allow the request (PERMISSION_DENIED /
    /// AccessDeniedException).
    AccessDenied,
}

/// A failure with a message written for the person who sent the request.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest excerpt of a user's value quoted back in an error message.
const MAX_QUOTED_CHARS: usize = 64;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AccessDenied, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A storage-engine failure, with what the server was doing when it happened: the disk
    /// full ([`ErrorKind::DiskFull`]); an I/O error, after which the storage engine refuses
    /// writes until the server restarts ([`ErrorKind::Unavailable`], the message starting
    /// [`STORAGE_IO`]); or an internal error.
    pub fn storage(context: &str, err: impl fmt::Display) -> Self {
        let err = err.to_string();
        if is_no_space(&err) {
            return Self::new(
                ErrorKind::DiskFull,
                format!(
                    "{DISK_FULL} on the data directory while {context}: writes are refused until \
                     space is freed, reads go on ({err})"
                ),
            );
        }
        if err.starts_with("IO error") {
            return Self::new(
                ErrorKind::Unavailable,
                format!(
                    "{STORAGE_IO} while {context} ({err}): check the disk; after a failed write \
                     the storage engine refuses writes until the server is restarted, reads go on"
                ),
            );
        }
        Self::internal(format!("storage error while {context}: {err}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with where in the request the problem is (`records[3]: ...`).
    pub fn at(mut self, location: impl fmt::Display) -> Self {
        self.message = format!("{location}: {}", self.message);
        self
    }
}

/// How the message of a [`ErrorKind::DiskFull`] error starts: clients (`quiver ingest`) tell
/// it from a request too large, which is RESOURCE_EXHAUSTED too.
pub const DISK_FULL: &str = "disk full";

/// How the message of a storage I/O error starts (an [`ErrorKind::Unavailable`] from
/// [`Error::storage`]).
pub const STORAGE_IO: &str = "I/O error on the data directory";

/// Whether an I/O or storage-engine error's text says the disk is full (ENOSPC, or RocksDB's
/// `NoSpace` status).
pub fn is_no_space(text: &str) -> bool {
    text.contains("No space left on device") || text.contains("NoSpace")
}

/// The two SageMaker wire protocols an error can be rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsApi {
    /// `sagemaker`, JSON 1.1: client errors are HTTP 400 with the code in `__type`.
    ControlPlane,
    /// `sagemaker-featurestore-runtime`, REST-JSON: the code in `x-amzn-ErrorType`.
    Runtime,
}

impl Error {
    /// The one mapping from error class to SageMaker's HTTP status and error code.
    pub fn to_aws(&self, api: AwsApi) -> (u16, &'static str) {
        match (api, self.kind) {
            (_, ErrorKind::Unavailable | ErrorKind::DiskFull) => (503, "ServiceUnavailable"),
            // As AWS answers a bad or missing signature.
            (_, ErrorKind::Unauthenticated) => (403, "UnrecognizedClientException"),
            (AwsApi::ControlPlane, ErrorKind::AccessDenied) => (400, "AccessDeniedException"),
            (AwsApi::Runtime, ErrorKind::AccessDenied) => (403, "AccessDeniedException"),
            (_, ErrorKind::Internal) => {
                tracing::error!(error = %self.message, "internal error");
                (500, "InternalFailure")
            }
            (AwsApi::ControlPlane, ErrorKind::Validation) => (400, "ValidationException"),
            (AwsApi::ControlPlane, ErrorKind::NotFound) => (400, "ResourceNotFound"),
            (AwsApi::ControlPlane, ErrorKind::AlreadyExists) => (400, "ResourceInUse"),
            (AwsApi::ControlPlane, ErrorKind::Conflict) => (400, "ConflictException"),
            (AwsApi::ControlPlane, ErrorKind::LimitExceeded) => (400, "ResourceLimitExceeded"),
            (AwsApi::Runtime, ErrorKind::NotFound) => (404, "ResourceNotFound"),
            (
                AwsApi::Runtime,
                ErrorKind::Validation
                | ErrorKind::AlreadyExists
                | ErrorKind::Conflict
                | ErrorKind::LimitExceeded,
            ) => (400, "ValidationError"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Quotes a user-supplied value for an error message, truncated so that a 350 KB value does not
/// come back in the error.
pub fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("'{head}...' ({} bytes)", value.len())
    } else {
        format!("'{head}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_long_values() {
        assert_eq!(quote("abc"), "'abc'");
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&format!("'{}...'", "x".repeat(64))));
        assert!(quoted.ends_with("(1000 bytes)"));
    }

    #[test]
    fn at_prefixes_the_location() {
        assert_eq!(
            Error::not_found("x").at("records[2]").message(),
            "records[2]: x"
        );
    }

    #[test]
    fn kinds_map_to_sagemaker_codes_per_protocol() {
        let cases = [
            (
                Error::validation("v"),
                (400, "ValidationException"),
                (400, "ValidationError"),
            ),
            (
                Error::not_found("n"),
                (400, "ResourceNotFound"),
                (404, "ResourceNotFound"),
            ),
            (
                Error::already_exists("a"),
                (400, "ResourceInUse"),
                (400, "ValidationError"),
            ),
            (
                Error::limit("l"),
                (400, "ResourceLimitExceeded"),
                (400, "ValidationError"),
            ),
            (
                Error::unavailable("u"),
                (503, "ServiceUnavailable"),
                (503, "ServiceUnavailable"),
            ),
            (
                Error::internal("i"),
                (500, "InternalFailure"),
                (500, "InternalFailure"),
            ),
        ];
        for (error, control, runtime) in cases {
            assert_eq!(error.to_aws(AwsApi::ControlPlane), control, "{error}");
            assert_eq!(error.to_aws(AwsApi::Runtime), runtime, "{error}");
        }
    }
}
