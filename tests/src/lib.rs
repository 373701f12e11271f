//! Helpers for EMR Ledger's integration tests: real servers started per test and
//! the event-store backends built on them.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub use mimalloc;

pub mod accounts;
pub mod ai_assets;
pub mod anvil;
pub mod api_client;
pub mod api_server;
pub mod backends;
pub mod bench;
pub mod charts;
pub mod detection_quality;
pub mod fabric_gateway;
pub mod fabric_peer;
pub mod history;
pub mod hospital_trace;
pub mod ipfs_cluster;
pub mod ipfs_node;
pub mod mariadb;
pub mod mariadb_server;
pub mod nats_server;
pub mod otlp_collector;
pub mod read_models;
pub mod report;
pub mod sessions;
pub mod trace_log;

/// Instantiates each named `async fn check(backend: Backend)` in scope as one
/// test per backend: `jetstream::check` on a throwaway nats-server and
/// `sqlite::check` on a temporary SQLite file.
#[macro_export]
macro_rules! on_every_backend {
    ($($check:ident),+ $(,)?) => {
        $crate::on_backend!(jetstream: $($check),+);
        $crate::on_backend!(sqlite: $($check),+);
    };
}

/// Instantiates the named checks on one backend; see [`on_every_backend`].
#[macro_export]
macro_rules! on_backend {
    ($backend:ident: $($check:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let test = $crate::backends::$backend().await;
                    super::$check(test.backend.clone()).await;
                }
            )+
        }
    };
    ($module:ident => $backend:ident: $($check:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let test = $crate::backends::$backend().await;
                    super::$check(test.backend.clone()).await;
                }
            )+
        }
    };
}
