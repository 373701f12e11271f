//! The session store on Redis: every operation is one atomic Redis command
//! (`SET PX`, `SET NX PX`, `GET`, `GETDEL`, `INCR` + `PEXPIRE NX` in one
//! transaction, `DEL`), so API replicas sharing one Redis never race.

use std::time::Duration;

use emr_auth::{SessionError, SessionStore};
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Sessions in Redis, through a reconnecting connection manager.
#[derive(Clone)]
pub struct RedisSessionStore {
    connection: ConnectionManager,
    namespace: String,
}

fn failed(error: redis::RedisError) -> SessionError {
    SessionError(error.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisSessionStore {
    /// Connects to `url` (`redis://127.0.0.1:6379`); every key is prefixed with
    /// `namespace:` so several deployments (or tests) can share a server.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, SessionError> {
        let client = redis::Client::open(url).map_err(failed)?;
        let connection = ConnectionManager::new(client).await.map_err(failed)?;
        Ok(Self { connection, namespace: namespace.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

impl SessionStore for RedisSessionStore {
    fn put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut connection)
                .await
                .map_err(failed)
        })
    }

    fn put_new<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(set.is_some())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection.get(self.key(key)).await.map_err(failed)
        })
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("GETDEL").arg(self.key(key)).query_async(&mut connection).await.map_err(failed)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<u64, SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let key = self.key(key);
            let (count,): (u64,) = redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg(&key)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(ttl))
                .arg("NX")
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(count)
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection.del::<_, ()>(self.key(key)).await.map_err(failed)
        })
    }
}
