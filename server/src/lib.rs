//! Quiver's server binary: configuration ([`config`]), assembly and lifecycle ([`server`]),
//! the HTTP listener's `/metrics` and `/healthz` beside the SageMaker API ([`http`]) and the
//! metrics it renders ([`metrics`]). Everything else is a crate under `server/`, each a layer
//! over the ones below it (docs/development.md has the map): `quiver-types`, `quiver-storage`,
//! `quiver-offline`, `quiver-core`, `quiver-auth`, `quiver-query`, and the front doors
//! `quiver-grpc` and `quiver-sagemaker` (over `quiver-net`'s listeners).

pub mod config;
pub mod http;
pub mod metrics;
pub mod server;
