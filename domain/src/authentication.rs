//! Authentication facts: every password step and every session's use is an event,
//! so that threat detection reads them from the log like any other fact, and an
//! auditor can replay who signed in, from where, and how it ended.
//!
//! - [`SignInAttempt`]: one password step, one one-event aggregate (attempts never
//!   contend with each other). The username is kept only as a digest: attackers
//!   type anything into it, and a typo'd or guessed name is no business of the log.
//! - [`Session`]: one login and the refresh tokens rotated from it, with the
//!   client address of each use.

use std::net::IpAddr;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{SessionId, SignInId, UserId};
use crate::values::Sha256Digest;

/// How a password step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInOutcome {
    /// The password matched; the MFA step follows.
    Succeeded,
    /// The account exists and the password did not match.
    WrongPassword,
    /// No account has this username.
    UnknownAccount,
    /// The account is locked.
    Locked,
    /// The account is closed.
    Deactivated,
}

impl SignInOutcome {
    /// Whether the attempt counts as a failed guess.
    pub fn failed(self) -> bool {
        !matches!(self, Self::Succeeded)
    }
}

/// A sign-in attempt id was used twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this sign-in attempt was already recorded")]
pub struct AttemptAlreadyRecorded;

/// Record one password step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSignIn {
    /// The attempt (also the aggregate id).
    pub attempt_id: SignInId,
    /// The account, when the username names one.
    pub user_id: Option<UserId>,
    /// SHA-256 of the username as typed (lowercased), to count the accounts one
    /// address tries without keeping what it typed.
    pub username_digest: Sha256Digest,
    /// The client's address, when the transport knows it.
    pub client: Option<IpAddr>,
    /// How it ended.
    pub outcome: SignInOutcome,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SignInEvent {
    /// A password step was tried.
    SignInAttempted {
        /// The attempt.
        attempt_id: SignInId,
        /// The account, when known.
        user_id: Option<UserId>,
        /// Digest of the username typed.
        username_digest: Sha256Digest,
        /// The client's address.
        client: Option<IpAddr>,
        /// How it ended.
        outcome: SignInOutcome,
    },
}

impl DomainEvent for SignInEvent {
    fn event_type(&self) -> String {
        "SignInAttempted".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One password step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignInAttempt {
    attempt_id: Option<SignInId>,
}

impl SignInAttempt {
    /// The event recording `command`.
    pub fn decide(&self, command: RecordSignIn) -> Result<Vec<SignInEvent>, AttemptAlreadyRecorded> {
        if self.attempt_id.is_some() {
            return Err(AttemptAlreadyRecorded);
        }
        let RecordSignIn { attempt_id, user_id, username_digest, client, outcome } = command;
        Ok(vec![SignInEvent::SignInAttempted { attempt_id, user_id, username_digest, client, outcome }])
    }
}

impl Aggregate for SignInAttempt {
    const TYPE: &'static str = "sign_in";
    type Command = RecordSignIn;
    type Event = SignInEvent;
    type Error = AttemptAlreadyRecorded;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        let SignInEvent::SignInAttempted { attempt_id, .. } = event;
        self.attempt_id = Some(attempt_id);
    }
}

/// Why a session command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A session id was opened twice.
    #[error("this session was already opened")]
    AlreadyOpen,
    /// A refresh of a session never opened.
    #[error("no such session")]
    NotOpen,
}

/// A session command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionCommand {
    /// The MFA step succeeded: a session begins.
    Open {
        /// The session (also the aggregate id).
        session_id: SessionId,
        /// Whose.
        user_id: UserId,
        /// From where.
        client: Option<IpAddr>,
    },
    /// A refresh token was traded for a new pair.
    Refresh {
        /// From where.
        client: Option<IpAddr>,
    },
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    /// A session began.
    SessionOpened {
        /// The session.
        session_id: SessionId,
        /// Whose.
        user_id: UserId,
        /// From where.
        client: Option<IpAddr>,
    },
    /// The session's refresh token was rotated.
    SessionRefreshed {
        /// The session.
        session_id: SessionId,
        /// Whose (repeated so that each event stands alone).
        user_id: UserId,
        /// From where.
        client: Option<IpAddr>,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SessionOpened { .. } => "SessionOpened",
            Self::SessionRefreshed { .. } => "SessionRefreshed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    opened: Option<(SessionId, UserId)>,
}

impl Session {
    /// The events `command` produces.
    pub fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match (command, self.opened) {
            (SessionCommand::Open { session_id, user_id, client }, None) => {
                Ok(vec![SessionEvent::SessionOpened { session_id, user_id, client }])
            }
            (SessionCommand::Open { .. }, Some(_)) => Err(SessionError::AlreadyOpen),
            (SessionCommand::Refresh { client }, Some((session_id, user_id))) => {
                Ok(vec![SessionEvent::SessionRefreshed { session_id, user_id, client }])
            }
            (SessionCommand::Refresh { .. }, None) => Err(SessionError::NotOpen),
        }
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        if let SessionEvent::SessionOpened { session_id, user_id, .. } = event {
            self.opened = Some((session_id, user_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_names_the_session_and_its_owner() {
        let (session_id, user_id) = (SessionId::new(), UserId::new());
        let mut session = Session::default();
        for event in session.decide(SessionCommand::Open { session_id, user_id, client: None }).unwrap() {
            session.apply(event);
        }
        let client = Some("203.0.113.9".parse().unwrap());
        assert_eq!(
            session.decide(SessionCommand::Refresh { client }).unwrap(),
            [SessionEvent::SessionRefreshed { session_id, user_id, client }]
        );
    }

    #[test]
    fn a_session_opens_once_and_refreshes_only_once_open() {
        let open = SessionCommand::Open { session_id: SessionId::new(), user_id: UserId::new(), client: None };
        assert_eq!(Session::default().decide(SessionCommand::Refresh { client: None }), Err(SessionError::NotOpen));
        let mut session = Session::default();
        for event in session.decide(open.clone()).unwrap() {
            session.apply(event);
        }
        assert_eq!(session.decide(open), Err(SessionError::AlreadyOpen));
    }

    #[test]
    fn only_a_matching_password_is_not_a_failure() {
        assert!(!SignInOutcome::Succeeded.failed());
        for outcome in [SignInOutcome::WrongPassword, SignInOutcome::UnknownAccount, SignInOutcome::Locked, SignInOutcome::Deactivated] {
            assert!(outcome.failed(), "{outcome:?}");
        }
    }
}
