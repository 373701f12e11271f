//! [`EmrEventStore`]: cqrs-es's `EventStore` over the [`EventLog`] port.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::Utc;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope, EventStore};
use emr_domain::ids::{CommandId, EventId, PatientId};
use emr_domain::metadata::CommandContext;
use emr_domain::upcasting::EventSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::cache::AggregateCache;
use crate::codec::{CommitRecord, ENVELOPE_SCHEMA, EventRecord, decode_event};
use crate::error::{CodecError, StoreError};
use crate::log::{AggregateKey, Appended, CommitRequest, EventLog, LogError, StoredCommit};
use crate::phi::PhiCodec;
use crate::snapshot::SnapshotStore;

/// Tuning of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Write a snapshot every this many events of an aggregate (0: never).
    pub snapshot_every: u64,
    /// Aggregates kept in the in-process cache (0: no cache).
    pub cache_capacity: usize,
    /// How long a cached aggregate is used without asking the log whether another
    /// process wrote to it since. Zero (the default): the log is asked on every
    /// load. Above zero, a load in this window costs no round trip, and another
    /// process's change may go unseen for up to this long by checks that read
    /// other aggregates (a patient's status when a record is created); a command
    /// on the stale aggregate itself is refused by the log's expectation and run
    /// again on the latest state, so its outcome does not change.
    pub cache_trust: std::time::Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { snapshot_every: 100, cache_capacity: 10_000, cache_trust: std::time::Duration::ZERO }
    }
}

/// Where a point-in-time replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// Commits at or before this log position.
    Position(u64),
    /// Commits recorded at or before this instant.
    Time(chrono::DateTime<Utc>),
}

/// Where a command's events landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSummary {
    /// Global position of the commit.
    pub position: u64,
    /// Sequence of its first event.
    pub first_sequence: u64,
    /// Sequence of its last event.
    pub last_sequence: u64,
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The events it produced, as stored (empty when it changed nothing).
    pub events: Vec<EventEnvelope<A>>,
    /// Position of its commit; a query can wait for read models to reach it.
    pub position: Option<u64>,
    /// True when the command id had been applied before and this is its original result.
    pub replayed: bool,
}

impl<A: Aggregate> Executed<A> {
    /// A command that produced no event.
    fn nothing() -> Self {
        Self { events: Vec::new(), position: None, replayed: false }
    }
}

/// What executing a command came to.
pub type Outcome<A> = Result<Executed<A>, ExecuteError<<A as Aggregate>::Error>>;

/// How a creation goes ([`EmrEventStore::creation_path`]).
// Short-lived and matched at once: boxing the commit would cost every creation an allocation.
#[allow(clippy::large_enum_variant)]
enum CreationPath<A: Aggregate> {
    /// Straight to the log as this commit (none: the command produced no event).
    Append(Option<Prepared<A>>),
    /// Decided on the latest state.
    Execute,
}

/// Why a command was not executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused it (a business rule).
    #[error(transparent)]
    Rejected(E),
    /// The store failed; see [`StoreError::is_retryable`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: std::error::Error> ExecuteError<E> {
    /// The error in the caller's own type, which knows both a rule refusal and a
    /// store failure.
    pub fn into_error<T: From<E> + From<StoreError>>(self) -> T {
        match self {
            Self::Rejected(rule) => rule.into(),
            Self::Store(store) => store.into(),
        }
    }
}

/// A commit sealed and encoded but not yet appended ([`EmrEventStore::prepare`]).
#[derive(Debug)]
pub struct Prepared<A: Aggregate> {
    /// What to hand the log.
    pub request: CommitRequest,
    record: CommitRecord,
    events: Vec<A::Event>,
    context: EmrAggregateContext<A>,
    /// The subjects whose PHI the commit holds, found while sealing it.
    subjects: BTreeSet<PatientId>,
}

/// A loaded aggregate and what the store needs to commit to it.
#[derive(Debug, Clone)]
pub struct EmrAggregateContext<A> {
    key: AggregateKey,
    aggregate: A,
    sequence: u64,
    position: u64,
    commands: Arc<HashMap<CommandId, CommitSummary>>,
    /// The data subjects whose PHI the applied events hold, in any form: those
    /// whose erasure must drop the aggregate from the cache. Gathered commit by
    /// commit, because finding them in the aggregate meant serializing all of it
    /// after every command (a quarter of a long-lived record's command time).
    subjects: Arc<BTreeSet<PatientId>>,
}

impl<A: Default> EmrAggregateContext<A> {
    fn empty(key: AggregateKey) -> Self {
        Self { key, aggregate: A::default(), sequence: 0, position: 0, commands: Arc::default(), subjects: Arc::default() }
    }
}

impl<A> EmrAggregateContext<A> {
    /// The aggregate's key.
    pub fn key(&self) -> &AggregateKey {
        &self.key
    }

    /// The aggregate state.
    pub fn state(&self) -> &A {
        &self.aggregate
    }

    /// Number of events applied.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Position of the last commit applied (0: none).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The data subjects whose PHI its events hold, in any form.
    pub(crate) fn subjects(&self) -> &BTreeSet<PatientId> {
        &self.subjects
    }

    /// Notes that applied events hold PHI of `subjects`.
    fn hold_subjects(&mut self, subjects: BTreeSet<PatientId>) {
        if !subjects.is_subset(&self.subjects) {
            Arc::make_mut(&mut self.subjects).extend(subjects);
        }
    }

    /// Where the given command landed, if it was already applied to this aggregate.
    pub fn commit_of(&self, command_id: CommandId) -> Option<CommitSummary> {
        self.commands.get(&command_id).copied()
    }
}

impl<A: Aggregate> AggregateContext<A> for EmrAggregateContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    schema: u32,
    aggregate: Value,
    sequence: u64,
    position: u64,
    commands: Vec<(CommandId, CommitSummary)>,
}

/// The event store for aggregates of type `A`.
pub struct EmrEventStore<A> {
    log: Arc<dyn EventLog>,
    phi: Arc<PhiCodec>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    cache: Option<Arc<AggregateCache<A>>>,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    config: StoreConfig,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for EmrEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            phi: self.phi.clone(),
            snapshots: self.snapshots.clone(),
            cache: self.cache.clone(),
            upcasters: self.upcasters.clone(),
            config: self.config,
            _aggregate: PhantomData,
        }
    }
}

type AggError<A> = AggregateError<<A as Aggregate>::Error>;

impl<A> EmrEventStore<A>
where
    A: Aggregate + EventSchema + Clone,
{
    /// A store over a log and a PHI codec, with optional snapshots.
    pub fn new(log: Arc<dyn EventLog>, phi: Arc<PhiCodec>, snapshots: Option<Arc<dyn SnapshotStore>>, config: StoreConfig) -> Self {
        let cache = NonZeroUsize::new(config.cache_capacity).map(|capacity| Arc::new(AggregateCache::new(capacity)));
        Self { log, phi, snapshots, cache, upcasters: Arc::new(A::upcasters()), config, _aggregate: PhantomData }
    }

    /// The aggregate cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<AggregateCache<A>>> {
        self.cache.as_ref()
    }

    /// The PHI codec (and through it the key vault).
    pub fn phi(&self) -> &Arc<PhiCodec> {
        &self.phi
    }

    fn key(aggregate_id: &str) -> Result<AggregateKey, StoreError> {
        Ok(AggregateKey::new(A::TYPE, aggregate_id)?)
    }

    /// Loads an aggregate: from the cache or a snapshot if there is one, then every
    /// later commit from the log.
    pub async fn load(&self, aggregate_id: &str) -> Result<EmrAggregateContext<A>, StoreError> {
        Ok(self.load_trusting(aggregate_id, true).await?.0)
    }

    /// [`Self::load`]; with `trust`, a cached aggregate checked within the
    /// `cache_trust` window is returned as it is, and the flag says so.
    async fn load_trusting(&self, aggregate_id: &str, trust: bool) -> Result<(EmrAggregateContext<A>, bool), StoreError> {
        let key = Self::key(aggregate_id)?;
        let mut context = match self.cached(&key).await? {
            Some((context, checked_at)) if trust && checked_at.elapsed() < self.config.cache_trust => return Ok((context, true)),
            Some((context, _)) => context,
            None => match self.snapshot(&key).await {
                Some(context) => context,
                None => EmrAggregateContext::empty(key.clone()),
            },
        };
        let commits = self.log.read_aggregate(&key, context.position).await?;
        for commit in &commits {
            let (mut record, envelopes) = self.decode(commit, context.sequence).await?;
            for envelope in envelopes {
                context.aggregate.apply(envelope.payload);
            }
            Self::record_commit(&mut context, &record, commit.position);
            context.hold_subjects(Self::subjects_of(&mut record)?);
        }
        self.remember(context.clone());
        Ok((context, false))
    }

    /// The aggregate as it was at `cutoff`: a fold of its commits up to there,
    /// without cache or snapshot (they only know the present).
    pub async fn load_as_of(&self, aggregate_id: &str, cutoff: Cutoff) -> Result<EmrAggregateContext<A>, StoreError> {
        let key = Self::key(aggregate_id)?;
        let mut context = EmrAggregateContext::<A>::empty(key.clone());
        for commit in self.log.read_aggregate(&key, 0).await? {
            if matches!(cutoff, Cutoff::Position(limit) if commit.position > limit) {
                break;
            }
            let (record, envelopes) = self.decode(&commit, context.sequence).await?;
            if matches!(cutoff, Cutoff::Time(limit) if record.recorded_at > limit) {
                break;
            }
            for envelope in envelopes {
                context.aggregate.apply(envelope.payload);
            }
            // Not cached, so the PHI subjects it holds need not be known.
            Self::record_commit(&mut context, &record, commit.position);
        }
        Ok(context)
    }

    /// Every event of an aggregate, decoded, PHI opened (or shredded).
    pub async fn events(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, StoreError> {
        let key = Self::key(aggregate_id)?;
        let mut sequence = 0;
        let mut all = Vec::new();
        for commit in self.log.read_aggregate(&key, 0).await? {
            let (record, envelopes) = self.decode(&commit, sequence).await?;
            sequence = record.last_sequence();
            all.extend(envelopes);
        }
        Ok(all)
    }

    /// Runs a command: loads the aggregate, lets it decide, appends its events.
    ///
    /// Idempotent by command id: a command already applied to this aggregate is
    /// not decided again; its original events are returned with `replayed` set.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>>
    where
        A::Command: Clone,
    {
        // A conditional command compares versions: only the latest state will do.
        let (loaded, unchecked) = self.load_trusting(aggregate_id, context.expected_version.is_none()).await?;
        if !unchecked {
            return self.decide_and_append(loaded, command, services, context).await;
        }
        match self.decide_and_append(loaded, command.clone(), services, context).await {
            // The cached state may be behind another process's writes: what it
            // refused, or the log refused, is decided again on the latest state.
            Err(ExecuteError::Rejected(_) | ExecuteError::Store(StoreError::Log(LogError::Conflict { .. }))) => {
                let (latest, _) = self.load_trusting(aggregate_id, false).await?;
                self.decide_and_append(latest, command, services, context).await
            }
            outcome => outcome,
        }
    }

    async fn decide_and_append(
        &self,
        mut loaded: EmrAggregateContext<A>,
        command: A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        if let Some(original) = self.applied(&loaded, context.command_id).await? {
            return Ok(original);
        }
        if let Some(expected) = context.expected_version.filter(|&expected| expected != loaded.sequence) {
            return Err(StoreError::Stale { expected, actual: loaded.sequence }.into());
        }
        let sink = EventSink::default();
        loaded.aggregate.handle(command, services, &sink).await.map_err(ExecuteError::Rejected)?;
        Ok(self.append(sink.collect().await, loaded, context).await?)
    }

    /// Runs a command that starts an aggregate's life (a record's creation, a
    /// disclosure) without reading the log first: it is decided on the empty
    /// aggregate and appended expecting an empty history, which the log checks.
    /// Should the history not be empty (the id is taken, or this very command was
    /// applied before), or the empty aggregate refuse, the command runs as
    /// [`Self::execute`] runs it, so the outcome is `execute`'s — with one read
    /// of the log fewer when the aggregate is new, as a creation's almost always is.
    pub async fn execute_creation(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>>
    where
        A::Command: Clone,
    {
        let key = Self::key(aggregate_id)?;
        match self.creation_path(key, &command, services, context).await? {
            CreationPath::Execute => self.execute(aggregate_id, command, services, context).await,
            CreationPath::Append(None) => Ok(Executed::nothing()),
            CreationPath::Append(Some(commit)) => match self.append_prepared(commit).await {
                Err(StoreError::Log(LogError::Conflict { .. })) => self.execute(aggregate_id, command, services, context).await,
                outcome => Ok(outcome?),
            },
        }
    }

    /// How a creation goes: straight to the log, decided on the empty aggregate
    /// (no read first), or — its aggregate known, the command conditional, or
    /// refused on the empty aggregate — through [`EmrEventStore::execute`].
    async fn creation_path(
        &self,
        key: AggregateKey,
        command: &A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<CreationPath<A>, StoreError>
    where
        A::Command: Clone,
    {
        let known = self.cache.as_ref().is_some_and(|cache| cache.contains(&key));
        if known || context.expected_version.is_some_and(|expected| expected != 0) {
            return Ok(CreationPath::Execute);
        }
        let mut empty = EmrAggregateContext::<A>::empty(key);
        let sink = EventSink::default();
        if empty.aggregate.handle(command.clone(), services, &sink).await.is_err() {
            return Ok(CreationPath::Execute);
        }
        Ok(CreationPath::Append(self.prepare(sink.collect().await, empty, context).await?))
    }

    /// Executes commands that each create their own aggregate as one pipelined
    /// batch (a bulk import): each is decided on the empty aggregate and its
    /// commit sent with the others' before any acknowledgement is awaited
    /// ([`EventLog::append_each`]). Each answers on its own, in the order given.
    /// One that cannot go this way — its aggregate known or taken in the log, a
    /// conditional command, refused on the empty aggregate — runs as
    /// [`EmrEventStore::execute_creation`] would, after the batch.
    pub async fn execute_creations(&self, batch: Vec<(String, A::Command, CommandContext)>, services: &A::Services) -> Vec<Outcome<A>>
    where
        A::Command: Clone,
    {
        let mut outcomes: Vec<Option<Outcome<A>>> = batch.iter().map(|_| None).collect();
        let (mut prepared, mut one_by_one) = (Vec::new(), Vec::new());
        for (index, (aggregate_id, command, context)) in batch.iter().enumerate() {
            let path = match Self::key(aggregate_id) {
                Ok(key) => self.creation_path(key, command, services, context).await,
                Err(error) => Err(error),
            };
            match path {
                Ok(CreationPath::Execute) => one_by_one.push(index),
                Ok(CreationPath::Append(Some(commit))) => prepared.push((index, commit)),
                Ok(CreationPath::Append(None)) => outcomes[index] = Some(Ok(Executed::nothing())),
                Err(error) => outcomes[index] = Some(Err(error.into())),
            }
        }
        let requests = prepared.iter().map(|(_, commit)| commit.request.clone()).collect();
        let appended = self.log.append_each(requests).await;
        for ((index, commit), appended) in prepared.into_iter().zip(appended) {
            match appended {
                Ok(appended) => outcomes[index] = Some(self.complete(commit, appended).await.map_err(Into::into)),
                Err(LogError::Conflict { .. }) => one_by_one.push(index),
                Err(error) => {
                    self.forget(&commit.context.key);
                    outcomes[index] = Some(Err(StoreError::from(error).into()));
                }
            }
        }
        for index in one_by_one {
            let (aggregate_id, command, context) = &batch[index];
            outcomes[index] = Some(self.execute(aggregate_id, command.clone(), services, context).await);
        }
        debug_assert!(outcomes.iter().all(Option::is_some), "every command of a batch is answered");
        outcomes.into_iter().flatten().collect()
    }

    /// Appends the events a command produced on `context`; returns them as stored.
    /// A retry of an already appended command returns the original events.
    pub async fn append(
        &self,
        events: Vec<A::Event>,
        context: EmrAggregateContext<A>,
        command: &CommandContext,
    ) -> Result<Executed<A>, StoreError> {
        match self.prepare(events, context, command).await? {
            Some(prepared) => self.append_prepared(prepared).await,
            None => Ok(Executed::nothing()),
        }
    }

    /// Appends a prepared commit and completes it.
    async fn append_prepared(&self, prepared: Prepared<A>) -> Result<Executed<A>, StoreError> {
        let append_span = tracing::info_span!(
            "append",
            aggregate_type = A::TYPE,
            expected_position = prepared.request.expected_last_position,
            position = tracing::field::Empty
        );
        let appended = match self.log.append(prepared.request.clone()).instrument(append_span.clone()).await {
            Ok(appended) => appended,
            Err(error) => {
                self.forget(&prepared.context.key);
                return Err(error.into());
            }
        };
        append_span.record("position", appended.position);
        self.complete(prepared, appended).await
    }

    /// Seals and encodes the events a command produced on `context` as the commit
    /// to append (`None` when there are none), without appending it: what a change
    /// to several aggregates collects before [`EventLog::append_together`].
    /// `context` holds the events applied, as a command's `handle` leaves it: it is
    /// what the cache keeps once the commit is in.
    pub async fn prepare(
        &self,
        events: Vec<A::Event>,
        context: EmrAggregateContext<A>,
        command: &CommandContext,
    ) -> Result<Option<Prepared<A>>, StoreError> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(events.len());
        let mut subjects = BTreeSet::new();
        for (offset, event) in events.iter().enumerate() {
            let mut payload = serde_json::to_value(event).map_err(|e| CodecError::Encode(e.to_string()))?;
            subjects.extend(self.phi.seal(&mut payload).await?);
            records.push(EventRecord {
                event_id: EventId::new(),
                sequence: context.sequence + offset as u64 + 1,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload,
            });
        }
        let record = CommitRecord {
            schema: ENVELOPE_SCHEMA,
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: context.key.aggregate_id().to_owned(),
            command_id: command.command_id,
            correlation_id: command.correlation_id,
            causation_id: command.causation_id,
            actor: command.actor,
            recorded_at: Utc::now(),
            events: records,
        };
        let request = CommitRequest {
            key: context.key.clone(),
            expected_last_position: context.position,
            commit_id: command.command_id.to_string(),
            payload: record.encode()?,
        };
        Ok(Some(Prepared { request, record, events, context, subjects }))
    }

    /// What a prepared commit became once the log took it (`appended`).
    pub async fn complete(&self, prepared: Prepared<A>, appended: Appended) -> Result<Executed<A>, StoreError> {
        let Prepared { record, events, mut context, subjects, .. } = prepared;
        if appended.duplicate {
            self.forget(&context.key);
            let events = self.original_commit(&context.key, record.command_id, appended.position).await?;
            return Ok(Executed { events, position: Some(appended.position), replayed: true });
        }
        let envelopes =
            record.events.iter().zip(events).map(|(stored, payload)| self.envelope(&record, stored, payload, appended.position)).collect();
        let previous_sequence = context.sequence;
        Self::record_commit(&mut context, &record, appended.position);
        context.hold_subjects(subjects);
        // The context moves into the cache; a copy only when a snapshot is due.
        let to_snapshot = self.snapshot_due(previous_sequence, context.sequence).then(|| context.clone());
        self.remember(context);
        if let Some(context) = to_snapshot {
            self.write_snapshot(&context).await;
        }
        Ok(Executed { events: envelopes, position: Some(appended.position), replayed: false })
    }

    /// The original result of `command_id` if it was already applied to `loaded`.
    pub async fn applied(&self, loaded: &EmrAggregateContext<A>, command_id: CommandId) -> Result<Option<Executed<A>>, StoreError> {
        let Some(summary) = loaded.commit_of(command_id) else { return Ok(None) };
        let events = self.original_commit(&loaded.key, command_id, summary.position).await?;
        Ok(Some(Executed { events, position: Some(summary.position), replayed: true }))
    }

    async fn original_commit(&self, key: &AggregateKey, command_id: CommandId, position: u64) -> Result<Vec<EventEnvelope<A>>, StoreError> {
        let reused = || StoreError::CommandIdReused { command_id: command_id.to_string(), original: format!("position {position}") };
        let commit = self.log.read_from(position, 1).await?.into_iter().find(|c| c.position == position).ok_or_else(reused)?;
        if &commit.key != key {
            return Err(StoreError::CommandIdReused { command_id: command_id.to_string(), original: commit.key.dotted() });
        }
        let record = CommitRecord::decode(&commit)?;
        let (_, envelopes) = self.decode(&commit, record.first_sequence() - 1).await?;
        Ok(envelopes)
    }

    /// Moves `context` past a commit (its events already applied).
    fn record_commit(context: &mut EmrAggregateContext<A>, record: &CommitRecord, position: u64) {
        context.sequence = record.last_sequence();
        context.position = position;
        let summary = CommitSummary { position, first_sequence: record.first_sequence(), last_sequence: record.last_sequence() };
        Arc::make_mut(&mut context.commands).insert(record.command_id, summary);
    }

    /// The subjects whose PHI a stored commit's events hold, in any form.
    fn subjects_of(record: &mut CommitRecord) -> Result<BTreeSet<PatientId>, StoreError> {
        let mut subjects = BTreeSet::new();
        for event in &mut record.events {
            subjects.extend(PhiCodec::subjects(&mut event.payload)?);
        }
        Ok(subjects)
    }

    fn envelope(&self, record: &CommitRecord, stored: &EventRecord, payload: A::Event, position: u64) -> EventEnvelope<A> {
        let metadata = record.metadata_of(stored, position);
        EventEnvelope {
            aggregate_id: record.aggregate_id.clone(),
            sequence: stored.sequence as usize,
            payload,
            metadata: metadata.to_map(),
        }
    }

    /// Decodes one commit of this aggregate type whose events must follow `previous_sequence`.
    async fn decode(&self, commit: &StoredCommit, previous_sequence: u64) -> Result<(CommitRecord, Vec<EventEnvelope<A>>), StoreError> {
        let record = CommitRecord::decode(commit)?;
        if record.first_sequence() != previous_sequence + 1 {
            return Err(CodecError::OutOfSequence {
                key: commit.key.dotted(),
                position: commit.position,
                expected: previous_sequence + 1,
                found: record.first_sequence(),
            }
            .into());
        }
        let mut envelopes = Vec::with_capacity(record.events.len());
        for stored in &record.events {
            let mut opened = stored.clone();
            self.phi.open(&mut opened.payload).await?;
            let event = decode_event(&self.upcasters, A::TYPE, commit.key.aggregate_id(), commit.position, &opened)?;
            envelopes.push(self.envelope(&record, stored, event, commit.position));
        }
        Ok((record, envelopes))
    }

    async fn cached(&self, key: &AggregateKey) -> Result<Option<(EmrAggregateContext<A>, std::time::Instant)>, StoreError> {
        let Some((context, checked_at)) = self.cache.as_ref().and_then(|cache| cache.get(key)) else {
            return Ok(None);
        };
        // A cached aggregate holds PHI in clear: once any of its subjects is erased
        // (possibly by another process) it must be reloaded, and so shredded.
        for &subject in context.subjects.iter() {
            if self.phi.vault().key_for_opening(subject).await?.is_none() {
                self.forget(key);
                return Ok(None);
            }
        }
        Ok(Some((context, checked_at)))
    }

    fn remember(&self, context: EmrAggregateContext<A>) {
        if let Some(cache) = &self.cache {
            cache.put(context);
        }
    }

    fn forget(&self, key: &AggregateKey) {
        if let Some(cache) = &self.cache {
            cache.evict(key);
        }
    }

    /// Drops every cached aggregate holding PHI of `subject`.
    pub fn forget_subject(&self, subject: PatientId) {
        if let Some(cache) = &self.cache {
            cache.evict_subject(subject);
        }
    }

    async fn snapshot(&self, key: &AggregateKey) -> Option<EmrAggregateContext<A>> {
        let store = self.snapshots.as_ref()?;
        let result: Result<Option<EmrAggregateContext<A>>, StoreError> = async {
            let Some(bytes) = store.get(key).await? else { return Ok(None) };
            let mut snapshot: Snapshot =
                serde_json::from_slice(&bytes).map_err(|e| CodecError::Malformed { position: 0, reason: format!("snapshot: {e}") })?;
            if snapshot.schema != ENVELOPE_SCHEMA {
                return Ok(None);
            }
            let subjects = PhiCodec::subjects(&mut snapshot.aggregate)?;
            self.phi.open(&mut snapshot.aggregate).await?;
            let aggregate = serde_json::from_value(snapshot.aggregate)
                .map_err(|e| CodecError::Malformed { position: snapshot.position, reason: format!("snapshot: {e}") })?;
            Ok(Some(EmrAggregateContext {
                key: key.clone(),
                aggregate,
                sequence: snapshot.sequence,
                position: snapshot.position,
                commands: Arc::new(snapshot.commands.into_iter().collect()),
                subjects: Arc::new(subjects),
            }))
        }
        .await;
        result.unwrap_or_else(|error| {
            tracing::warn!(key = %key.dotted(), %error, "snapshot ignored; replaying the log");
            None
        })
    }

    /// True when a commit moving an aggregate from `previous_sequence` to
    /// `sequence` crosses a multiple of `snapshot_every` (and snapshots are kept).
    fn snapshot_due(&self, previous_sequence: u64, sequence: u64) -> bool {
        let every = self.config.snapshot_every;
        self.snapshots.is_some() && every != 0 && previous_sequence / every != sequence / every
    }

    async fn write_snapshot(&self, context: &EmrAggregateContext<A>) {
        let Some(store) = &self.snapshots else { return };
        let result: Result<(), StoreError> = async {
            let mut aggregate = serde_json::to_value(&context.aggregate).map_err(|e| CodecError::Encode(e.to_string()))?;
            self.phi.seal(&mut aggregate).await?;
            let snapshot = Snapshot {
                schema: ENVELOPE_SCHEMA,
                aggregate,
                sequence: context.sequence,
                position: context.position,
                commands: context.commands.iter().map(|(id, summary)| (*id, *summary)).collect(),
            };
            let bytes = serde_json::to_vec(&snapshot).map_err(|e| CodecError::Encode(e.to_string()))?;
            store.put(&context.key, bytes).await?;
            Ok(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(key = %context.key.dotted(), %error, "snapshot not written");
        }
    }
}

impl<A> EventStore<A> for EmrEventStore<A>
where
    A: Aggregate + EventSchema + Clone,
{
    type AC = EmrAggregateContext<A>;

    async fn load_events(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, AggError<A>> {
        Ok(self.events(aggregate_id).await?)
    }

    async fn load_aggregate(&self, aggregate_id: &str) -> Result<Self::AC, AggError<A>> {
        Ok(self.load(aggregate_id).await?)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggError<A>> {
        let command = CommandContext::from_map(&metadata).map_err(|e| StoreError::Metadata(e.to_string()))?;
        Ok(self.append(events, context, &command).await?.events)
    }
}
