//! Generates the gRPC service from proto/grpc_service.proto at build time.
//! `protox` parses the .proto in Rust, so no `protoc` is needed anywhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/grpc_service.proto");
    let descriptors = protox::compile(["proto/grpc_service.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
