//! A throwaway local EVM node (anvil, from the npm package `@foundry-rs/anvil`
//! that tests/run.sh installs under adapters/evm/contracts) on a loopback port
//! of its own choosing, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first two of anvil's well-known development accounts (never use elsewhere).
pub const DEV_KEYS: [&str; 2] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
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
    /// Starts anvil with `chain_id` on a port it picks itself (no race with other
    /// tests for a free port) and waits until it listens. Transactions are mined
    /// at once and a block follows every 200 ms, as on a live chain, so waiting
    /// for confirmations ends.
    pub fn start(chain_id: u64) -> Self {
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", "0", "--chain-id", &chain_id.to_string()])
            .args(["--block-time", "0.2", "--mixed-mining"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start anvil");
        let stdout = child.stdout.take().expect("anvil's stdout is piped");
        let (found, port) = std::sync::mpsc::channel();
        // Anvil names its port on stdout; the thread then keeps draining it so a
        // full pipe never blocks the node.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("Listening on 127.0.0.1:").and_then(|p| p.trim().parse::<u16>().ok())
                    && let Some(found) = found.take()
                {
                    let _ = found.send(port);
                }
            }
        });
        let port = port.recv_timeout(Duration::from_secs(20)).expect("anvil did not start");
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

    async fn call(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply: serde_json::Value =
            reqwest::Client::new().post(self.url()).json(&body).send().await.expect("anvil answers").json().await.expect("JSON-RPC reply");
        assert!(reply.get("error").is_none(), "{method} failed: {reply}");
        reply["result"].clone()
    }

    /// Takes a snapshot of the chain (`evm_snapshot`): its id.
    pub async fn snapshot(&self) -> serde_json::Value {
        self.call("evm_snapshot", serde_json::json!([])).await
    }

    /// Sends an empty transaction from one of anvil's unlocked accounts to itself:
    /// that account's next transaction gets another nonce (and another hash).
    pub async fn self_transfer(&self, from: &str) {
        self.call("eth_sendTransaction", serde_json::json!([{"from": from, "to": from, "value": "0x0"}])).await;
    }

    /// Rolls the chain back to a snapshot (`evm_revert`): the blocks after it, and
    /// their transactions, are gone — a reorg as a relayer sees it.
    pub async fn revert(&self, snapshot: serde_json::Value) {
        assert_eq!(self.call("evm_revert", serde_json::json!([snapshot])).await, serde_json::json!(true), "revert to the snapshot");
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
