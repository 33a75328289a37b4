//! Authentication and authorization: principals, groups, policies and access keys (`store`);
//! IAM JSON policies (`policy`), their `Condition` operators (`condition`), the patterns,
//! variables and ARN matching they share (`pattern`), and a request's condition keys
//! (`context`).

pub mod access;
pub mod admin;
pub mod audit;
pub mod condition;
pub mod context;
pub mod grpc;
pub mod pattern;
pub mod policy;
pub mod sigv4;
pub mod store;

#[cfg(test)]
mod policy_table;

pub use access::{Access, Caller, Features};
pub use context::Context;
pub use policy::{Decision, Effect, Outcome, Policy, Request, StatementRef, evaluate};
