//! A medical record: created for exactly one patient, amended into new versions
//! (earlier versions stay, each with its reason), given attachments, soft-deleted
//! and restored.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{AttachmentSummary, MedicalRecord, RecordError, RecordStatus, RecordVersion};
pub use commands::{AttachmentDescriptor, RecordCommand};
pub use events::RecordEvent;
