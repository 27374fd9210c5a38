//! Prometheus metrics for `/metrics`, through the `prometheus` crate's registry and text
//! encoder. Counters and histograms of what this process does (provider calls, scheduler runs,
//! chat deliveries, HTTP requests) live here, with the delivery loops' own gauges (feed lag,
//! oldest undelivered notice); gauges of shared state (requests by state, active grants,
//! scheduler lag) are set from the store when scraped, so every replica reports the same
//! truth. `elevate_build_info` and the process collector (CPU, resident memory, open fds) come
//! with every scrape.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The process's metrics; one per process, shared by everything that records.
pub struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    latency: HistogramVec,
    due_runs: IntCounterVec,
    deliveries: IntCounterVec,
    refusals: IntCounterVec,
    feed_lag_events: IntGaugeVec,
    feed_lag_seconds: GaugeVec,
    notices_waiting: IntGaugeVec,
    notice_oldest: GaugeVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    /// Set from the store at each scrape.
    pub(crate) requests: IntGaugeVec,
    pub(crate) open: IntGaugeVec,
    pub(crate) finished: IntGaugeVec,
    pub(crate) grants_active: prometheus::IntGauge,
    pub(crate) due_items: prometheus::IntGauge,
    pub(crate) lag: prometheus::Gauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn plain_int(r: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    let g = prometheus::IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn plain(r: &Registry, name: &str, help: &str) -> prometheus::Gauge {
    let g = prometheus::Gauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels).expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let build =
            int_gauge(&r, "elevate_build_info", "The running build: version and git commit.", &["version", "commit"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), env!("ELEVATE_GIT_COMMIT")]).set(1);
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        Metrics {
            calls: counter(
                &r,
                "elevate_provider_calls_total",
                "Provider calls by provider, operation and outcome.",
                &["provider", "op", "outcome"],
            ),
            latency: histogram(&r, "elevate_provider_call_seconds", "Provider call latency.", &["provider", "op"]),
            due_runs: counter(
                &r,
                "elevate_scheduler_runs_total",
                "Due items run, by kind and outcome.",
                &["kind", "outcome"],
            ),
            deliveries: counter(
                &r,
                "elevate_chat_deliveries_total",
                "Chat calls by platform, destination kind and outcome.",
                &["platform", "destination", "outcome"],
            ),
            refusals: counter(
                &r,
                "elevate_chat_refusals_total",
                "Permanent chat failures by platform and code.",
                &["platform", "code"],
            ),
            feed_lag_events: int_gauge(
                &r,
                "elevate_feed_lag_events",
                "Audit events read but not yet posted, per feed channel.",
                &["feed"],
            ),
            feed_lag_seconds: gauge(
                &r,
                "elevate_feed_lag_seconds",
                "Age of the oldest audit event not yet posted, per feed channel.",
                &["feed"],
            ),
            notices_waiting: int_gauge(
                &r,
                "elevate_notices_waiting",
                "Chat notices not yet delivered, per notifier.",
                &["notifier"],
            ),
            notice_oldest: gauge(
                &r,
                "elevate_notice_oldest_seconds",
                "Age of the oldest undelivered chat notice, per notifier.",
                &["notifier"],
            ),
            http_requests: counter(
                &r,
                "elevate_http_requests_total",
                "HTTP requests by route, method and status.",
                &["route", "method", "status"],
            ),
            http_seconds: histogram(&r, "elevate_http_request_seconds", "HTTP request latency by route.", &["route"]),
            requests: int_gauge(&r, "elevate_requests", "Requests by state.", &["state"]),
            open: int_gauge(&r, "elevate_requests_open", "Requests not yet ended, by state.", &["state"]),
            finished: int_gauge(
                &r,
                "elevate_requests_finished_total",
                "Ended requests by outcome (from the database: the same on every replica, never decreasing).",
                &["outcome"],
            ),
            grants_active: plain_int(
                &r,
                "elevate_grants_active",
                "Grants that currently give access (active or being revoked).",
            ),
            due_items: plain_int(&r, "elevate_scheduler_due_items", "Due items not yet done."),
            lag: plain(&r, "elevate_scheduler_lag_seconds", "How long the oldest due item has been waiting."),
            registry: r,
        }
    }
}

impl Metrics {
    pub fn provider_call(&self, provider: &str, op: &'static str, outcome: &'static str, took: Duration) {
        self.calls.with_label_values(&[provider, op, outcome]).inc();
        self.latency.with_label_values(&[provider, op]).observe(took.as_secs_f64());
    }

    pub fn due_run(&self, kind: &'static str, outcome: &'static str) {
        self.due_runs.with_label_values(&[kind, outcome]).inc();
    }

    /// One chat delivery attempt: `outcome` is `ok`, `transient` or `permanent`.
    pub fn delivery(&self, platform: &str, destination: &'static str, outcome: &'static str) {
        self.deliveries.with_label_values(&[platform, destination, outcome]).inc();
    }

    /// A permanent failure with the platform's code.
    pub fn refusal(&self, platform: &str, code: &str) {
        self.refusals.with_label_values(&[platform, code]).inc();
    }

    /// How far a feed channel is behind the audit log.
    pub fn feed_lag(&self, feed: &str, events: u64, seconds: f64) {
        self.feed_lag_events.with_label_values(&[feed]).set(events as i64);
        self.feed_lag_seconds.with_label_values(&[feed]).set(seconds);
    }

    /// Notices a notifier has not delivered yet, and how long the oldest has waited.
    pub fn notices_waiting(&self, notifier: &str, waiting: u64, oldest_seconds: f64) {
        self.notices_waiting.with_label_values(&[notifier]).set(waiting as i64);
        self.notice_oldest.with_label_values(&[notifier]).set(oldest_seconds);
    }

    /// One HTTP request: `route` is the matched route pattern (never the path itself, which
    /// may carry ids), so the series stay few.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_seconds.with_label_values(&[route]).observe(took.as_secs_f64());
    }

    /// Every series, in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        out.push_str(&String::from_utf8_lossy(&buf));
    }
}
