//! The job-queue ports, one specification run against JetStream (a real
//! nats-server: a work-queue stream, a durable consumer, a KV bucket) and the
//! in-memory queue of the embedded deployment.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use emr_eventstore::{LogError, MemoryStatusBoard, MemoryWorkQueue, StatusBoard, WorkQueue};
use emr_nats::{JetStreamJobs, JobQueueConfig};
use emr_tests::nats_server::NatsServer;

struct Jobs {
    queue: Arc<dyn WorkQueue>,
    board: Arc<dyn StatusBoard>,
    _server: Option<NatsServer>,
}

async fn jetstream(ack_wait: Duration) -> Jobs {
    let server = NatsServer::start();
    let config = JobQueueConfig { ack_wait, ..JobQueueConfig::new("test") };
    let jobs = JetStreamJobs::connect(&server.url(), Duration::from_secs(5), &config).await.unwrap();
    Jobs { queue: Arc::new(jobs.queue), board: Arc::new(jobs.board), _server: Some(server) }
}

fn memory() -> Jobs {
    Jobs { queue: Arc::new(MemoryWorkQueue::new()), board: Arc::new(MemoryStatusBoard::new()), _server: None }
}

const WAIT: Duration = Duration::from_secs(2);

async fn each_job_is_delivered_once_and_a_repeated_submission_adds_nothing(jobs: Jobs) {
    for id in ["a", "b", "a"] {
        jobs.queue.submit(id, id.as_bytes().to_vec()).await.unwrap();
    }
    let first = jobs.queue.next(WAIT).await.unwrap().unwrap();
    let second = jobs.queue.next(WAIT).await.unwrap().unwrap();
    assert_eq!((first.job_id.as_str(), first.payload.as_slice(), first.attempt), ("a", &b"a"[..], 1));
    assert_eq!(second.job_id, "b");
    first.done().await.unwrap();
    second.done().await.unwrap();
    assert!(jobs.queue.next(Duration::from_millis(300)).await.unwrap().is_none(), "nothing else is queued");
}

async fn a_job_put_back_comes_again_with_its_attempt_counted(jobs: Jobs) {
    jobs.queue.submit("j", b"payload".to_vec()).await.unwrap();
    let first = jobs.queue.next(WAIT).await.unwrap().unwrap();
    first.retry_after(Duration::from_millis(100)).await.unwrap();
    let again = jobs.queue.next(WAIT).await.unwrap().unwrap();
    assert_eq!((again.job_id.as_str(), again.attempt), ("j", 2));
    again.done().await.unwrap();
}

async fn of_two_writers_with_the_same_revision_exactly_one_wins(jobs: Jobs) {
    let created = jobs.board.put("job", b"queued".to_vec(), 0).await.unwrap();
    assert!(matches!(jobs.board.put("job", b"again".to_vec(), 0).await, Err(LogError::Conflict { .. })), "created once");
    let (a, b) = tokio::join!(jobs.board.put("job", b"running".to_vec(), created), jobs.board.put("job", b"cancelled".to_vec(), created));
    assert!(a.is_ok() != b.is_ok(), "exactly one of two writers wins: {a:?} {b:?}");
    let (value, revision) = jobs.board.get("job").await.unwrap().unwrap();
    assert_eq!(revision, a.or(b).unwrap());
    assert!(value == b"running" || value == b"cancelled");
    assert!(jobs.board.get("other").await.unwrap().is_none());
}

macro_rules! on_both {
    ($($check:ident),+ $(,)?) => {
        mod on_jetstream {
            $(#[tokio::test]
            async fn $check() {
                super::$check(super::jetstream(std::time::Duration::from_secs(30)).await).await;
            })+
        }
        mod in_memory {
            $(#[tokio::test]
            async fn $check() {
                super::$check(super::memory()).await;
            })+
        }
    };
}

on_both!(
    each_job_is_delivered_once_and_a_repeated_submission_adds_nothing,
    a_job_put_back_comes_again_with_its_attempt_counted,
    of_two_writers_with_the_same_revision_exactly_one_wins,
);

/// A worker that dies holding a job (here: drops it unsettled) leaves it to
/// another once the acknowledgement wait runs out; one that says it is still
/// working keeps it.
#[tokio::test]
async fn on_jetstream_a_job_whose_worker_died_is_delivered_again_and_a_busy_worker_keeps_its_job() {
    let jobs = jetstream(Duration::from_secs(1)).await;
    jobs.queue.submit("busy", b"1".to_vec()).await.unwrap();
    jobs.queue.submit("orphan", b"2".to_vec()).await.unwrap();
    let busy = jobs.queue.next(WAIT).await.unwrap().unwrap();
    let orphan = jobs.queue.next(WAIT).await.unwrap().unwrap();
    assert_eq!((busy.job_id.as_str(), orphan.job_id.as_str()), ("busy", "orphan"));
    drop(orphan);
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.in_progress().await.unwrap();
    }
    let again = jobs.queue.next(WAIT).await.unwrap().unwrap();
    assert_eq!((again.job_id.as_str(), again.attempt), ("orphan", 2), "only the dead worker's job comes back");
    again.done().await.unwrap();
    busy.done().await.unwrap();
    assert!(jobs.queue.next(Duration::from_millis(1500)).await.unwrap().is_none(), "finished jobs are gone");
}
