//! Access grants (the seed's Permissions): a patient's consent that a practitioner
//! may read, write or share their records until an expiry. A practitioner may also
//! request access, which the patient approves or denies.
//!
//! Expired grants authorize nothing: expiry is checked against the clock at every
//! use ([`AccessGrant::authorizes`]), no event is needed for it.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{AccessGrant, GrantError, GrantStatus};
pub use commands::GrantCommand;
pub use events::{GrantEvent, Scope};
