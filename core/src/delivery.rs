//! Platform-neutral delivery: what a chat notice is, where it goes, how a failure is classified,
//! how long to wait before trying again, and how feed lines are packed into messages.
//!
//! An audit event becomes one [`Notice`] per destination (an approval card, one person's DMs, a
//! channel). Each destination has its own queue in the bot's delivery loop, so a destination
//! that is slow, rate limited or gone holds up nothing but itself. Adapters classify every
//! failure from the platform's documented error codes into a [`DeliveryError`]: a transient
//! one is retried with capped backoff (honouring `Retry-After`) for as long as it takes; a
//! permanent one is never retried, only re-routed where that makes sense, logged once with what
//! to fix, counted and reported.

use crate::{RequestId, audit::AuditEvent, request::Request};
use chrono::{DateTime, Utc};
use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Why a chat call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: 429 (with the platform's `Retry-After`, when it gave one), 5xx,
    /// timeouts, connection errors.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying will not help: the platform's considered "no" (`code` is its own:
    /// `not_in_channel`, `10008`). `fix` says what a person must do about it, when we know.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String, fix: Option<String> },
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError::Transient { message: message.into(), retry_after: None }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        DeliveryError::Permanent { code: code.into(), message: message.into(), fix: None }
    }

    /// The same error with advice for whoever runs the bot (permanent errors only).
    pub fn with_fix(self, advice: impl Into<String>) -> Self {
        match self {
            DeliveryError::Permanent { code, message, .. } => {
                DeliveryError::Permanent { code, message, fix: Some(advice.into()) }
            }
            t => t,
        }
    }

    /// The same error naming where it happened (`in channel C123`), with "the channel" in its
    /// advice replaced by `channel`, so that a log line or a report says exactly what to fix.
    pub fn at(self, place: &str, channel: &str) -> Self {
        match self {
            DeliveryError::Permanent { code, message, fix } => DeliveryError::Permanent {
                code,
                message: format!("{message} ({place})"),
                fix: fix.map(|f| f.replace("the channel", &format!("channel {channel}"))),
            },
            DeliveryError::Transient { message, retry_after } => {
                DeliveryError::Transient { message: format!("{message} ({place})"), retry_after }
            }
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent { .. })
    }

    /// The platform's code of a permanent error.
    pub fn code(&self) -> Option<&str> {
        match self {
            DeliveryError::Permanent { code, .. } => Some(code),
            DeliveryError::Transient { .. } => None,
        }
    }

    /// `ok` / `transient` / `permanent`, the outcome label of the delivery metrics.
    pub fn outcome(&self) -> &'static str {
        if self.is_permanent() { "permanent" } else { "transient" }
    }
}

/// For callers that only log or show the failure (ingress follow-ups).
impl From<DeliveryError> for String {
    fn from(e: DeliveryError) -> String {
        e.to_string()
    }
}

/// What kind of destination a notice goes to (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestKind {
    Card,
    Dm,
    Channel,
    /// A person's home view (Slack's App Home tab).
    Home,
}

impl DestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestKind::Card => "card",
            DestKind::Dm => "dm",
            DestKind::Channel => "channel",
            DestKind::Home => "home",
        }
    }
}

/// What to do at the destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Post (on `created`) or re-render the request's approval card.
    Card { created: bool },
    /// DM this chat user the event's line for the requester.
    Dm { user: String },
    /// A reply in the thread of the request's approval card: the request's later events, and
    /// notes such as that its requester cannot be DMed, so the people watching the card learn
    /// them.
    CardNote { text: String },
    /// DM this chat user `text` (an approver reminded of a request waiting for them).
    DmText { user: String, text: String },
    /// Publish this chat user's home view again, as things stand at delivery time.
    Home { user: String },
    /// A line in a channel (the security channel's delivery-failure reports).
    Line { channel: String, text: String },
}

/// One piece of work for one destination, made from one audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The destination: notices with the same key are delivered in order, one at a time;
    /// notices with different keys never wait for each other.
    pub key: String,
    pub kind: DestKind,
    pub event: AuditEvent,
    pub request: Option<Request>,
    pub part: Part,
}

impl Notice {
    /// The approval card of `req`, keyed by the request that owns the card (for a role of a
    /// request of several roles, the first role's: one card, one queue, in order).
    pub fn card(event: &AuditEvent, req: &Request, created: bool) -> Notice {
        Notice {
            key: card_key(req.card_id()),
            kind: DestKind::Card,
            event: event.clone(),
            request: Some(req.clone()),
            part: Part::Card { created },
        }
    }

    /// A DM to chat user `user`, keyed by the user.
    pub fn dm(event: &AuditEvent, req: &Request, user: &str) -> Notice {
        Notice {
            key: format!("dm:{user}"),
            kind: DestKind::Dm,
            event: event.clone(),
            request: Some(req.clone()),
            part: Part::Dm { user: user.to_string() },
        }
    }

    /// A reply under the card of `req` (same destination as the card, so after its update).
    pub fn thread(event: &AuditEvent, req: &Request, text: impl Into<String>) -> Notice {
        Notice {
            key: card_key(req.card_id()),
            kind: DestKind::Card,
            event: event.clone(),
            request: Some(req.clone()),
            part: Part::CardNote { text: text.into() },
        }
    }

    /// Refreshes chat user `user`'s home view, keyed by the user's home.
    pub fn home(event: &AuditEvent, req: Option<&Request>, user: &str) -> Notice {
        Notice {
            key: format!("home:{user}"),
            kind: DestKind::Home,
            event: event.clone(),
            request: req.cloned(),
            part: Part::Home { user: user.to_string() },
        }
    }

    /// A DM of `text` to chat user `user`, keyed by the user.
    pub fn dm_text(event: &AuditEvent, req: &Request, user: &str, text: impl Into<String>) -> Notice {
        Notice {
            key: format!("dm:{user}"),
            kind: DestKind::Dm,
            event: event.clone(),
            request: Some(req.clone()),
            part: Part::DmText { user: user.to_string(), text: text.into() },
        }
    }

    /// A note beside the card of this notice's request (same destination as the card).
    pub fn card_note(&self, text: impl Into<String>) -> Option<Notice> {
        let req = self.request.as_ref()?;
        Some(Notice {
            key: card_key(req.card_id()),
            kind: DestKind::Card,
            event: self.event.clone(),
            request: self.request.clone(),
            part: Part::CardNote { text: text.into() },
        })
    }

    /// A line in `channel`, keyed by the channel.
    pub fn line(event: &AuditEvent, channel: &str, text: impl Into<String>) -> Notice {
        Notice {
            key: format!("channel:{channel}"),
            kind: DestKind::Channel,
            event: event.clone(),
            request: None,
            part: Part::Line { channel: channel.to_string(), text: text.into() },
        }
    }
}

fn card_key(id: RequestId) -> String {
    format!("card:{}", id.0)
}

/// The first wait after a transient failure without `Retry-After`.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest wait between two attempts at one destination: an outage of any length is
/// retried at least this often, so delivery resumes within this long of the platform's return.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How long to wait before attempt `failures + 1` at a destination: the platform's
/// `Retry-After` when it gave one (a 429 says exactly when to come back; waiting less earns
/// another 429), else doubling from [`BACKOFF_START`], never more than [`BACKOFF_CAP`].
pub fn backoff(failures: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(BACKOFF_CAP * 10);
    }
    let doubled = BACKOFF_START.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(BACKOFF_CAP)
}

/// A platform rate limit as a token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

/// Client-side pacing of calls that share one platform limit (Slack: one post per second per
/// channel). Each destination backs off on its own, so without this a hundred cards for one
/// channel would each wait out the same 429 and come back together, a herd the platform
/// answers with another hundred 429s. With it, a call over the limit fails at once, locally,
/// as transient with a turn of its own: turns are handed out one interval apart, so waiting
/// destinations come back one by one rather than all at once, and the platform sees no more
/// than its rate. A 429 it answers anyway holds the whole limit for its `Retry-After`.
#[derive(Debug, Default)]
pub struct Pacer {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
    /// The next turn to hand out to a call that finds the bucket empty.
    next_turn: DateTime<Utc>,
}

impl Pacer {
    /// Takes a call from `key`'s bucket at `now`, or fails with when its turn comes.
    pub fn take(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: rate.burst, at: now, next_turn: now });
        if now >= b.at {
            let elapsed = (now - b.at).num_milliseconds() as f64 / 1000.0;
            b.tokens = (b.tokens + elapsed * rate.per_second).min(rate.burst);
            b.at = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Ok(());
            }
        }
        let interval = chrono::Duration::milliseconds((1000.0 / rate.per_second).ceil() as i64);
        let refill = chrono::Duration::milliseconds((((1.0 - b.tokens) / rate.per_second) * 1000.0).ceil() as i64);
        let turn = b.next_turn.max(b.at.max(now) + refill);
        b.next_turn = turn + interval;
        let wait = (turn - now).to_std().unwrap_or_default();
        Err(DeliveryError::Transient { message: format!("{key}: paced"), retry_after: Some(wait) })
    }

    /// Forgets every limit (tests that drain delivery without moving their clock).
    pub fn clear(&self) {
        self.buckets.lock().expect("pacer lock").clear();
    }

    /// After a 429 for `key`: nothing more until `until`.
    pub fn hold(&self, key: &str, until: DateTime<Utc>) {
        let mut buckets = self.buckets.lock().expect("pacer lock");
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: 0.0, at: until, next_turn: until });
        b.tokens = 0.0;
        b.at = b.at.max(until);
        b.next_turn = b.next_turn.max(until);
    }
}

/// How a platform's messages may be filled with feed lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLimits {
    /// Characters per message (Unicode scalar values, as both platforms count).
    pub max_chars: usize,
    /// Lines per message, for readability.
    pub max_lines: usize,
    /// The shortest gap between two posts to the channel (the platform's posting rate).
    pub min_interval: Duration,
}

/// Packs consecutive lines into as few messages as `limits` allow, in order; returns each
/// message with how many lines it holds. A line longer than `max_chars` is cut (with `…`) so
/// that it can never make a message the platform refuses.
pub fn pack_lines(lines: &[String], limits: FeedLimits) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut text = String::new();
    let (mut chars, mut n) = (0usize, 0usize);
    for line in lines {
        let line = clip(line, limits.max_chars);
        let len = line.chars().count();
        if n > 0 && (n >= limits.max_lines || chars + 1 + len > limits.max_chars) {
            out.push((std::mem::take(&mut text), n));
            chars = 0;
            n = 0;
        }
        if n > 0 {
            text.push('\n');
            chars += 1;
        }
        text.push_str(&line);
        chars += len;
        n += 1;
    }
    if n > 0 {
        out.push((text, n));
    }
    out
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FeedLimits = FeedLimits { max_chars: 20, max_lines: 3, min_interval: Duration::ZERO };

    #[test]
    fn lines_are_packed_in_order_within_both_limits() {
        let lines: Vec<String> = ["aaaa", "bbbb", "cccc", "dddd", "eeeeeeeeeeeeeeee", "f"].map(String::from).to_vec();
        let packed = pack_lines(&lines, LIMITS);
        assert_eq!(
            packed,
            vec![("aaaa\nbbbb\ncccc".to_string(), 3), ("dddd".to_string(), 1), ("eeeeeeeeeeeeeeee\nf".to_string(), 2)]
        );
        assert_eq!(packed.iter().map(|p| p.1).sum::<usize>(), lines.len(), "every line once");
    }

    #[test]
    fn an_overlong_line_is_cut_not_refused() {
        let packed = pack_lines(&["x".repeat(50)], LIMITS);
        assert_eq!(packed[0].0.chars().count(), 20);
        assert!(packed[0].0.ends_with('…'));
    }

    #[test]
    fn a_pacer_lets_a_burst_through_then_hands_out_turns_one_interval_apart() {
        let pacer = Pacer::default();
        let rate = Rate { burst: 2.0, per_second: 1.0 };
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let wait = |r: Result<(), DeliveryError>| match r {
            Err(DeliveryError::Transient { retry_after: Some(w), .. }) => w,
            other => panic!("expected a turn, got {other:?}"),
        };
        assert!(pacer.take("c", rate, t0).is_ok() && pacer.take("c", rate, t0).is_ok());
        assert_eq!(wait(pacer.take("c", rate, t0)), Duration::from_secs(1), "the first waiter's turn");
        assert_eq!(wait(pacer.take("c", rate, t0)), Duration::from_secs(2), "the next one's, not the same");
        assert!(pacer.take("other", rate, t0).is_ok(), "another limit is not affected");
        assert!(pacer.take("c", rate, at(1)).is_ok(), "at its turn, a call goes");
        pacer.hold("c", at(30));
        assert!(pacer.take("c", rate, at(29)).is_err(), "a 429 holds the limit");
        assert!(pacer.take("c", rate, at(31)).is_ok());
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_honours_retry_after() {
        assert_eq!(backoff(1, None), Duration::from_millis(500));
        assert_eq!(backoff(2, None), Duration::from_secs(1));
        assert_eq!(backoff(4, None), Duration::from_secs(4));
        assert_eq!(backoff(40, None), BACKOFF_CAP);
        assert_eq!(backoff(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
    }
}
