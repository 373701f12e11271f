use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::values::Username;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::UserId;

/// A username is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Someone holds it already.
    #[error("the username is taken")]
    Taken,
}

/// Claim a username for an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsernameClaimCommand {
    /// The name (also the aggregate id).
    pub username: Username,
    /// The account that takes it.
    pub user_id: UserId,
}

/// A username was claimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UsernameClaimEvent {
    /// `username` now names `user_id`.
    UsernameClaimed {
        /// The name.
        username: Username,
        /// Its account.
        user_id: UserId,
    },
}

impl DomainEvent for UsernameClaimEvent {
    fn event_type(&self) -> String {
        "UsernameClaimed".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// The owner of one username: the lookup from login name to account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsernameClaim {
    user_id: Option<UserId>,
}

impl UsernameClaim {
    /// The account holding this name.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    /// A name is claimed once; claiming it again for the same account is a no-op.
    pub fn decide(&self, command: UsernameClaimCommand) -> Result<Vec<UsernameClaimEvent>, ClaimError> {
        match self.user_id {
            None => Ok(vec![UsernameClaimEvent::UsernameClaimed { username: command.username, user_id: command.user_id }]),
            Some(holder) if holder == command.user_id => Ok(vec![]),
            Some(_) => Err(ClaimError::Taken),
        }
    }
}

impl Aggregate for UsernameClaim {
    const TYPE: &'static str = "username";
    type Command = UsernameClaimCommand;
    type Event = UsernameClaimEvent;
    type Error = ClaimError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        let UsernameClaimEvent::UsernameClaimed { user_id, .. } = event;
        self.user_id = Some(user_id);
    }
}
