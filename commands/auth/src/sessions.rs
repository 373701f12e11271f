//! The session store port: short-lived shared state with expiry — refresh
//! tokens, revoked token families, failed-login counters, used TOTP steps, rate
//! windows. Redis in production ([`emr-redis`]); [`MemorySessionStore`] for the
//! embedded default and a single process.
//!
//! Every operation the authentication flows need to be race-free is one atomic
//! call here: `put_new` (SET NX), `take` (GETDEL) and `increment` (INCR), so two
//! API replicas can never both consume one refresh token or both accept one code.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// The session store failed (unreachable, protocol error).
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct SessionError(pub String);

/// Ephemeral key-value storage with per-key expiry.
pub trait SessionStore: Send + Sync {
    /// Sets `key` to `value` for `ttl`, replacing any value.
    fn put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), SessionError>>;
    /// Sets `key` only when it is absent; true when it was set.
    fn put_new<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, SessionError>>;
    /// The value of `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>>;
    /// Removes `key` and returns its value, atomically.
    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>>;
    /// Adds one to the counter at `key` (starting a `ttl` window when new) and returns the count.
    fn increment<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<u64, SessionError>>;
    /// Removes `key`.
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SessionError>>;
}

/// An in-process session store: correct for one API process, lost on restart
/// (users log in again; nothing else depends on it).
#[derive(Default)]
pub struct MemorySessionStore {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>, Instant) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        // Expired entries go on the way past; bounded by the live key count.
        if entries.len() > 10_000 {
            entries.retain(|_, (_, expires)| *expires > now);
        }
        f(&mut entries, now)
    }
}

fn live(entry: Option<&(String, Instant)>, now: Instant) -> Option<&String> {
    entry.filter(|(_, expires)| *expires > now).map(|(value, _)| value)
}

impl SessionStore for MemorySessionStore {
    fn put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), SessionError>> {
        let result = self.with(|entries, now| {
            entries.insert(key.to_owned(), (value.to_owned(), now + ttl));
        });
        Box::pin(async move { Ok(result) })
    }

    fn put_new<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, SessionError>> {
        let result = self.with(|entries, now| {
            if live(entries.get(key), now).is_some() {
                return false;
            }
            entries.insert(key.to_owned(), (value.to_owned(), now + ttl));
            true
        });
        Box::pin(async move { Ok(result) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>> {
        let result = self.with(|entries, now| live(entries.get(key), now).cloned());
        Box::pin(async move { Ok(result) })
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>> {
        let result = self.with(|entries, now| entries.remove(key).filter(|(_, expires)| *expires > now).map(|(value, _)| value));
        Box::pin(async move { Ok(result) })
    }

    fn increment<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<u64, SessionError>> {
        let result = self.with(|entries, now| {
            let count = live(entries.get(key), now).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0) + 1;
            let expires = entries.get(key).filter(|(_, expires)| *expires > now).map_or(now + ttl, |(_, expires)| *expires);
            entries.insert(key.to_owned(), (count.to_string(), expires));
            count
        });
        Box::pin(async move { Ok(result) })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SessionError>> {
        self.with(|entries, _| entries.remove(key));
        Box::pin(async move { Ok(()) })
    }
}

/// Checks that a [`SessionStore`] keeps the atomic semantics the flows rely on;
/// run by the tests of every adapter.
pub async fn conformance(store: &dyn SessionStore, prefix: &str) -> Result<(), String> {
    let key = |name: &str| format!("{prefix}:{name}");
    let minute = Duration::from_secs(60);
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    let fail = |e: SessionError| e.to_string();
    store.put(&key("a"), "1", minute).await.map_err(fail)?;
    check(store.get(&key("a")).await.map_err(fail)? == Some("1".into()), "get returns what put stored")?;
    check(!store.put_new(&key("a"), "2", minute).await.map_err(fail)?, "put_new refuses a live key")?;
    check(store.put_new(&key("b"), "2", minute).await.map_err(fail)?, "put_new sets an absent key")?;
    check(store.take(&key("b")).await.map_err(fail)? == Some("2".into()), "take returns the value")?;
    check(store.take(&key("b")).await.map_err(fail)?.is_none(), "take removes the value")?;
    check(store.increment(&key("c"), minute).await.map_err(fail)? == 1, "a new counter starts at one")?;
    check(store.increment(&key("c"), minute).await.map_err(fail)? == 2, "counters count")?;
    store.remove(&key("c")).await.map_err(fail)?;
    check(store.get(&key("c")).await.map_err(fail)?.is_none(), "remove removes")?;
    store.put(&key("d"), "x", Duration::from_millis(50)).await.map_err(fail)?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    check(store.get(&key("d")).await.map_err(fail)?.is_none(), "entries expire")?;
    check(store.put_new(&key("d"), "y", minute).await.map_err(fail)?, "an expired key is absent to put_new")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_meets_the_session_store_contract() {
        conformance(&MemorySessionStore::new(), "memory").await.unwrap();
    }
}
