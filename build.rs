//! Generates the gRPC code for `proto/tribune.proto` with the vendored protoc: no system protoc
//! and no environment mutation.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tribune.proto");
    let mut cfg = prost_build::Config::new();
    cfg.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        cfg,
        &["proto/tribune.proto"],
        &["proto"],
    )?;
    Ok(())
}
