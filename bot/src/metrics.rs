//! Prometheus text exposition for `/metrics`. Counters and histograms of provider calls and
//! chat deliveries live here, with the delivery loops' own gauges (feed lag, oldest undelivered
//! notice: what this process is behind on); gauges of shared state (requests by state, active
//! grants, scheduler lag) are read from the store when scraped, so every replica reports the
//! same truth.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Process-local counters.
#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    due_runs: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// (platform, destination kind, outcome) → chat calls.
    deliveries: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// (platform, code) → permanent failures.
    refusals: Mutex<BTreeMap<(String, String), u64>>,
    /// feed channel → (events behind, seconds behind).
    feed_lag: Mutex<BTreeMap<String, (u64, f64)>>,
    /// notifier → (notices waiting, age of the oldest in seconds).
    notices: Mutex<BTreeMap<String, (u64, f64)>>,
}

impl Metrics {
    pub fn provider_call(&self, provider: &str, op: &'static str, outcome: &'static str, took: Duration) {
        *self.calls.lock().expect("lock").entry((provider.to_string(), op, outcome)).or_default() += 1;
        let mut lat = self.latency.lock().expect("lock");
        let h = lat.entry((provider.to_string(), op)).or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn due_run(&self, kind: &'static str, outcome: &'static str) {
        *self.due_runs.lock().expect("lock").entry((kind, outcome)).or_default() += 1;
    }

    /// One chat delivery attempt: `outcome` is `ok`, `transient` or `permanent`.
    pub fn delivery(&self, platform: &str, destination: &'static str, outcome: &'static str) {
        *self.deliveries.lock().expect("lock").entry((platform.to_string(), destination, outcome)).or_default() += 1;
    }

    /// A permanent failure with the platform's code.
    pub fn refusal(&self, platform: &str, code: &str) {
        *self.refusals.lock().expect("lock").entry((platform.to_string(), code.to_string())).or_default() += 1;
    }

    /// How far a feed channel is behind the audit log.
    pub fn feed_lag(&self, feed: &str, events: u64, seconds: f64) {
        self.feed_lag.lock().expect("lock").insert(feed.to_string(), (events, seconds));
    }

    /// Notices a notifier has not delivered yet, and how long the oldest has waited.
    pub fn notices_waiting(&self, notifier: &str, waiting: u64, oldest_seconds: f64) {
        self.notices.lock().expect("lock").insert(notifier.to_string(), (waiting, oldest_seconds));
    }

    /// Writes the process-local series.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP elevate_provider_calls_total Provider calls by provider, operation and outcome.");
        let _ = writeln!(out, "# TYPE elevate_provider_calls_total counter");
        for ((p, op, outcome), n) in self.calls.lock().expect("lock").iter() {
            let _ =
                writeln!(out, "elevate_provider_calls_total{{provider=\"{p}\",op=\"{op}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP elevate_provider_call_seconds Provider call latency.");
        let _ = writeln!(out, "# TYPE elevate_provider_call_seconds histogram");
        for ((p, op), h) in self.latency.lock().expect("lock").iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "elevate_provider_call_seconds_bucket{{provider=\"{p}\",op=\"{op}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "elevate_provider_call_seconds_bucket{{provider=\"{p}\",op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "elevate_provider_call_seconds_sum{{provider=\"{p}\",op=\"{op}\"}} {}", h.sum);
            let _ = writeln!(out, "elevate_provider_call_seconds_count{{provider=\"{p}\",op=\"{op}\"}} {}", h.count);
        }
        let _ = writeln!(out, "# HELP elevate_scheduler_runs_total Due items run, by kind and outcome.");
        let _ = writeln!(out, "# TYPE elevate_scheduler_runs_total counter");
        for ((kind, outcome), n) in self.due_runs.lock().expect("lock").iter() {
            let _ = writeln!(out, "elevate_scheduler_runs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ =
            writeln!(out, "# HELP elevate_chat_deliveries_total Chat calls by platform, destination kind and outcome.");
        let _ = writeln!(out, "# TYPE elevate_chat_deliveries_total counter");
        for ((p, d, o), n) in self.deliveries.lock().expect("lock").iter() {
            let _ = writeln!(
                out,
                "elevate_chat_deliveries_total{{platform=\"{p}\",destination=\"{d}\",outcome=\"{o}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP elevate_chat_refusals_total Permanent chat failures by platform and code.");
        let _ = writeln!(out, "# TYPE elevate_chat_refusals_total counter");
        for ((p, code), n) in self.refusals.lock().expect("lock").iter() {
            let _ = writeln!(out, "elevate_chat_refusals_total{{platform=\"{p}\",code=\"{code}\"}} {n}");
        }
        let feed_lag = self.feed_lag.lock().expect("lock");
        let _ = writeln!(out, "# HELP elevate_feed_lag_events Audit events read but not yet posted, per feed channel.");
        let _ = writeln!(out, "# TYPE elevate_feed_lag_events gauge");
        for (f, (events, _)) in feed_lag.iter() {
            let _ = writeln!(out, "elevate_feed_lag_events{{feed=\"{f}\"}} {events}");
        }
        let _ = writeln!(
            out,
            "# HELP elevate_feed_lag_seconds Age of the oldest audit event not yet posted, per feed channel."
        );
        let _ = writeln!(out, "# TYPE elevate_feed_lag_seconds gauge");
        for (f, (_, secs)) in feed_lag.iter() {
            let _ = writeln!(out, "elevate_feed_lag_seconds{{feed=\"{f}\"}} {secs}");
        }
        let notices = self.notices.lock().expect("lock");
        let _ = writeln!(out, "# HELP elevate_notices_waiting Chat notices not yet delivered, per notifier.");
        let _ = writeln!(out, "# TYPE elevate_notices_waiting gauge");
        for (n, (waiting, _)) in notices.iter() {
            let _ = writeln!(out, "elevate_notices_waiting{{notifier=\"{n}\"}} {waiting}");
        }
        let _ = writeln!(
            out,
            "# HELP elevate_notice_oldest_seconds Age of the oldest undelivered chat notice, per notifier."
        );
        let _ = writeln!(out, "# TYPE elevate_notice_oldest_seconds gauge");
        for (n, (_, secs)) in notices.iter() {
            let _ = writeln!(out, "elevate_notice_oldest_seconds{{notifier=\"{n}\"}} {secs}");
        }
    }
}
