//! The audit feed channels (the audit channel, the security channel, the log): every event's
//! line, in order, exactly once, however long the platform is away.
//!
//! Each channel reads the audit log from its own durable cursor in the store. Lines are packed
//! into messages within the platform's limits ([`FeedChannel::limits`]): one line per message
//! while the channel keeps up, up to 50 lines per message when it catches up after a backlog or
//! a burst, posted no faster than the platform's per-channel rate. The cursor moves past an
//! event only once the message holding its line is posted; a failure (transient or not) never
//! skips an event: it is retried with capped backoff, honouring `Retry-After`, until it posts.
//!
//! What remains of "exactly once": the cursor is written right after the platform confirms the
//! post, so a crash between the two (one database write) posts that one message again after the
//! restart; and a post whose answer was lost (a timeout after the platform had accepted it) is
//! posted again when retried. Discord deduplicates the latter by the message's nonce; Slack has
//! no such key for `chat.postMessage`. A cursor write that fails after a post is kept in memory
//! and retried, so it never causes a repost by itself.

use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use elevate_core::{
    Request, RequestId,
    audit::AuditEvent,
    delivery::{self, BACKOFF_CAP, DeliveryError, FeedLimits},
    ports::{FeedChannel, RequestQuery, Store, StoreError},
    render::feed_line,
    time::Clock,
};
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};
use tracing::{error, info, warn};

/// Events read ahead of the cursor and held in memory at most.
const READ_AHEAD: usize = 2000;
/// Events read from the store at once.
const PAGE: u32 = 500;
/// How often a lagging feed says so in the log.
const LAG_WARNING_EVERY: Duration = Duration::from_secs(300);
/// A feed this far behind is lagging (and says so).
const LAG_WARNING_AFTER: Duration = Duration::from_secs(60);

/// Writes each event as one log line: the audit feed when no chat platform is configured.
pub struct LogFeed;

#[async_trait::async_trait]
impl FeedChannel for LogFeed {
    fn name(&self) -> &str {
        "log"
    }

    fn platform(&self) -> &'static str {
        "log"
    }

    fn limits(&self) -> FeedLimits {
        FeedLimits { max_chars: usize::MAX, max_lines: 1, min_interval: Duration::ZERO }
    }

    fn line(&self, event: &AuditEvent, request: Option<&Request>) -> Option<String> {
        Some(format!("#{} {}: {}", event.seq, event.kind, feed_line(event, request)))
    }

    async fn post(&self, text: &str, _first: i64, _last: i64) -> Result<(), DeliveryError> {
        info!(target: "elevate::audit_feed", "{text}");
        Ok(())
    }
}

/// How a delivery step treats time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The loops: honour backoff and posting rates; deliveries run on in the background.
    Background,
    /// Tests on a virtual clock: honour backoff and posting rates as the clock says, and wait
    /// for the deliveries the step started.
    Paced,
    /// Tests: ignore backoff and posting rates, retry at once, wait for every delivery.
    Drain,
}

/// What a delivery step left: work still waiting, and when it can next be tried (`None`: as
/// soon as there is new work).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    pub waiting: usize,
    pub wake: Option<DateTime<Utc>>,
}

impl Progress {
    pub fn merge(self, other: Progress) -> Progress {
        let wake = match (self.wake, other.wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Progress { waiting: self.waiting + other.waiting, wake }
    }
}

/// An event read but not yet posted.
struct Pending {
    seq: i64,
    at: DateTime<Utc>,
    /// `None`: the channel does not show this event.
    line: Option<String>,
}

/// One feed channel's delivery state.
pub struct FeedEngine {
    store: Arc<dyn Store>,
    channel: Arc<dyn FeedChannel>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    cursor_name: String,
    /// The position all events up to which are posted (`None` until read from the store).
    posted: Option<i64>,
    /// The position last written to the store.
    written: i64,
    backlog: VecDeque<Pending>,
    read_upto: i64,
    failures: u32,
    not_before: Option<DateTime<Utc>>,
    warned_at: Option<DateTime<Utc>>,
    /// Permanent failure codes already logged.
    reported: HashSet<String>,
}

impl FeedEngine {
    pub fn new(
        store: Arc<dyn Store>,
        channel: Arc<dyn FeedChannel>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let cursor_name = format!("feed:{}", channel.name());
        FeedEngine {
            store,
            channel,
            metrics,
            clock,
            cursor_name,
            posted: None,
            written: 0,
            backlog: VecDeque::new(),
            read_upto: 0,
            failures: 0,
            not_before: None,
            warned_at: None,
            reported: HashSet::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.channel.name()
    }

    /// Reads new events and posts what the platform's rate allows now: one message, or in
    /// [`Mode::Drain`] every message it can, ignoring backoff and pacing.
    pub async fn step(&mut self, mode: Mode) -> Result<Progress, StoreError> {
        let drain = mode == Mode::Drain;
        let posted = match self.posted {
            Some(p) => p,
            None => {
                let p = self.store.cursor(&self.cursor_name).await?;
                self.posted = Some(p);
                self.written = p;
                self.read_upto = p;
                p
            }
        };
        if self.written < posted {
            self.store.set_cursor(&self.cursor_name, posted).await?;
            self.written = posted;
        }
        self.read().await?;
        loop {
            let now = self.clock.now();
            self.gauge(now);
            if self.backlog.is_empty() {
                return Ok(Progress::default());
            }
            if !drain && let Some(at) = self.not_before.filter(|at| *at > now) {
                return Ok(Progress { waiting: self.backlog.len(), wake: Some(at) });
            }
            let ok = self.post_next(now).await?;
            self.gauge(self.clock.now());
            if !drain || !ok {
                let wait = if drain { None } else { self.not_before };
                return Ok(Progress { waiting: self.backlog.len(), wake: wait });
            }
            self.read().await?;
        }
    }

    /// Fills the backlog from the store, up to [`READ_AHEAD`] events.
    async fn read(&mut self) -> Result<(), StoreError> {
        while self.backlog.len() < READ_AHEAD {
            let events = self.store.events(self.read_upto, PAGE).await?;
            let Some(last) = events.last() else { break };
            self.read_upto = last.seq;
            let requests = requests_of(self.store.as_ref(), &events).await?;
            for ev in &events {
                let req = ev.subject.and_then(|id| requests.get(&RequestId(id)));
                self.backlog.push_back(Pending { seq: ev.seq, at: ev.at, line: self.channel.line(ev, req) });
            }
            if events.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// Posts the next message (or passes events the channel does not show); true if the
    /// cursor moved.
    async fn post_next(&mut self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let limits = self.channel.limits();
        // The lines of the next message: the first `max_lines` shown lines, packed.
        let mut lines = Vec::new();
        let mut index = Vec::new();
        for (i, p) in self.backlog.iter().enumerate() {
            if let Some(l) = &p.line {
                if lines.len() == limits.max_lines {
                    break;
                }
                lines.push(l.clone());
                index.push(i);
            }
        }
        let packed = delivery::pack_lines(&lines, limits).into_iter().next();
        let posting = packed.is_some();
        let (covered, result) = match packed {
            None => (self.backlog.len(), Ok(())),
            Some((text, n)) => {
                let covered = index[n - 1] + 1;
                let first = self.backlog[index[0]].seq;
                let last = self.backlog[covered - 1].seq;
                let result = self.channel.post(&text, first, last).await;
                self.metrics.delivery(
                    self.channel.platform(),
                    "channel",
                    result.as_ref().map_or_else(|e| e.outcome(), |_| "ok"),
                );
                (covered, result)
            }
        };
        match result {
            Ok(()) => {
                let last = self.backlog[covered - 1].seq;
                self.backlog.drain(..covered);
                self.posted = Some(last);
                self.failures = 0;
                if posting {
                    self.not_before = Some(now + limits.min_interval);
                }
                // Written at once: the window in which a crash would post this message again.
                self.store.set_cursor(&self.cursor_name, last).await?;
                self.written = last;
                Ok(true)
            }
            Err(e) => {
                self.failures += 1;
                let wait = match &e {
                    DeliveryError::Transient { retry_after, .. } => delivery::backoff(self.failures, *retry_after),
                    DeliveryError::Permanent { .. } => BACKOFF_CAP,
                };
                self.not_before = Some(now + wait);
                self.log_failure(&e, wait);
                Ok(false)
            }
        }
    }

    fn log_failure(&mut self, e: &DeliveryError, wait: Duration) {
        let feed = self.channel.name();
        match e {
            DeliveryError::Permanent { code, fix, .. } => {
                self.metrics.refusal(self.channel.platform(), code);
                if self.reported.insert(code.clone()) {
                    error!(
                        feed,
                        error = %e,
                        fix = fix.as_deref().unwrap_or(""),
                        "the audit feed channel refuses messages; nothing is skipped, retrying until it accepts them"
                    );
                }
            }
            DeliveryError::Transient { .. } if self.failures == 1 || self.failures.is_multiple_of(20) => {
                warn!(feed, error = %e, failures = self.failures, ?wait, "audit feed post failed; retrying");
            }
            DeliveryError::Transient { .. } => {}
        }
    }

    /// The lag gauges, and a warning (at most every few minutes) while the feed lags.
    fn gauge(&mut self, now: DateTime<Utc>) {
        let behind = self.backlog.iter().find(|p| p.line.is_some()).map(|p| now - p.at);
        let secs = behind.map(|d| d.num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
        self.metrics.feed_lag(self.channel.name(), self.backlog.len() as u64, secs);
        if secs >= LAG_WARNING_AFTER.as_secs_f64()
            && self.warned_at.is_none_or(|w| (now - w).to_std().unwrap_or_default() >= LAG_WARNING_EVERY)
        {
            self.warned_at = Some(now);
            warn!(
                feed = self.channel.name(),
                events = self.backlog.len(),
                seconds = secs,
                "the audit feed is behind; every event will still be posted"
            );
        }
    }
}

/// The requests that a page of events is about, in one read rather than one per event: under
/// load every delivery loop reads every event.
pub(crate) async fn requests_of(
    store: &dyn Store,
    events: &[AuditEvent],
) -> Result<HashMap<RequestId, Request>, StoreError> {
    let mut ids: Vec<RequestId> = events.iter().filter_map(|e| e.subject.map(RequestId)).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = RequestQuery { limit: Some(ids.len() as u32), ids, ..RequestQuery::default() };
    Ok(store.list_requests(&q).await?.into_iter().map(|r| (r.id, r)).collect())
}
