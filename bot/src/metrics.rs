//! Prometheus text exposition for `/metrics`. Counters and histograms of provider calls live
//! here; gauges (requests by state, active grants, scheduler lag) are read from the store when
//! scraped, so every replica reports the same truth.

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
    }
}
