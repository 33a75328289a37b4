//! The feature store's domain model, independent of any wire format: feature groups and their
//! definitions ([`feature_group`]), the rules a new or updated group must satisfy ([`validate`]),
//! typed record values with the rules a record must satisfy ([`record`]), and feature-group ARNs
//! ([`arn`]).

pub mod arn;
pub mod feature_group;
pub mod record;
pub mod validate;

pub use feature_group::*;
pub use record::*;
