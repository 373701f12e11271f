//! An in-process cache of loaded aggregates, keyed by aggregate and validated
//! against the log when used (the log is asked only for commits after the cached
//! position) — unless the last check is more recent than the store's
//! `cache_trust`.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

use emr_domain::ids::PatientId;
use lru::LruCache;

use crate::log::AggregateKey;
use crate::store::EmrAggregateContext;

/// A cached aggregate (which knows the data subjects whose PHI it holds).
pub(crate) struct CacheEntry<A> {
    pub(crate) context: EmrAggregateContext<A>,
    /// When the context was last known to be the aggregate's latest state.
    pub(crate) checked_at: Instant,
}

/// A bounded LRU cache of aggregate contexts.
pub struct AggregateCache<A> {
    entries: Mutex<LruCache<AggregateKey, CacheEntry<A>>>,
}

impl<A: Clone> AggregateCache<A> {
    /// A cache holding at most `capacity` aggregates.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self { entries: Mutex::new(LruCache::new(capacity)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<AggregateKey, CacheEntry<A>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, key: &AggregateKey) -> Option<(EmrAggregateContext<A>, Instant)> {
        self.lock().get(key).map(|entry| (entry.context.clone(), entry.checked_at))
    }

    pub(crate) fn contains(&self, key: &AggregateKey) -> bool {
        self.lock().contains(key)
    }

    /// Keeps `context`, known to be the latest state as of now.
    pub(crate) fn put(&self, context: EmrAggregateContext<A>) {
        self.lock().put(context.key().clone(), CacheEntry { context, checked_at: Instant::now() });
    }

    /// Drops one aggregate.
    pub fn evict(&self, key: &AggregateKey) {
        self.lock().pop(key);
    }

    /// Drops every aggregate holding PHI of `subject` (after their erasure).
    pub fn evict_subject(&self, subject: PatientId) {
        let mut entries = self.lock();
        let stale: Vec<AggregateKey> =
            entries.iter().filter(|(_, entry)| entry.context.subjects().contains(&subject)).map(|(key, _)| key.clone()).collect();
        for key in stale {
            entries.pop(&key);
        }
    }

    /// Number of cached aggregates.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
