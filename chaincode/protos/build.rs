//! Generates Fabric's messages and the `Chaincode` and `Gateway` services from
//! `proto/fabric`, with the vendored protoc so that nothing needs installing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let include = protoc_bin_vendored::include_path()?;
    let include = include.to_str().ok_or("the vendored include path is not UTF-8")?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // `Chaincode`'s one method is named `connect`: a transport constructor of
        // the same name would collide with it. Clients use `…Client::new(channel)`.
        .build_transport(false)
        .compile_with_config(
            config,
            &["proto/fabric/peer.proto", "proto/fabric/common.proto", "proto/fabric/msp.proto", "proto/fabric/gateway.proto"],
            &["proto", include],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
