//! A throwaway MariaDB server of a test's own, on a free loopback port and a
//! temporary data directory: unlike the shared server, it can be killed and
//! restarted while a projector writes to it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `mariadbd` owned by one test; killed when dropped.
pub struct MariaDbServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

fn sbin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin").join(name), PathBuf::from("/usr/bin").join(name)])
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install the Debian package `mariadb-server` (tests/run.sh does)"))
}

/// `mariadbd` refuses to run as root unless told to.
fn run_as() -> Option<&'static str> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    (String::from_utf8_lossy(&uid.stdout).trim() == "0").then_some("--user=root")
}

impl MariaDbServer {
    /// Initializes a data directory and starts a server on it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut install = Command::new(sbin("mariadb-install-db"));
        install
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()));
        install.args(run_as());
        let output = install.output().expect("cannot run mariadb-install-db");
        assert!(output.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&output.stderr));
        let mut server = Self { child: None, dir, port: crate::nats_server::free_port() };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let root = self.dir.path();
        let socket = root.join("mariadb.sock");
        let mut command = Command::new(sbin("mariadbd"));
        command
            .args(["--no-defaults", "--bind-address=127.0.0.1", "--skip-log-bin", "--innodb-buffer-pool-size=32M"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", root.join("data").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("mariadb.pid").display()))
            .args(run_as())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A killed server leaves its socket file behind.
        let _ = std::fs::remove_file(&socket);
        let mut child = command.spawn().expect("cannot start mariadbd");
        // Our own socket file, not an open TCP port, says *this* server is up: another
        // test's server may hold the port if it was taken between probing and binding.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if let Some(status) = child.try_wait().expect("mariadbd status") {
                panic!("mariadbd exited at start ({status}); port {} may be taken", self.port);
            }
            assert!(Instant::now() < deadline, "mariadbd did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// The server's URL (database `mysql`), for [`crate::mariadb::TestDatabase::fresh_on`].
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }

    /// Kills the server with SIGKILL, as a crash or power loss of its host would
    /// (its data directory is kept; InnoDB recovers on the next start).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}
