//! (being written)
pub mod merkle;
