//! Load at a fixed rate (open loop: request `i` is due at `start + i / rate` whether or not the
//! earlier ones have answered, and its latency counts from when it was due, so a stalled server
//! cannot hide its stall by slowing the client down), and latency percentiles.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;

/// Latencies of the answered requests, and what went wrong with the others.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// The first failure, to show.
    pub first_failure: Option<String>,
    pub latencies: Vec<Duration>,
    /// How long sending took (≈ the planned duration unless the client fell behind).
    pub elapsed: Duration,
}

impl Outcome {
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }
}

/// The `p`-th percentile (0–100) by nearest rank.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Sends `rate` requests per second for `duration`; `send(i)` makes request `i` and says
/// whether the answer was right (`Err` carries why not).
pub async fn open_loop<F, Fut>(rate: u32, duration: Duration, send: F) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let out = Arc::new(Mutex::new(Outcome::default()));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due).await;
        let fut = send(i);
        let out = out.clone();
        tasks.spawn(async move {
            let result = fut.await;
            let latency = due.elapsed();
            let mut o = out.lock().unwrap();
            o.sent += 1;
            match result {
                Ok(()) => {
                    o.ok += 1;
                    o.latencies.push(latency);
                }
                Err(e) => {
                    o.failed += 1;
                    o.first_failure.get_or_insert(e);
                }
            }
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let elapsed = start.elapsed();
    while tasks.join_next().await.is_some() {}
    let mut o = out.lock().unwrap().clone();
    o.elapsed = elapsed;
    o
}

/// Runs `work(i)` for `i` in `0..n` with `workers` in flight at once; returns how long it took.
pub async fn closed_loop<F, Fut>(n: usize, workers: usize, work: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let work = Arc::new(work);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (next, work) = (next.clone(), work.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                work(i).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}
