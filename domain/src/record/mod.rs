//! A medical record: created for exactly one patient, amended into new versions
//! (earlier versions stay, each with its reason), given attachments, soft-deleted
//! and restored; AI-assisted diagnosis suggestions on its attachments, and their
//! review by a physician.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{AttachmentSummary, MedicalRecord, RecordError, RecordStatus, RecordVersion, ReviewSummary, SuggestionSummary};
pub use commands::{AttachmentDescriptor, RecordCommand};
pub use events::RecordEvent;
