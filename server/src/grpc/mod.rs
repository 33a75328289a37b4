//! The gRPC API: [`service::GrpcService`] implements `quiver.featurestore.v1.FeatureStore` by
//! translating messages ([`convert`]) and calling [`crate::feature_store::FeatureStore`].

pub mod convert;
pub mod encode;
pub mod service;
pub mod threads;

pub use service::GrpcService;
