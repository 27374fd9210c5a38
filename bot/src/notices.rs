//! Per-destination delivery of chat notices (approval cards, DMs): a destination that is slow,
//! rate limited or gone holds up nothing but itself.
//!
//! A notifier's loop reads the audit log from its durable cursor and splits every event into
//! notices, one per destination ([`Notice::key`]: a request's card, a person's DMs, a channel).
//! Each destination has its own in-memory queue, delivered in order by its own task; a
//! transient failure backs that queue off (capped, honouring `Retry-After`) and is retried for
//! as long as it takes, while every other queue goes on. A permanent failure is not retried: it
//! is re-routed where that makes sense (an undeliverable DM is noted beside the card; a deleted
//! card is posted again by the adapter), logged once per destination and code with what to fix,
//! counted, and reported once to the security channel.
//!
//! Why nothing is lost on a crash: the queues are memory, but the cursor is the durable truth.
//! It moves past an event only once every notice made from it (and every notice re-routed from
//! those) is done, so after a restart the loop reads again from the oldest event with unfinished
//! work and rebuilds its notices. Delivery is at least once: a card is re-rendered to the same
//! thing; a DM of an event whose other notices were still waiting can repeat.

use crate::{
    feed::{Mode, Progress, requests_of},
    metrics::Metrics,
};
use chrono::{DateTime, Utc};
use elevate_core::{
    RequestId,
    delivery::{self, DeliveryError, DestKind, Notice},
    ports::{Notifier, Store, StoreError},
    time::Clock,
};
use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::{error, warn};

/// Events with unfinished notices held in memory at most; reading stops there until some are
/// done, so a long outage costs bounded memory (and is caught up from the cursor).
const MAX_OPEN_EVENTS: usize = 5000;
/// Events read from the store at once.
const PAGE: u32 = 200;
/// Destinations delivered to at once: a thousand new cards after a restart do not open a
/// thousand connections; the others start as these finish.
const MAX_IN_FLIGHT: usize = 32;

struct Item {
    seq: i64,
    notice: Notice,
    since: DateTime<Utc>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// A task is delivering this queue.
    busy: bool,
    failures: u32,
    not_before: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The cursor as last written.
    written: i64,
    read_upto: i64,
    /// seq → notices of that event not yet done.
    open: BTreeMap<i64, usize>,
    queues: HashMap<String, Queue>,
    /// (code, message naming the channel or user) pairs already logged and reported: once per
    /// place and cause, not once per request whose card cannot go there.
    reported: HashSet<(String, String)>,
    read_failures: u32,
    read_not_before: Option<DateTime<Utc>>,
}

impl State {
    fn enqueue(&mut self, seq: i64, notice: Notice, now: DateTime<Utc>) {
        *self.open.entry(seq).or_default() += 1;
        self.queues.entry(notice.key.clone()).or_default().items.push_back(Item { seq, notice, since: now });
    }

    fn done(&mut self, seq: i64) {
        if let Some(n) = self.open.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&seq);
            }
        }
    }

    /// How far the cursor may go: just before the oldest event with unfinished notices.
    fn safe_cursor(&self) -> i64 {
        match self.open.keys().next() {
            Some(seq) => seq - 1,
            None => self.read_upto,
        }
    }
}

struct Shared {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    cursor_name: String,
    state: Mutex<State>,
    /// One reader at a time (the loop and a test may both step).
    reader: tokio::sync::Mutex<()>,
    /// Poked when a queue's task finishes, so the loop moves the cursor and goes on.
    poke: Arc<Notify>,
}

/// One notifier's per-destination delivery.
#[derive(Clone)]
pub struct NoticeEngine {
    shared: Arc<Shared>,
}

impl NoticeEngine {
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        poke: Arc<Notify>,
    ) -> Self {
        let cursor_name = format!("feed:{}", notifier.name());
        NoticeEngine {
            shared: Arc::new(Shared {
                store,
                notifier,
                metrics,
                clock,
                cursor_name,
                state: Mutex::new(State::default()),
                reader: tokio::sync::Mutex::new(()),
                poke,
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.shared.notifier.name()
    }

    /// Reads new events into the queues, starts a task for every queue that may be tried now
    /// and moves the cursor. In [`Mode::Background`] the tasks run on and poke the loop when
    /// done; otherwise the step waits for them ([`Mode::Drain`] also ignores backoff).
    pub async fn step(&self, mode: Mode) -> Result<Progress, StoreError> {
        let sh = &self.shared;
        let drain = mode == Mode::Drain;
        if drain {
            sh.notifier.reset_pacing();
        }
        {
            let _reading = sh.reader.lock().await;
            self.read(drain).await?;
        }
        // Outside the loops, a step also delivers what its own deliveries re-routed or
        // reported, so that a test sees the whole of it (but tries a failing queue only once).
        for round in 0.. {
            let now = sh.clock.now();
            let mut tasks: Vec<JoinHandle<()>> = Vec::new();
            {
                let mut st = sh.state.lock().expect("lock");
                let mut in_flight = st.queues.values().filter(|q| q.busy).count();
                for (key, q) in st.queues.iter_mut() {
                    if in_flight >= MAX_IN_FLIGHT {
                        break;
                    }
                    if q.busy || q.items.is_empty() || (!drain && q.not_before.is_some_and(|at| at > now)) {
                        continue;
                    }
                    if round > 0 && q.failures > 0 {
                        continue;
                    }
                    q.busy = true;
                    in_flight += 1;
                    tasks.push(tokio::spawn(work(sh.clone(), key.clone())));
                }
            }
            if mode == Mode::Background || tasks.is_empty() {
                break;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        self.advance().await
    }

    /// Reads events after what was read, up to [`MAX_OPEN_EVENTS`] open ones.
    async fn read(&self, drain: bool) -> Result<(), StoreError> {
        let sh = &self.shared;
        let now = sh.clock.now();
        let loaded = sh.state.lock().expect("lock").loaded;
        if !loaded {
            let c = sh.store.cursor(&sh.cursor_name).await?;
            let mut st = sh.state.lock().expect("lock");
            st.loaded = true;
            st.written = c;
            st.read_upto = c;
        }
        let (mut after, full, waiting) = {
            let st = sh.state.lock().expect("lock");
            let waiting = !drain && st.read_not_before.is_some_and(|at| at > now);
            (st.read_upto, st.open.len() >= MAX_OPEN_EVENTS, waiting)
        };
        if full || waiting {
            return Ok(());
        }
        loop {
            let events = sh.store.events(after, PAGE).await?;
            if events.is_empty() {
                return Ok(());
            }
            let requests = requests_of(sh.store.as_ref(), &events).await?;
            for ev in &events {
                let req = ev.subject.and_then(|id| requests.get(&RequestId(id)));
                match sh.notifier.notices(ev, req).await {
                    Ok(notices) => {
                        let mut st = sh.state.lock().expect("lock");
                        for n in notices {
                            st.enqueue(ev.seq, n, now);
                        }
                        st.read_upto = ev.seq;
                        st.read_failures = 0;
                        after = ev.seq;
                    }
                    Err(e) => {
                        // Reading stops at this event until it can be split (a chat reference
                        // could not be read); later events wait, in order.
                        let mut st = sh.state.lock().expect("lock");
                        st.read_failures += 1;
                        let wait = delivery::backoff(st.read_failures, None);
                        st.read_not_before = Some(now + wait);
                        warn!(notifier = sh.notifier.name(), seq = ev.seq, error = %e, ?wait, "could not read an event's notices; retrying");
                        return Ok(());
                    }
                }
            }
            if events.len() < PAGE as usize || sh.state.lock().expect("lock").open.len() >= MAX_OPEN_EVENTS {
                return Ok(());
            }
        }
    }

    /// Moves the cursor as far as finished work allows, updates the gauges and says when the
    /// next queue may be tried.
    async fn advance(&self) -> Result<Progress, StoreError> {
        let sh = &self.shared;
        let now = sh.clock.now();
        let (target, written, progress, oldest) = {
            let st = sh.state.lock().expect("lock");
            let mut p = Progress::default();
            let mut oldest: Option<DateTime<Utc>> = None;
            for q in st.queues.values() {
                p.waiting += q.items.len();
                if let Some(first) = q.items.front() {
                    oldest = Some(oldest.map_or(first.since, |o| o.min(first.since)));
                    if !q.busy {
                        let at = q.not_before.unwrap_or(now);
                        p.wake = Some(p.wake.map_or(at, |w: DateTime<Utc>| w.min(at)));
                    }
                }
            }
            if let Some(at) = st.read_not_before.filter(|at| *at > now) {
                p.wake = Some(p.wake.map_or(at, |w| w.min(at)));
            }
            (st.safe_cursor(), st.written, p, oldest)
        };
        let age = oldest.map(|o| (now - o).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
        sh.metrics.notices_waiting(sh.notifier.name(), progress.waiting as u64, age);
        if target > written {
            sh.store.set_cursor(&sh.cursor_name, target).await?;
            let mut st = sh.state.lock().expect("lock");
            st.written = st.written.max(target);
            st.queues.retain(|_, q| q.busy || !q.items.is_empty() || q.failures > 0);
        }
        Ok(progress)
    }
}

/// Delivers one destination's queue in order until it is empty or a transient failure backs it
/// off.
async fn work(sh: Arc<Shared>, key: String) {
    let platform = sh.notifier.platform();
    loop {
        let next = {
            let mut st = sh.state.lock().expect("lock");
            let q = st.queues.get_mut(&key).expect("queue of a running task");
            match q.items.front() {
                Some(item) => Some((item.seq, item.notice.clone())),
                None => {
                    q.busy = false;
                    None
                }
            }
        };
        let Some((seq, notice)) = next else { break };
        let result = sh.notifier.deliver(&notice).await;
        let outcome = result.as_ref().map_or_else(|e| e.outcome(), |_| "ok");
        sh.metrics.delivery(platform, notice.kind.as_str(), outcome);
        let now = sh.clock.now();
        let mut st = sh.state.lock().expect("lock");
        match result {
            Ok(()) => {
                let q = st.queues.get_mut(&key).expect("queue");
                q.items.pop_front();
                q.failures = 0;
                q.not_before = None;
                st.done(seq);
            }
            Err(e @ DeliveryError::Transient { .. }) => {
                let q = st.queues.get_mut(&key).expect("queue");
                q.failures += 1;
                let DeliveryError::Transient { retry_after, .. } = &e else { unreachable!() };
                let wait = delivery::backoff(q.failures, *retry_after);
                q.not_before = Some(now + wait);
                q.busy = false;
                if q.failures == 1 || q.failures.is_multiple_of(20) {
                    warn!(notifier = sh.notifier.name(), destination = %key, error = %e, failures = q.failures, ?wait, "chat delivery failed; retrying this destination (others go on)");
                }
                break;
            }
            Err(e) => {
                let q = st.queues.get_mut(&key).expect("queue");
                q.items.pop_front();
                q.failures = 0;
                q.not_before = None;
                // What to deliver instead counts against the same event, so that the cursor
                // waits for it too.
                for n in sh.notifier.reroute(&notice, &e) {
                    st.enqueue(seq, n, now);
                }
                refused(&sh, &mut st, seq, &notice, &e, now);
                st.done(seq);
            }
        }
    }
    sh.poke.notify_one();
}

/// A permanent failure: counted always; logged with what to fix and reported to the security
/// channel once per (destination, code) in this process.
fn refused(sh: &Shared, st: &mut State, seq: i64, notice: &Notice, e: &DeliveryError, now: DateTime<Utc>) {
    let DeliveryError::Permanent { code, message, fix } = e else { return };
    let platform = sh.notifier.platform();
    sh.metrics.refusal(platform, code);
    if !st.reported.insert((code.clone(), message.clone())) {
        return;
    }
    let what = describe(notice);
    let fix = fix.as_deref().unwrap_or("see the platform's error reference");
    error!(platform, destination = %notice.key, code, error = %message, fix, "chat delivery refused; not retrying");
    // A failing report must not report itself again.
    if notice.kind == DestKind::Channel {
        return;
    }
    let text = format!("elevate cannot deliver {what} on {platform}: `{code}`. To fix: {fix}.");
    if let Some(report) = sh.notifier.report(notice, &text) {
        st.enqueue(seq, report, now);
    }
}

/// The destination as a person reads it.
fn describe(n: &Notice) -> String {
    let req = n.request.as_ref().map(|r| r.id.to_string()).unwrap_or_default();
    match &n.part {
        elevate_core::delivery::Part::Card { .. } => format!("the approval card of {req}"),
        elevate_core::delivery::Part::Dm { user } => format!("DMs to {user} (about {req})"),
        elevate_core::delivery::Part::CardNote { .. } => format!("a reply under the card of {req}"),
        elevate_core::delivery::Part::DmText { user, .. } => format!("a reminder DM to {user} (about {req})"),
        elevate_core::delivery::Part::Home { user } => format!("the home view of {user}"),
        elevate_core::delivery::Part::Line { channel, .. } => format!("messages to channel {channel}"),
    }
}
