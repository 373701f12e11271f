//! Against the real Redis at `EMR_TEST_REDIS_URL` (default 127.0.0.1:6379).

use emr_redis::RedisSessionStore;

#[tokio::test]
async fn redis_meets_the_session_store_contract() {
    let url = std::env::var("EMR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let namespace = format!("emr-test-{}", std::process::id());
    let store = RedisSessionStore::connect(&url, &namespace).await.expect("redis is reachable (tests/run.sh starts it)");
    emr_auth::conformance(&store, &format!("c{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()))
        .await
        .unwrap();
}
