//! Port traits: what core needs from the outside world. Adapters implement them.

use crate::{
    EndReason, PersonId, RequestId, RoleName, State, UserError,
    audit::{AuditEvent, NewEvent},
    delivery::{DeliveryError, FeedLimits, Notice},
    request::{NewRequest, Request},
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::{collections::BTreeMap, fmt, time::Duration};

/// A store failure: the database is unreachable, a constraint failed unexpectedly. Never shown
/// to users verbatim.
///
/// An *unavailable* store (the database is down, unreachable or out of connections) is told
/// apart from other failures because the person can do something about it: nothing was
/// changed, and the same command works again once the database is back. Adapters answer it
/// with [`crate::error::UNAVAILABLE`] (HTTP 503 with `Retry-After`, an ephemeral chat message)
/// instead of an internal error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    unavailable: bool,
}

impl StoreError {
    pub fn new(e: impl fmt::Display) -> Self {
        StoreError { message: e.to_string(), unavailable: false }
    }
    /// The database cannot be reached; `e` says why, for the log.
    pub fn unavailable(e: impl fmt::Display) -> Self {
        StoreError { message: e.to_string(), unavailable: true }
    }
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// Kinds of durable work. Each is a row with a due time; the scheduler claims due rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DueKind {
    /// Call the provider to apply an approved grant.
    Apply,
    /// The grant's time is up: start revoking.
    Expire,
    /// Call the provider to remove a grant that is `Revoking`; retried until it succeeds.
    Revoke,
    /// Remove whatever the provider may hold for a grant that failed or was undone; no state
    /// change, retried until it succeeds.
    Cleanup,
    /// Re-apply an active grant whose window changed (extension), so that providers that
    /// enforce the window themselves learn the new end.
    Refresh,
    /// Nobody decided in time.
    PendingTimeout,
    /// Nudge the approvers of a pending request.
    Reminder,
    /// Tell the requester their grant ends soon.
    ExpiryWarning,
    /// Open the request to the role's escalation approvers.
    Escalate,
    /// Remind the security team of an open break-glass review.
    ReviewReminder,
    /// A scheduled request's start: check it again against the policy of that moment, then
    /// approve and apply it, or refuse it.
    Start,
    /// A scheduled request's approval expires unused (its start is further away than
    /// `scheduled_approval_ttl` from the approval).
    ApprovalExpiry,
    /// A role of a request of several roles was decided: see whether the others may now be
    /// applied (all approved) or must end too (one refused). Queued with the decision, in its
    /// transaction, so a crash cannot leave the rest waiting.
    BatchCheck,
}

impl DueKind {
    pub const ALL: [DueKind; 13] = [
        DueKind::Apply,
        DueKind::Expire,
        DueKind::Revoke,
        DueKind::Cleanup,
        DueKind::Refresh,
        DueKind::PendingTimeout,
        DueKind::Reminder,
        DueKind::ExpiryWarning,
        DueKind::Escalate,
        DueKind::ReviewReminder,
        DueKind::BatchCheck,
        DueKind::Start,
        DueKind::ApprovalExpiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DueKind::Apply => "apply",
            DueKind::Expire => "expire",
            DueKind::Revoke => "revoke",
            DueKind::Cleanup => "cleanup",
            DueKind::Refresh => "refresh",
            DueKind::PendingTimeout => "pending_timeout",
            DueKind::Reminder => "reminder",
            DueKind::ExpiryWarning => "expiry_warning",
            DueKind::Escalate => "escalate",
            DueKind::ReviewReminder => "review_reminder",
            DueKind::BatchCheck => "batch_check",
            DueKind::Start => "start",
            DueKind::ApprovalExpiry => "approval_expiry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        DueKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A due item to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDue {
    pub kind: DueKind,
    /// `None` in `create_request`: the store fills in the new request's id.
    pub request: Option<RequestId>,
    pub due_at: DateTime<Utc>,
    pub payload: Value,
}

impl NewDue {
    pub fn new(kind: DueKind, request: RequestId, due_at: DateTime<Utc>) -> Self {
        NewDue { kind, request: Some(request), due_at, payload: Value::Null }
    }
}

/// A claimed due item. The claim is a lease: if the claimer dies, the item runs again once the
/// lease is over, so work is never lost, and every handler is safe to run twice.
#[derive(Debug, Clone, PartialEq)]
pub struct DueItem {
    pub id: i64,
    pub kind: DueKind,
    pub request: Option<RequestId>,
    pub due_at: DateTime<Utc>,
    /// Failed runs so far.
    pub attempts: u32,
    pub payload: Value,
    /// Its request as the store read it when claiming the item, when it did: the handler
    /// would otherwise read it again at once. Handlers re-check the state inside `decide`.
    pub snapshot: Option<Box<Request>>,
    /// Its lease, while it is claimed.
    pub claim: Option<Claim>,
}

/// A claimed item's lease.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// When the lease ends. It is also the claim's fencing token: every claim and renewal sets
    /// it to `now + lease`, and another claimer can only take an item whose lease has ended, so
    /// a value, once replaced, never comes back. Renewing and releasing compare it (see
    /// `Store::renew_claims`), so a run that lost its item touches nothing.
    pub until: DateTime<Utc>,
    /// When this attempt at the item was first claimed: kept when a lease runs out and another
    /// run takes the item over (that run may be the one a crashed or stalled process began), and
    /// cleared when the item is put back for a retry. A grant's window is counted from it, so a
    /// re-run never moves an expiry later than the first run would have set it.
    pub since: DateTime<Utc>,
}

/// Fields to set on a request row (`None` leaves the column as it is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub granted_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ending: Option<EndReason>,
    pub closed_by: Option<String>,
    pub note: Option<String>,
    pub grant_handle: Option<Value>,
    pub review: Option<Value>,
}

/// A second request moved in the same transaction (an extension request becoming `Extended`
/// when its parent's time is moved).
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    pub id: RequestId,
    pub from: State,
    pub to: State,
    pub event: NewEvent,
}

/// What core decided to do to a request. Applied by the store in one transaction: the state
/// compare-and-set, the patch, the approval row, the event, and the due-item changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// New state; the store's update is conditional on the state it read.
    pub to: Option<State>,
    pub patch: Patch,
    pub approval: Option<PersonId>,
    /// Exactly one event for a state change; at most one otherwise.
    pub event: Option<NewEvent>,
    pub schedule: Vec<NewDue>,
    /// Delete this request's not-yet-run due items of these kinds.
    pub cancel: Vec<DueKind>,
    /// Delete the due item being processed.
    pub finish: Option<i64>,
    /// Instead of `finish`: the due item being processed (id) becomes one of this kind, due
    /// now, still held by this run's lease, so that the handler goes straight on to that step
    /// (expire, then revoke) without waiting for the scheduler; after a crash it runs when the
    /// lease ends.
    pub then: Option<(i64, DueKind)>,
    pub linked: Option<Linked>,
}

impl From<Change> for Decision {
    fn from(c: Change) -> Self {
        Decision::Change(Box::new(c))
    }
}

/// What a decide closure returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Change(Box<Change>),
    /// Refuse, writing nothing but (optionally) an audit event, e.g. a refused approval.
    Refuse(UserError, Option<NewEvent>),
}

/// Core's decision, run by the store on the request as it is now: with its row locked, or on
/// a read that the write then checks is still current (run again on a newer read if not).
pub type DecideFn = Box<dyn Fn(&Request) -> Decision + Send>;

/// What came of `Store::decide`.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    NotFound,
    Refused(UserError),
    Changed(Box<Request>),
    /// The linked request was not in the expected state; nothing was written.
    LinkedConflict,
}

/// A kill switch on one role or (`scope = "*"`) all of them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lockdown {
    pub scope: String,
    pub reason: String,
    pub locked_by: String,
    pub locked_at: DateTime<Utc>,
    /// Whether break-glass is refused too (by default it still works: it exists for emergencies).
    pub blocks_breakglass: bool,
}

impl Lockdown {
    pub fn covers(&self, role: &RoleName) -> bool {
        self.scope == "*" || self.scope == role.as_str()
    }
}

/// Filters for listing requests. Every filter given must match; an empty list or `None` matches
/// everything. Results are newest first (highest id), at most `limit` (default 500, at most
/// 10,000) of them, each with its approvals.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    /// Any of these states.
    pub states: Vec<State>,
    pub requester: Option<PersonId>,
    pub role: Option<RoleName>,
    /// Any of these roles (together with `role`, if both are given, both must match).
    pub roles: Vec<RoleName>,
    /// Any of these requests (the audit feed loads a page's subjects at once).
    pub ids: Vec<RequestId>,
    pub created_since: Option<DateTime<Utc>>,
    /// The rows of one request of several roles.
    pub batch: Option<crate::BatchId>,
    pub limit: Option<u32>,
    /// The requests without their approvals (`approvals` left empty): cheaper, for callers
    /// that do not look at them.
    pub skip_approvals: bool,
}

/// Persistence, domain-shaped. Every state change goes through `decide`, which locks the row
/// (PostgreSQL `FOR UPDATE`; SQLite's single writer), hands it to core, and applies core's
/// `Change` with a compare-and-set on the state, plus the audit event, in one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a new request, its event and its first due items in one transaction. The event's
    /// subject and the due items' request are set to the new id.
    async fn create_request(&self, new: NewRequest, event: NewEvent, due: Vec<NewDue>) -> Result<Request, StoreError>;
    /// Writes the rows of a request of several roles (one per role, each with its event and
    /// due items) in one transaction, all carrying the first row's id as their batch. In the
    /// order given.
    async fn create_batch(&self, members: Vec<(NewRequest, NewEvent, Vec<NewDue>)>)
    -> Result<Vec<Request>, StoreError>;
    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError>;
    /// The states of those of `ids` that exist, in id order: many at once, for reconciliation.
    async fn request_states(&self, ids: &[RequestId]) -> Result<Vec<(RequestId, State)>, StoreError>;
    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError>;
    /// Whether a request other than `except`, of `requester`, for one of `roles`, is approved
    /// or active now (extension requests, which hold nothing themselves, do not count): what a
    /// revoke must not take away. One indexed lookup per role, whatever the number of such
    /// requests, read from the states themselves, so it cannot drift from them.
    async fn still_needed(
        &self,
        except: RequestId,
        requester: &PersonId,
        roles: &[RoleName],
    ) -> Result<bool, StoreError>;
    async fn decide(&self, id: RequestId, f: DecideFn) -> Result<Decided, StoreError>;
    /// An event that changes no state (reminder, refused approval, drift found).
    async fn append_event(&self, ev: NewEvent) -> Result<AuditEvent, StoreError>;

    /// Claims up to `limit` items due at `now`, leasing them for `lease`.
    async fn claim_due(&self, now: DateTime<Utc>, limit: u32, lease: Duration) -> Result<Vec<DueItem>, StoreError>;
    /// Puts a failed item back for `at`, with its attempt count, and records `event` with it.
    async fn retry_due(
        &self,
        id: i64,
        at: DateTime<Utc>,
        attempts: u32,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError>;
    async fn finish_due(&self, id: i64) -> Result<(), StoreError>;
    /// Adds due items outside a state change (cleanup after an undo).
    async fn schedule(&self, items: Vec<NewDue>) -> Result<(), StoreError>;
    /// The earliest due time of unclaimed work, so the loop knows how long to sleep.
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn due_items(&self, request: RequestId) -> Result<Vec<DueItem>, StoreError>;
    /// Makes claims of dead processes runnable at once (single-instance start-up).
    async fn release_claims(&self) -> Result<u64, StoreError>;
    /// Extends the leases of items this process still holds to `until`, in one statement; each
    /// `(id, token)` is renewed only while its lease still ends at `token` (no other claimer
    /// took it meanwhile). Returns the ids renewed (their token is now `until`); the others were
    /// lost, or finished meanwhile.
    async fn renew_claims(&self, held: &[(i64, DateTime<Utc>)], until: DateTime<Utc>) -> Result<Vec<i64>, StoreError>;
    /// Gives up the leases of items this process holds but will not finish (a draining
    /// shutdown), in one statement and on the same condition as `renew_claims`, so that another
    /// replica claims them at once instead of after the lease. Returns how many were released.
    async fn release_held(&self, held: &[(i64, DateTime<Utc>)]) -> Result<u64, StoreError>;

    /// Every audit event about one request, in order.
    async fn events_for(&self, subject: RequestId) -> Result<Vec<AuditEvent>, StoreError>;
    /// Audit events with `seq > after`, in order.
    async fn events(&self, after: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    /// Inserts the firing of a periodic job; true for the one replica that gets to run it.
    async fn claim_cron(&self, job: &str, fire_at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// A named position (e.g. how far the audit feed got), for at-least-once delivery.
    async fn cursor(&self, name: &str) -> Result<i64, StoreError>;
    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError>;
    async fn count_by_state(&self) -> Result<Vec<(State, i64)>, StoreError>;
    /// Sum of due items' lateness, for metrics: `(count due now, oldest due_at)`.
    async fn overdue(&self, now: DateTime<Utc>) -> Result<(i64, Option<DateTime<Utc>>), StoreError>;

    async fn lockdowns(&self) -> Result<Vec<Lockdown>, StoreError>;
    /// Sets (or replaces) a lockdown and records its event, in one transaction.
    async fn set_lockdown(&self, l: Lockdown, event: NewEvent) -> Result<(), StoreError>;
    /// Lifts a lockdown; false (and no event) when there was none.
    async fn clear_lockdown(&self, scope: &str, event: NewEvent) -> Result<bool, StoreError>;
}

/// Everything a provider needs to apply or remove one grant.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantSpec {
    /// Our grant id; every provider call is idempotent on it.
    pub grant_id: String,
    pub request: RequestId,
    pub role: RoleName,
    pub person: PersonId,
    pub principals: BTreeMap<String, String>,
    pub target: Value,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// What `grant` returned, on revoke.
    pub handle: Option<Value>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying: throttling, 5xx, timeouts, connection errors.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying will not help: access denied, no such entity, malformed target. `code` is the
    /// provider's own (e.g. `AccessDenied`), shown to the requester with the message.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
}

impl ProviderError {
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient { message: message.into(), retry_after: None }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError::Permanent { code: code.into(), message: message.into() }
    }
}

/// Something the provider holds that elevate created.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedGrant {
    /// The grant that made it (`elevate-<request id>`), or, for access that cannot name its
    /// grant (see `holder`), the provider's own name for it.
    pub grant_id: String,
    /// Enough for `revoke` to remove it (its target and principal), as the provider sees it.
    pub spec: Option<GrantSpec>,
    pub description: String,
    /// Set when the access serves whichever grants of one person and target are live rather
    /// than one grant (a Google group membership carries no mark of the grant that made it):
    /// it is drift when no live grant of that person and target needs it.
    pub holder: Option<Holder>,
}

/// Whose access a listed item is, for access that cannot name its grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// A person's principal as the policy writes it (`principals`, e.g.
    /// `gcp_principal = "user:alice@example.com"`).
    pub principal_key: String,
    pub principal: String,
    /// The target as the roles that give this access configure it.
    pub target: serde_json::Value,
}

/// Whether another live grant still needs what a revoke would remove. Core works it out from
/// the request states (see `Store::still_needed`) each time a revoke runs, so that a provider is
/// told one fact rather than handed a list that grows with the number of overlapping grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// No other approved or active grant of the same person through the same provider and
    /// target: remove everything this grant gave.
    Alone,
    /// At least one other approved or active grant gives the same access: keep what is shared.
    StillNeeded,
}

impl Overlap {
    pub fn still_needed(self) -> bool {
        self == Overlap::StillNeeded
    }
}

/// Applies and removes grants in some system. Every call is idempotent on the grant id:
/// applying twice leaves one grant; revoking what is gone is success.
#[async_trait]
pub trait GrantProvider: Send + Sync + 'static {
    /// `webhook`, `dry-run`, `aws`.
    fn kind(&self) -> &'static str;
    /// A dry-run provider applies nothing; every message about its grants says so.
    fn is_dry_run(&self) -> bool {
        false
    }
    /// Checks a role's `target` table at config load.
    fn validate_target(&self, target: &Value) -> Result<(), String>;
    /// Applies the grant; returns a handle kept for revoke.
    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError>;
    /// Removes the grant. `overlap` says whether another live grant of the same person through
    /// the same provider and target still needs the same access: a provider whose grants share
    /// one resource (an attached policy, a group or role membership) must then leave it in place
    /// and remove only what is this grant's own.
    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError>;
    /// What elevate created that still exists, for reconciliation.
    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError>;
}

/// Turns audit events into chat notices (one per destination: a card, a person's DMs, a
/// channel) and delivers them. The bot feeds it from the audit log in `seq` order by a durable
/// cursor and gives every destination its own queue, so a destination that fails holds up only
/// itself; the cursor passes an event once all its notices are done, so nothing is lost when
/// the bot restarts (delivery is at least once: a card is re-rendered to the same thing, only a
/// DM could repeat).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Names the notifier's cursor: `slack`, `discord`.
    fn name(&self) -> &str;
    /// The platform, a metrics label.
    fn platform(&self) -> &'static str;
    /// The notices an event makes. An error (a chat reference could not be read) is retried.
    async fn notices(&self, event: &AuditEvent, request: Option<&Request>) -> Result<Vec<Notice>, DeliveryError>;
    /// Delivers one notice.
    async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError>;
    /// After a permanent failure of `notice`: what to deliver instead (an undeliverable DM is
    /// noted beside the card).
    fn reroute(&self, notice: &Notice, error: &DeliveryError) -> Vec<Notice> {
        let _ = (notice, error);
        Vec::new()
    }
    /// Forgets any client-side pacing, so that the next calls go to the platform at once
    /// (tests that drain delivery without moving their clock).
    fn reset_pacing(&self) {}
    /// The notice that reports a permanent failure (`text`) to the security channel, if the
    /// platform has one configured.
    fn report(&self, notice: &Notice, text: &str) -> Option<Notice> {
        let _ = (notice, text);
        None
    }
}

/// An audit feed channel (the audit channel, the security channel, the log): the line of every
/// event it shows, in order, exactly once. The bot packs consecutive lines into messages within
/// [`FeedChannel::limits`] and moves the channel's durable cursor past events only once the
/// message holding them is posted.
#[async_trait]
pub trait FeedChannel: Send + Sync + 'static {
    /// Names the channel's cursor: `slack-feed`, `discord-security`.
    fn name(&self) -> &str;
    /// The platform, a metrics label.
    fn platform(&self) -> &'static str;
    fn limits(&self) -> FeedLimits;
    /// The event's line as this channel shows it; `None` for events it does not show (or when
    /// the channel is not configured).
    fn line(&self, event: &AuditEvent, request: Option<&Request>) -> Option<String>;
    /// Posts one message holding the lines of events `first..=last` (a platform that can
    /// deduplicate a retried post, e.g. by a nonce, derives its key from them).
    async fn post(&self, text: &str, first: i64, last: i64) -> Result<(), DeliveryError>;
}

/// Tells the scheduler loop that new due work exists, so it need not wait for its next wake-up.
pub trait Wake: Send + Sync + 'static {
    fn wake(&self);
    /// New work first due at `at`: wakes the loop only if it would otherwise sleep past it.
    /// (Every new request schedules its pending timeout hours ahead; waking the loop for each
    /// only made it claim nothing and look up its next wake-up again.)
    fn due(&self, at: DateTime<Utc>) {
        let _ = at;
        self.wake();
    }
}

/// Due work made by *another* process on the same database (another replica): the scheduler
/// loop waits on this as well as on its own `Wake` and its poll interval, whichever comes
/// first, so that an idle replica picks up work another one made due at once instead of at
/// its next look at the database. A signal can be lost (a dropped connection); the poll
/// interval covers that, so a signal is a hint, never the only way work is found.
#[async_trait]
pub trait DueSignal: Send + Sync + 'static {
    /// Waits for the next signal and says when the work it announces is first due. Signals
    /// that came while nobody waited are kept (the earliest of them).
    async fn next(&self) -> DateTime<Utc>;
}

/// For stores that cannot signal across processes (SQLite: one server per file): never fires.
pub struct NoSignal;

#[async_trait]
impl DueSignal for NoSignal {
    async fn next(&self) -> DateTime<Utc> {
        std::future::pending().await
    }
}

/// A `Wake` that does nothing, for tools that run no scheduler (the CLI, tests driving it).
pub struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

/// Where a chat platform put something about a request (the approval card's channel and message
/// id; the requester's chat user id), so that later events update that message in place and
/// reach that person even after a restart. A narrow port of its own, apart from `Store`, because
/// only chat adapters need it.
#[async_trait]
pub trait ChatRefs: Send + Sync + 'static {
    /// `(channel, message)` recorded under `name` for this request on `platform`.
    async fn chat_ref(
        &self,
        platform: &str,
        request: RequestId,
        name: &str,
    ) -> Result<Option<(String, String)>, StoreError>;
    /// Records (or replaces) the reference.
    async fn set_chat_ref(
        &self,
        platform: &str,
        request: RequestId,
        name: &str,
        channel: &str,
        message: &str,
    ) -> Result<(), StoreError>;
    /// Records that the platform's delivery `id` (Slack's `trigger_id` or `event_id`, Discord's
    /// interaction id) arrived at `now`, and says whether it is the first time: a platform's
    /// retry or a replayed copy of a signed payload then acts once. Kept until `keep_until` (at
    /// least the signature window), in the database, so a restart or another replica does not
    /// forget it.
    async fn first_delivery(
        &self,
        platform: &str,
        id: &str,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
