//! Chat, whatever the platform: the command model ([`Command`]), its one handler ([`handle`]),
//! the typed answers it returns ([`Answer`]), and what every chat notifier decides the same way
//! (which events touch the approval card, where the card goes, who gets the DMs). A platform
//! adapter only verifies and decodes payloads into a `Command`, and encodes the `Answer` and the
//! cards in its own markup; the wording and the decisions live here once, so platforms cannot
//! drift apart and a new one needs a decoder, an encoder and a client.

mod answer;
mod batch_card;
mod card;
mod command;
mod handle;
mod home;
mod thread;
mod usage;

pub use answer::{Action, Answer, Block, Button, Form, FormKind, Input, Message, Refusal, Span, Style, Text, Tone};
pub use card::{card, card_of};
pub use command::{Command, duration_and_rest, foreign_payload, parse_id};
pub use handle::{Ctx, Handled, handle, refusal, sent};
pub use home::home;
pub use thread::{nudges, thread_line};
pub use usage::{Arg, ArgKind, Syntax, USAGES, Usage, usage};

use crate::{
    CoreError, RequestId, Service, State, UserError,
    policy::{Caller, Policy},
    ports::{ChatRefs, RequestQuery},
    request::Request,
    service::LockdownReport,
};

/// The answer to a command that already arrived once (a platform's retry, or a replayed copy):
/// nothing more is done.
pub const ALREADY_RECEIVED: &str = "This command already arrived once and was handled then; nothing more was done.";

/// How long a chat delivery's identity is remembered: twice the platforms' five-minute
/// signature window, so a replayed copy of a signed payload is always recognised.
pub const DELIVERY_MEMORY: chrono::Duration = chrono::Duration::minutes(10);

/// Whether the platform's delivery `id` (Slack's `trigger_id` or `event_id`, Discord's
/// interaction id) arrives for the first time: a retry or a replayed copy acts once. A payload
/// without an identity, or a store that cannot answer, counts as new: dropping a real command
/// is worse than the rare repeat, which core's own checks (one approval per person,
/// compare-and-set transitions) bound.
pub async fn first_delivery(refs: &dyn ChatRefs, platform: &str, id: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    if id.is_empty() {
        return true;
    }
    match refs.first_delivery(platform, id, now, now + DELIVERY_MEMORY).await {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(error = %e, platform, "could not record a chat delivery; handling it");
            true
        }
    }
}

/// The chat reference name of a request's approval card (`channel`, `message id`).
pub const CARD: &str = "card";
/// The chat reference name of the requester's chat user (`user id`, ``), kept so that DMs reach
/// them after a restart even when the policy does not name their chat account.
pub const REQUESTER: &str = "requester";

/// The approval card that shows `req` as it is now, and the request it is kept under: for a
/// role of a request of several roles, the first role's request and one card of them all
/// (see [`Request::card_id`]); otherwise the request's own card.
pub async fn card_now(service: &Service, req: &Request) -> Result<(Request, Message), String> {
    let members = service.with_batch(req).await.map_err(|e| e.to_string())?;
    let owner = members.iter().find(|m| m.id == req.card_id()).cloned().unwrap_or_else(|| req.clone());
    let card = card_of(&service.policy(), &members).unwrap_or_else(|| card(&service.policy(), req));
    Ok((owner, card))
}

/// The states `status` lists: what is still open or still held.
pub const OPEN_STATES: [State; 6] =
    [State::Pending, State::Waiting, State::Scheduled, State::Approved, State::Active, State::Revoking];

/// The caller's own requests in these states.
pub async fn requests_of(service: &Service, caller: &Caller, states: Vec<State>) -> Result<Vec<Request>, CoreError> {
    let q = RequestQuery { states, requester: Some(caller.person.clone()), ..Default::default() };
    service.store().list_requests(&q).await.map_err(CoreError::store)
}

/// Which grant "release" without a number means: the caller's only active one; with none or
/// several, the refusal says what to do. `usage` is the platform's syntax, e.g.
/// "`/elevate release ID`".
pub fn pick_release(active: &[Request], usage: &str) -> Result<RequestId, UserError> {
    match active {
        [one] => Ok(one.id),
        [] => Err(UserError::not_found("You have no active grant to release.")),
        many => {
            let ids: Vec<String> = many.iter().map(|r| format!("{} (`{}`)", r.id, r.role)).collect();
            Err(UserError::invalid(format!("You have several active grants: {}. Say which: {usage}.", ids.join(", "))))
        }
    }
}

/// Whether an event changes what the approval card shows. A refused click and a reminder do not.
pub fn updates_card(kind: &str) -> bool {
    kind != "request.approval_refused" && kind != "request.reminder"
}

/// Whether the requester's DM about this event carries an Extend button.
pub fn offers_extend(kind: &str) -> bool {
    kind == "grant.expiry_warning"
}

/// What to do with a request's approval card on some platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardAction {
    /// Edit the message already posted: `(channel, message)`.
    Update(String, String),
    /// Post a new card in this channel, then record it under [`CARD`].
    Post(String),
    /// No card: the role has no channel on this platform, or the card was never posted (an
    /// event from before the platform was configured).
    Nothing,
}

/// The card is posted when the request is created, in the role's channel for the platform
/// (`channel` picks it from the role), and edited in place afterwards.
pub async fn card_action(
    refs: &dyn ChatRefs,
    platform: &str,
    policy: &Policy,
    req: &Request,
    created: bool,
    channel: fn(&crate::policy::Role) -> Option<&String>,
) -> Result<CardAction, String> {
    if let Some((c, m)) = refs.chat_ref(platform, req.id, CARD).await.map_err(|e| e.to_string())? {
        return Ok(CardAction::Update(c, m));
    }
    match policy.roles.get(&req.role).and_then(channel) {
        Some(c) if created => Ok(CardAction::Post(c.clone())),
        _ => Ok(CardAction::Nothing),
    }
}

/// The requester's chat user for DMs: `from_policy` (the policy's id for this platform) if
/// known, else the one who made the request from this platform, else (for an extension) the one
/// who made its parent.
pub async fn requester_user(
    refs: &dyn ChatRefs,
    platform: &str,
    req: &Request,
    from_policy: Option<String>,
) -> Result<Option<String>, String> {
    if from_policy.is_some() {
        return Ok(from_policy);
    }
    // The requester of a request of several roles is recorded under its first role's request.
    for id in [req.id, req.card_id()].into_iter().chain(req.kind.parent()) {
        if let Some((user, _)) = refs.chat_ref(platform, id, REQUESTER).await.map_err(|e| e.to_string())? {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// Records the requester's chat user with the request (see [`REQUESTER`]); a failure is only
/// logged, since the request itself stands.
pub async fn remember_requester(refs: &dyn ChatRefs, platform: &str, id: RequestId, user: &str) {
    if let Err(e) = refs.set_chat_ref(platform, id, REQUESTER, user, "").await {
        tracing::warn!(platform, error = %e, "could not record the requester's chat user");
    }
}

/// What a lockdown did, for the security person who confirmed it.
pub fn lockdown_done(r: &LockdownReport) -> Message {
    let scope = if r.scope == "*" { "all" } else { &r.scope };
    let mut msg = Message::text(
        Tone::Locked,
        Text::plain("Locked down ").code(scope).and(format!(
            ": {} grant(s) being revoked, {} pending request(s) denied.",
            r.revoked.len(),
            r.denied.len()
        )),
    );
    if !r.failed.is_empty() {
        let items = r.failed.iter().map(|(id, why)| Text::plain(format!("could not end #{id}: {why}"))).collect();
        msg = msg.with(Block::List(items));
    }
    msg
}
