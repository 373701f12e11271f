//! A throwaway local EVM node (anvil, from the npm package `@foundry-rs/anvil`
//! that tests/run.sh installs under adapters/evm/contracts) on a free loopback
//! port, killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first two of anvil's well-known development accounts (never use elsewhere).
pub const DEV_KEYS: [&str; 2] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9c86dae88c7a8412f4603b6b78690d",
];

/// A running anvil owned by one test.
pub struct Anvil {
    child: Child,
    port: u16,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("ANVIL_BIN") {
        return path.into();
    }
    let npm =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapters/evm/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if npm.is_file() {
        return npm;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("anvil")).find(|p| p.is_file()))
        .expect("anvil not found: run `npm ci` in adapters/evm/contracts (tests/run.sh does) or set ANVIL_BIN")
}

impl Anvil {
    /// Starts anvil with `chain_id` and waits until it answers. Transactions are
    /// mined at once and a block follows every 200 ms, as on a live chain, so
    /// waiting for confirmations ends.
    pub fn start(chain_id: u64) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port");
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &chain_id.to_string()])
            .args(["--block-time", "0.2", "--mixed-mining"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start anvil");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "anvil did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
