//! Which grants name a (patient, practitioner) pair: the lookup behind every
//! grant-based authorization.
//!
//! The directory only *finds* candidate grants; whether one authorizes is always
//! decided on the grant aggregate itself, loaded from the log, so a revocation
//! takes effect with the very next request. The pair a grant names never
//! changes, so a stale directory can only miss a grant created a moment ago —
//! and the directory catches up with the log before it answers "none".

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use cqrs_es::Aggregate;
use emr_domain::grant::{AccessGrant, GrantEvent};
use emr_domain::ids::{GrantId, PatientId, UserId};
use emr_eventstore::{LogReader, StoreError};

#[derive(Default)]
struct Index {
    next_position: u64,
    by_pair: HashMap<(PatientId, UserId), BTreeSet<GrantId>>,
}

pub(crate) struct GrantDirectory {
    reader: LogReader,
    index: Mutex<Index>,
}

impl GrantDirectory {
    const BATCH: usize = 1000;

    pub(crate) fn new(reader: LogReader) -> Self {
        Self { reader, index: Mutex::new(Index { next_position: 1, ..Index::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A poisoned lock only means another thread panicked mid-insert of ids
        // that are re-read from the log anyway.
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Grants naming `user` for `patient` known so far.
    pub(crate) fn candidates(&self, patient: PatientId, user: UserId) -> BTreeSet<GrantId> {
        self.lock().by_pair.get(&(patient, user)).cloned().unwrap_or_default()
    }

    /// Folds every grant created since the last catch-up into the index.
    pub(crate) async fn catch_up(&self) -> Result<(), StoreError> {
        loop {
            let from = self.lock().next_position;
            let events = self.reader.read(from, Self::BATCH).await?;
            let Some(last) = events.last().map(|event| event.metadata.position) else { return Ok(()) };
            let mut found = Vec::new();
            for event in events.iter().filter(|event| event.key.aggregate_type() == AccessGrant::TYPE) {
                match event.decode::<AccessGrant>(&[])? {
                    GrantEvent::AccessGranted { grant_id, patient_id, grantee: user, .. }
                    | GrantEvent::AccessRequested { grant_id, patient_id, requester: user, .. } => found.push((patient_id, user, grant_id)),
                    GrantEvent::AccessDenied { .. } | GrantEvent::AccessRevoked { .. } => {}
                }
            }
            let mut index = self.lock();
            for (patient, user, grant) in found {
                index.by_pair.entry((patient, user)).or_default().insert(grant);
            }
            index.next_position = index.next_position.max(last + 1);
        }
    }
}
