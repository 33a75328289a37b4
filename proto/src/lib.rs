//! Quiver's gRPC API, generated from `quiver/featurestore/v1/*.proto`.

/// `quiver.featurestore.v1`: the feature store service and its messages.
pub mod v1 {
    tonic::include_proto!("quiver.featurestore.v1");
}

/// The encoded file descriptor set of every Quiver proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("quiver_descriptor");
