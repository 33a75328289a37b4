//! The part of the client's binary-only `cli` module that `rows.rs` calls as `crate::cli::...`,
//! compiled into the `ingest_mapping` target as is.

#[allow(dead_code)]
#[path = "../../../../client/src/cli/output.rs"]
pub mod output;
