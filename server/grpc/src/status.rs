//! The one mapping from the domain's error classes to gRPC status codes, used by every gRPC
//! service (feature store, query, Flight SQL, admin) and the signature check in front of them.

use quiver_types::error::{Error, ErrorKind};
use tonic::{Code, Status};

/// An error as the gRPC status a client receives.
pub trait ToStatus {
    fn to_status(&self) -> Status;
}

impl ToStatus for Error {
    fn to_status(&self) -> Status {
        let code = match self.kind() {
            ErrorKind::Validation => Code::InvalidArgument,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::Conflict => Code::FailedPrecondition,
            ErrorKind::LimitExceeded | ErrorKind::DiskFull => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::AccessDenied => Code::PermissionDenied,
            ErrorKind::Internal => {
                tracing::error!(error = %self.message(), "internal error");
                Code::Internal
            }
        };
        Status::new(code, self.message().to_owned())
    }
}

/// [`ToStatus::to_status`] by value, for `map_err`.
pub fn status(error: Error) -> Status {
    error.to_status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_grpc_codes() {
        let cases = [
            (Error::validation("x"), Code::InvalidArgument),
            (Error::not_found("x"), Code::NotFound),
            (Error::already_exists("x"), Code::AlreadyExists),
            (Error::conflict("x"), Code::FailedPrecondition),
            (Error::limit("x"), Code::ResourceExhausted),
            (Error::unavailable("x"), Code::Unavailable),
            (
                Error::new(ErrorKind::DiskFull, "x"),
                Code::ResourceExhausted,
            ),
            (Error::unauthenticated("x"), Code::Unauthenticated),
            (Error::access_denied("x"), Code::PermissionDenied),
            (Error::internal("x"), Code::Internal),
        ];
        for (error, code) in cases {
            let status = error.to_status();
            assert_eq!(status.code(), code, "{error}");
            assert_eq!(status.message(), "x");
        }
    }
}
