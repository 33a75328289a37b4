//! Authentication and authorization, for every front door alike:
//!
//! - [`access`]: [`Access`], the one place requests are authenticated (gRPC signatures,
//!   SigV4, client certificates) and authorized (a principal's policies evaluated), and where
//!   denials and administrative changes are audited ([`audit`]);
//! - [`store`]: principals, groups and managed policies; [`keys`]: access keys and their
//!   sealed secrets (both kept through `quiver-storage`'s `auth_records`);
//! - [`policy`]: IAM JSON policies and their evaluation, with their `Condition` operators
//!   ([`condition`]), the patterns, variables and ARN matching they share ([`pattern`]) and a
//!   request's condition keys ([`context`]);
//! - [`sigv4`]: AWS Signature V4, as boto3 signs.
//!
//! It reads the time from the injected clock only, and knows nothing of RocksDB (its records
//! go through `quiver-storage`'s API) or of the wire formats of the front doors above it.

pub mod access;
pub mod audit;
pub mod condition;
pub mod context;
pub mod keys;
pub mod pattern;
pub mod policy;
pub mod sigv4;
pub mod store;

#[cfg(test)]
mod policy_table;

pub use access::{Access, Caller, Features};
pub use context::Context;
pub use policy::{Decision, Effect, Outcome, Policy, Request, StatementRef, evaluate};
