//! The ingest's one error type. Each variant says which side failed, so that a supervisor (the
//! server running the workers, or an operator reading the log) knows whether to fix the
//! configuration, the stream or the server; the message names the source and the field.

/// Why a worker (or its setup) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The configuration is invalid: a source, its mapping or its dead-letter destination.
    #[error("{0}")]
    Config(String),
    /// The server refused a request for good, or was not reachable within the retries.
    #[error("{0}")]
    Server(String),
    /// The stream failed: a topic or stream that is not there, access denied, a broker error.
    #[error("{0}")]
    Stream(String),
    /// Bad messages could not be written to the dead-letter destination.
    #[error("{0}")]
    DeadLetter(String),
    /// A worker's task stopped unexpectedly.
    #[error("{0}")]
    Task(String),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
