//! Generates the gRPC service code from `proto/`, with the vendored protoc so
//! that nothing needs installing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Messages mirror the REST JSON bodies, so they convert to the domain's value
    // objects through serde and are validated by the same code as REST bodies.
    config.type_attribute(".emr.v1", "#[derive(serde::Serialize, serde::Deserialize)]");
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &["proto/emr/v1/ledger.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
