//! Quiver's domain model, with no I/O: what every other crate of the server speaks.
//!
//! - [`model`]: feature groups, features, records and the validation rules SageMaker applies;
//! - [`error`]: the one error type, classified once ([`error::ErrorKind`]);
//! - [`time`]: event times in SageMaker's accepted forms, and the clock everything reads;
//! - [`listing`]: ListFeatureGroups' filters, sort orders and pagination tokens;
//! - [`events`]: observers of feature-group changes (the lineage service is one).
//!
//! Nothing here may depend on an I/O crate (RocksDB, tonic, DataFusion, the AWS SDKs):
//! `tests/run-all.sh` checks it with `cargo tree`.

pub mod error;
pub mod events;
pub mod listing;
pub mod model;
pub mod time;
