//! The gRPC front door: wire shapes in, domain calls, errors out.
//!
//! - [`service::GrpcService`] implements `quiver.featurestore.v1.FeatureStore` by translating
//!   messages ([`convert`], [`decode`], [`encode`]) and calling [`quiver_core::FeatureStore`];
//! - [`query_service`] (`Query`: SQL and datasets) and [`flight_sql`] (Arrow Flight SQL) over
//!   `quiver-query`; [`admin`] (`Auth`: principals, keys, policies) over `quiver-auth`;
//!   [`lineage_service`] (`Lineage`: the lineage graph) over `quiver-lineage`;
//! - [`auth_layer`] checks every request's signature before a handler runs; each handler
//!   authorizes what it parsed;
//! - errors become gRPC statuses in one place, [`status`]; [`metrics`] counts requests;
//! - [`threads`]: one single-threaded serving runtime per core; [`in_process::InProcess`]
//!   calls the same handlers from inside the server (ingest workers).

pub mod admin;
pub mod auth_layer;
pub mod automl_service;
pub mod convert;
pub mod decode;
pub mod encode;
pub mod flight_sql;
pub mod in_process;
mod lineage_experiments;
pub mod lineage_service;
pub mod metrics;
pub mod prep_service;
pub mod query_service;
pub mod service;
pub mod status;
pub mod threads;

pub use service::GrpcService;
