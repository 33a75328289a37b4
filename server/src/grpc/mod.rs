//! The gRPC API: [`service::GrpcService`] implements `quiver.featurestore.v1.FeatureStore` by
//! translating messages ([`convert`]) and calling [`crate::feature_store::FeatureStore`];
//! [`in_process::InProcess`] calls the same handlers from inside the server (ingest workers).

pub mod convert;
pub mod decode;
pub mod encode;
pub mod in_process;
pub mod service;
pub mod threads;

pub use service::GrpcService;
