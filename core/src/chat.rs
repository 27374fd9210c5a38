//! What every chat adapter says and decides the same way, whatever the platform: the answer to a
//! new request, the status list, which grant a bare "release" means, which events touch the
//! approval card, where the card goes and who gets the DMs. Adapters bring only their own markup
//! (mentions, escaping, buttons) and their API calls; the wording and the choices live here once,
//! so Slack and Discord cannot drift apart.

use crate::{
    CoreError, RequestId, Service, State, UserError,
    policy::{Caller, Policy},
    ports::{ChatRefs, RequestQuery},
    render,
    request::Request,
    service::{ExtendOutcome, LockdownReport},
};
use chrono::{DateTime, Utc};

/// The chat reference name of a request's approval card (`channel`, `message id`).
pub const CARD: &str = "card";
/// The chat reference name of the requester's chat user (`user id`, ``), kept so that DMs reach
/// them after a restart even when the policy does not name their chat account.
pub const REQUESTER: &str = "requester";

/// "Request #41 for `db` (1h) sent to #db-approvers; it needs 1 approval. I'll DM you when it
/// changes." `to` is the approvers' channel as the platform shows it, if the role has one.
pub fn request_sent(policy: &Policy, req: &Request, to: Option<String>) -> String {
    let required = policy.roles.get(&req.role).map(|r| r.approvals_required).unwrap_or(1);
    let to = match to {
        Some(c) => format!("sent to {c}"),
        None => "sent to the approvers".to_string(),
    };
    format!(
        "Request {} for `{}` ({}) {to}; it needs {required} approval{}. I'll DM you when it changes.",
        req.id,
        req.role,
        req.duration,
        if required == 1 { "" } else { "s" }
    )
}

/// The title line of an approval card; `who` is the requester as the platform shows them.
pub fn card_title(req: &Request, who: &str) -> String {
    match req.kind.parent() {
        Some(p) => format!("Request {}: {who} asks to extend {p} (`{}`) by {}", req.id, req.role, req.duration),
        None => format!("Request {}: {who} asks for `{}` for {}", req.id, req.role, req.duration),
    }
}

/// "You may request: `db` (up to 4h), …", for help texts.
pub fn requestable(policy: &Policy, caller: &Caller) -> String {
    let roles: Vec<String> =
        policy.requestable_roles(caller).iter().map(|r| format!("`{}` (up to {})", r.name, r.max_duration)).collect();
    format!("You may request: {}", if roles.is_empty() { "nothing yet".into() } else { roles.join(", ") })
}

/// The states `status` lists: what is still open or still held.
pub const OPEN_STATES: [State; 4] = [State::Pending, State::Approved, State::Active, State::Revoking];

/// One line per open request of the caller, or a sentence saying there are none.
pub fn status_lines(reqs: &[Request], now: DateTime<Utc>) -> String {
    if reqs.is_empty() {
        return "You have no pending requests and no active grants.".into();
    }
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| match (r.state, r.expires_at) {
            (State::Active, Some(exp)) => {
                let left = (exp - now).num_minutes().max(0);
                format!(
                    "• {} `{}` active, {}h{:02}m left (until {})",
                    r.id,
                    r.role,
                    left / 60,
                    left % 60,
                    render::time(exp)
                )
            }
            (s, _) => format!("• {} `{}` for {}: {s}", r.id, r.role, r.duration),
        })
        .collect();
    lines.join("\n")
}

/// The caller's own requests in these states.
pub async fn requests_of(service: &Service, caller: &Caller, states: Vec<State>) -> Result<Vec<Request>, CoreError> {
    let q = RequestQuery { states, requester: Some(caller.person.clone()), ..Default::default() };
    service.store().list_requests(&q).await.map_err(CoreError::store)
}

/// `status`: the caller's open requests and active grants.
pub async fn status(service: &Service, caller: &Caller) -> Result<String, CoreError> {
    let reqs = requests_of(service, caller, OPEN_STATES.to_vec()).await?;
    Ok(status_lines(&reqs, service.now()))
}

/// `release [id]`: gives a grant back early; without a number, the caller's only active one.
/// `usage` as in [`pick_release`].
pub async fn release(
    service: &Service,
    caller: &Caller,
    id: Option<RequestId>,
    usage: &str,
) -> Result<String, CoreError> {
    let id = match id {
        Some(id) => id,
        None => pick_release(&requests_of(service, caller, vec![State::Active]).await?, usage)?,
    };
    let req = service.release(caller, id).await?;
    Ok(format!("Releasing {} (`{}`): access is being removed.", req.id, req.role))
}

/// The answer to an extension: "Extension #42 of #41 by 30m: Request #42 … sent to …". `sent`
/// is [`request_sent`] for the extension, as the platform words its channel.
pub fn extension_sent(out: &ExtendOutcome, sent: String) -> String {
    format!("Extension {} of {} by {}: {sent}", out.extension.id, out.parent.id, out.extension.duration)
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

/// A refusal as the person sees it (unescaped: the adapter makes it safe). Internal failures
/// are logged with a reference and shown only as that reference.
pub fn refusal(e: CoreError, platform: &str) -> String {
    match e {
        CoreError::User(u) => u.message,
        other => {
            use std::hash::{BuildHasher, RandomState};
            let reference = format!("{:016x}", RandomState::new().hash_one(std::time::SystemTime::now()));
            tracing::error!(reference, platform, error = %other, "chat command failed");
            format!("Something went wrong on elevate's side (reference {reference}); nothing you typed was at fault.")
        }
    }
}

/// Which field of a request form a refusal is about, from core's wording: `role`, `duration`,
/// `reason` or `ticket`.
pub fn request_field(e: &CoreError) -> &'static str {
    let CoreError::User(u) = e else { return "role" };
    let m = u.message.to_lowercase();
    if m.contains("ticket") {
        "ticket"
    } else if m.contains("duration") || m.contains("at most") {
        "duration"
    } else if m.contains("reason") {
        "reason"
    } else {
        "role"
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
    for id in std::iter::once(req.id).chain(req.kind.parent()) {
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

/// What a lockdown did, for the security person who confirmed it. `text` makes the failure
/// messages safe for the platform.
pub fn lockdown_done(r: &LockdownReport, text: &dyn Fn(&str) -> String) -> String {
    let mut out = format!(
        ":lock: Locked down `{}`: {} grant(s) being revoked, {} pending request(s) denied.",
        if r.scope == "*" { "all" } else { &r.scope },
        r.revoked.len(),
        r.denied.len()
    );
    for (id, why) in &r.failed {
        out.push_str(&format!("\n• could not end #{id}: {}", text(why)));
    }
    out
}
