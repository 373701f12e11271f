//! Helpers for EMR Ledger's integration tests: real servers started per test and
//! the event-store backends built on them.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod backends;
pub mod nats_server;
