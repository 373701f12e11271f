//! A throwaway NATS server with JetStream, on a free loopback port and a temporary
//! store directory, killed when dropped. Tests never share server state.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js` owned by one test.
pub struct NatsServer {
    child: Option<Child>,
    store_dir: tempfile::TempDir,
    ports_dir: tempfile::TempDir,
    /// Zero until the first launch, when the server picks its own port.
    port: u16,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return path.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(["/usr/sbin/nats-server".into(), "/usr/bin/nats-server".into()])
        .find(|path| path.is_file())
        .expect("nats-server not found: install the Debian package `nats-server` (tests/run.sh does) or set NATS_SERVER_BIN")
}

/// A loopback port nothing listens on now. Another process may take it before the
/// caller binds it, so servers that can choose their own port should (see [`NatsServer::start`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free loopback port")
}

impl NatsServer {
    /// Starts a server on a port it picks itself and waits until it accepts connections.
    ///
    /// The server binds the port and reports it in a ports file; probing for a free port
    /// and handing it over would race with every other test doing the same, and the loser
    /// would talk to the winner's server until that one died.
    pub fn start() -> Self {
        let mut server = Self {
            child: None,
            store_dir: tempfile::tempdir().expect("temp dir"),
            ports_dir: tempfile::tempdir().expect("temp dir"),
            port: 0,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let port_arg = if self.port == 0 { "-1".to_owned() } else { self.port.to_string() };
        let mut child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.store_dir.path())
            .arg("--ports_file_dir")
            .arg(self.ports_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server");
        let ports_file = self.ports_dir.path().join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Some(status) = child.try_wait().expect("nats-server status") {
                panic!("nats-server exited at start ({status}); port {port_arg} may be taken");
            }
            if let Some(port) = std::fs::read_to_string(&ports_file).ok().and_then(|text| client_port(&text)) {
                break port;
            }
            assert!(Instant::now() < deadline, "nats-server wrote no ports file within 15 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not accept connections on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.port = port;
        self.child = Some(child);
    }

    /// Where the server keeps its JetStream files.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store_dir.path()
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its store directory is kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts a stopped server again (on the same port and store directory).
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.launch();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client port from a ports file: `{"nats":["nats://127.0.0.1:37903"]}`.
fn client_port(ports_file: &str) -> Option<u16> {
    let ports: serde_json::Value = serde_json::from_str(ports_file).ok()?;
    let url = ports["nats"].as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}
