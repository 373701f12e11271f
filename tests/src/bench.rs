//! Measuring workloads for the benchmark binaries: a fixed number of operations
//! at a fixed concurrency, with throughput and latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Throughput and latency of one measured workload.
pub struct Rate {
    /// Operations per second.
    pub per_second: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// The rate of `count` operations in `elapsed`, with their latencies.
pub fn rate(count: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> Rate {
    latencies.sort();
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Rate { per_second: count as f64 / elapsed.as_secs_f64(), p50_ms: pick(0.50), p99_ms: pick(0.99) }
}

/// Runs `count` operations with `concurrency` in flight and measures them.
pub async fn drive<F, Fut>(count: usize, concurrency: usize, operation: F) -> Rate
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (operation, next) = (operation.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                let t = Instant::now();
                operation(i).await;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    rate(count, started.elapsed(), latencies)
}

/// Makes a benchmark binary run on the allocator the `emr` binary ships with, so
/// it measures what ships: the command path allocates many small JSON values,
/// where glibc's malloc and free took about a seventh of the machine (perf,
/// bench-core). Only benchmarks: the fuzz tests keep their capped allocator.
#[macro_export]
macro_rules! shipped_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::mimalloc::MiMalloc = $crate::mimalloc::MiMalloc;
    };
}
