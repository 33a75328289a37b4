//! Quiver's server: a feature store with a RocksDB online store behind a gRPC API.
//!
//! Where things live: configuration in [`config`]; the domain model and its validation rules in
//! [`model`]; the durable feature-group registry in [`registry`]; online records in [`online`];
//! the offline staging area in [`offline`]; the operations every API shares in
//! [`feature_store`]; the gRPC API in [`grpc`]; SQL over the offline store in [`query`];
//! `/metrics` and `/healthz` in [`http`]; assembly and lifecycle in [`server`].

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod feature_store;
pub mod group_commit;
pub mod grpc;
pub mod http;
pub mod kms;
pub mod listing;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod online;
pub mod query;
pub mod registry;
pub mod sagemaker;
pub mod server;
pub mod sources;
pub mod time;
pub mod tls;
