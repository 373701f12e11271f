//! `emr-chaincode`: the chaincode server a Fabric peer connects to
//! (chaincode-as-a-service). Configured as the ccaas builder expects:
//! `CHAINCODE_SERVER_ADDRESS` (default `0.0.0.0:9999`; port 0 picks a free port)
//! and `CHAINCODE_ID` (the package id the peer printed at install). The first line
//! on standard output names the address it listens on. TLS, when the peer requires it, is
//! terminated in front of this process (see deploy/fabric).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let address = std::env::var("CHAINCODE_SERVER_ADDRESS").unwrap_or_else(|_| "0.0.0.0:9999".into());
    let chaincode_id = std::env::var("CHAINCODE_ID").context("CHAINCODE_ID (the package id from `peer lifecycle chaincode install`)")?;
    let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
    // With port 0 the system picks a free port; this line tells the caller which.
    let bound = listener.local_addr().context("the listening address")?;
    println!("chaincode listening on {bound}");
    tracing::info!(address = %bound, %chaincode_id, "chaincode serving");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tonic::transport::Server::builder()
        .add_service(emr_chaincode::server(chaincode_id))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .context("chaincode server")?;
    Ok(())
}
