//! A real IPFS node for one test: the JavaScript implementation (npm `ipfs`
//! 0.66.1 under `adapters/ipfs/node`, installed by tests/run.sh), which serves the
//! Kubo RPC API. Its repository lives in a temporary directory; it listens on free
//! loopback ports, dials nobody (no swarm, bootstrap, delegates or MDNS) and is
//! killed when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats_server::free_port;

/// A running JS IPFS daemon.
pub struct IpfsNode {
    child: Child,
    _repo: tempfile::TempDir,
    api_port: u16,
}

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/ipfs/node")
}

fn jsipfs(repo: &Path) -> Command {
    let dir = node_dir();
    let cli = dir.join("node_modules/ipfs/src/cli.js");
    assert!(cli.is_file(), "{} is missing: run `npm ci` in adapters/ipfs/node (tests/run.sh does)", cli.display());
    let mut command = Command::new("node");
    command.arg("--import").arg(dir.join("polyfill.mjs")).arg(cli).env("IPFS_PATH", repo);
    command
}

impl IpfsNode {
    /// Initialises a repository, starts the daemon and waits for its RPC API.
    pub fn start() -> Self {
        let repo = tempfile::tempdir().expect("temp dir");
        let init = jsipfs(repo.path()).args(["init", "--profile", "test"]).stdout(Stdio::null()).stderr(Stdio::piped()).output();
        let init = init.expect("node is installed (tests/run.sh installs nodejs)");
        assert!(init.status.success(), "jsipfs init: {}", String::from_utf8_lossy(&init.stderr));
        let api_port = free_port();
        let config_path = repo.path().join("config");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["Addresses"]["Swarm"] = serde_json::json!([]);
        config["Addresses"]["API"] = format!("/ip4/127.0.0.1/tcp/{api_port}").into();
        config["Addresses"]["Gateway"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
        config["Addresses"]["RPC"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
        config["Addresses"]["Delegates"] = serde_json::json!([]);
        config["Bootstrap"] = serde_json::json!([]);
        config["Discovery"]["MDNS"]["Enabled"] = false.into();
        config["Discovery"]["webRTCStar"]["Enabled"] = false.into();
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let child = jsipfs(repo.path()).arg("daemon").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("jsipfs daemon");
        let node = Self { child, _repo: repo, api_port };
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", api_port)).is_err() {
            assert!(Instant::now() < deadline, "the IPFS node did not open its API within 90 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    /// Its RPC API base URL.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }
}

impl Drop for IpfsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
