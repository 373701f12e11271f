//! Session stores for tests: Redis at `EMR_TEST_REDIS_URL` (tests/run.sh starts
//! one), each test in a namespace of its own.

use std::sync::Arc;

use emr_redis::RedisSessionStore;

/// Sessions in Redis under a fresh namespace starting with `prefix`.
pub async fn redis(prefix: &str) -> Arc<RedisSessionStore> {
    let url = std::env::var("EMR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let namespace = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    Arc::new(RedisSessionStore::connect(&url, &namespace).await.expect("redis is reachable (tests/run.sh starts it)"))
}
