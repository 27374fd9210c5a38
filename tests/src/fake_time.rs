//! Time and rate limits for the chat fakes. A fake reads the test's clock (the harness's
//! `ManualClock`, or the wall clock when none is given) plus whatever time a draining test let
//! pass at the fake alone ([`FakeTime::pass`]: the test "waits out" a rate limit without moving
//! the application's clock). Rate limits are token buckets on that time, so a test never sleeps.

use chrono::{DateTime, Utc};
use elevate_core::{Clock, SystemClock};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The fake's notion of now.
#[derive(Clone)]
pub struct FakeTime {
    clock: Arc<Mutex<Arc<dyn Clock>>>,
    passed: Arc<Mutex<Duration>>,
}

impl Default for FakeTime {
    fn default() -> Self {
        FakeTime { clock: Arc::new(Mutex::new(Arc::new(SystemClock))), passed: Arc::default() }
    }
}

impl FakeTime {
    pub fn now(&self) -> DateTime<Utc> {
        let clock = self.clock.lock().unwrap().clone();
        clock.now() + chrono::Duration::from_std(*self.passed.lock().unwrap()).unwrap()
    }

    pub fn use_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.lock().unwrap() = clock;
    }

    /// Lets `by` pass at the fake only.
    pub fn pass(&self, by: Duration) {
        *self.passed.lock().unwrap() += by;
    }
}

/// A token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub burst: f64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Buckets by key (a method, a method and a channel, …).
#[derive(Default)]
pub struct Buckets {
    buckets: BTreeMap<String, Bucket>,
}

impl Buckets {
    /// Takes one call from `key`'s bucket, or says how long until one is available.
    pub fn take(&mut self, key: &str, limit: Limit, now: DateTime<Utc>) -> Result<(), Duration> {
        let b = self.buckets.entry(key.to_string()).or_insert(Bucket { tokens: limit.burst, at: now });
        let elapsed = (now - b.at).num_milliseconds().max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * limit.per_second).min(limit.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / limit.per_second))
        }
    }

    /// Calls left in `key`'s bucket now (for rate-limit headers).
    pub fn remaining(&self, key: &str) -> u64 {
        self.buckets.get(key).map(|b| b.tokens.floor().max(0.0) as u64).unwrap_or(0)
    }
}

/// How a fake is down for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Every call answers a 5xx.
    ServerError,
    /// Every call times out at the platform (Slack's `request_timeout`, Discord's 504).
    Timeout,
}
