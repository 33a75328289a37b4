//! Compiles every `.proto` under `quiver/` with the vendored `protoc`, so no system protobuf
//! compiler is needed, and writes the descriptor set that gRPC server reflection serves.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through the PROTOC environment variable.
    set_protoc_env(&protoc);

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "quiver/featurestore/v1/featurestore.proto",
        "quiver/featurestore/v1/query.proto",
        "quiver/featurestore/v1/auth.proto",
        "quiver/featurestore/v1/lineage.proto",
        "quiver/featurestore/v1/automl.proto",
        "quiver/featurestore/v1/prep.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("quiver_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    // The server's side of the same service, where GetRecord and BatchGetRecord answer with
    // `Encoded`: a message the server encodes itself, straight from stored records, and
    // PutRecord's request arrives `Undecoded`, for the server to read itself. Every other type
    // is the one generated above (PutRecords still holds generated PutRecordRequests).
    let encoded_server = out_dir.join("encoded_server");
    std::fs::create_dir_all(&encoded_server)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&encoded_server)
        .extern_path(".quiver.featurestore.v1", "crate::v1")
        .extern_path(
            ".quiver.featurestore.v1.GetRecordResponse",
            "crate::Encoded",
        )
        .extern_path(
            ".quiver.featurestore.v1.BatchGetRecordResponse",
            "crate::Encoded",
        )
        .extern_path(
            ".quiver.featurestore.v1.PutRecordRequest",
            "crate::Undecoded",
        )
        .compile_protos(&protos[..1], &["."])?;
    Ok(())
}

fn set_protoc_env(path: &std::path::Path) {
    // `std::env::set_var` is unsafe in edition 2024 only because other threads may read the
    // environment concurrently; a build script has no other threads.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", path);
    }
}
