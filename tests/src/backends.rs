//! Event-store backends for tests, each on real infrastructure: a throwaway NATS
//! server, or a SQLite file in a temporary directory.

use std::sync::Arc;

use emr_eventstore::conformance::Backend;
use emr_keyring::Keyring;
use emr_nats::{NatsBackend, NatsConfig};
use emr_sqlite::SqliteStore;

use crate::nats_server::NatsServer;

/// The fixed KEK of tests, in the keyring format (`EMR__KEYS__KEYRING` for an `emr`
/// process that must open the PHI a test wrote).
pub const TEST_KEYRING: &str = "test-kek:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A fixed KEK for tests.
pub fn test_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::parse(TEST_KEYRING).unwrap())
}

/// A backend and whatever must outlive it (the server, the directory).
pub struct TestBackend {
    /// The ports under test.
    pub backend: Backend,
    /// The NATS server, for JetStream backends.
    pub nats: Option<NatsServer>,
    dir: Option<tempfile::TempDir>,
}

impl TestBackend {
    /// Every file the backend keeps on disk lies under this directory.
    pub fn storage_dir(&self) -> &std::path::Path {
        match (&self.nats, &self.dir) {
            (Some(server), _) => server.store_dir(),
            (None, Some(dir)) => dir.path(),
            (None, None) => unreachable!("every test backend keeps its files somewhere"),
        }
    }

    /// The SQLite file of an embedded backend (tamper tests write to it directly).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join("events.db"))
    }
}

/// JetStream on a throwaway server.
pub async fn jetstream() -> TestBackend {
    jetstream_with_request_timeout(NatsConfig::default().request_timeout).await
}

/// JetStream on a throwaway server, failing requests after `timeout`.
pub async fn jetstream_with_request_timeout(timeout: std::time::Duration) -> TestBackend {
    let server = NatsServer::start();
    let config = NatsConfig { url: server.url(), request_timeout: timeout, ..NatsConfig::default() };
    let nats = NatsBackend::connect(&config).await.unwrap();
    TestBackend {
        backend: Backend { log: nats.log, snapshots: nats.snapshots, keys: nats.keys, kek: test_keyring() },
        nats: Some(server),
        dir: None,
    }
}

/// The embedded SQLite store in a temporary directory.
pub async fn sqlite() -> TestBackend {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let (log, snapshots, keys) = store.ports();
    TestBackend { backend: Backend { log, snapshots, keys, kek: test_keyring() }, nats: None, dir: Some(dir) }
}

/// The application layer over a backend.
pub fn clinic(backend: &Backend) -> emr_commands::Clinic {
    emr_commands::Clinic::new(backend.clone(), emr_eventstore::StoreConfig::default(), emr_domain::DomainServices::default())
}
