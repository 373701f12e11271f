//! User accounts (the seed's Users table): practitioners, patients, administrators
//! and auditors, with their credentials and MFA enrolment.
//!
//! Credential material (the argon2id hash, the TOTP secret) is sealed like PHI,
//! under the account holder's own data key ([`data_subject`]): the log holds it
//! only encrypted, and erasing the holder shreds it. A patient's account id *is*
//! their patient id, so erasing a patient also ends their logins.
//!
//! Usernames are unique through a second, tiny aggregate, [`UsernameClaim`], whose
//! id is the username: creating it twice is an optimistic-concurrency conflict in
//! the log, so two concurrent registrations of one name cannot both succeed.

mod aggregate;
mod claim;
mod commands;
mod events;
mod values;

pub use aggregate::{Account, AccountError, AccountStatus, MfaState};
pub use claim::{ClaimError, UsernameClaim, UsernameClaimCommand, UsernameClaimEvent};
pub use commands::AccountCommand;
pub use events::AccountEvent;
pub use values::{LicenceNumber, PasswordHash, PasswordPolicy, PasswordRejected, PractitionerProfile, TotpSecret, Username};

use crate::ids::{PatientId, UserId};

/// The data subject whose key seals an account's credentials: the account holder.
pub fn data_subject(user_id: UserId) -> PatientId {
    PatientId::from(user_id.as_uuid())
}
