//! `POST /discord/interactions`, the interactions endpoint URL. Each request is checked first:
//! an Ed25519 signature (`X-Signature-Ed25519`) over `X-Signature-Timestamp` + the raw body,
//! against the application's public key (serenity's verifier), with the timestamp within five
//! minutes so a captured request cannot be replayed later; the signature and timestamp headers
//! must each appear exactly once and the timestamp must be plain digits (the bot limits bodies
//! to 64 KB before any of this runs). Anything else gets 401 and nothing is done: Discord
//! probes the URL with bad signatures and drops endpoints that accept them.
//!
//! Discord waits 3 seconds for the answer. A handler that takes longer is answered with a
//! deferral (type 5, or 6 for a click) and finished through the interaction token, which is
//! good for 15 minutes; everything later (cards, DMs) goes through the bot API anyway.

use crate::{
    Discord,
    api::ApiError,
    identity::user_id,
    messages::{Reply, clip, quiet},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use serenity::builder::{
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    EditInteractionResponse,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Oldest signed timestamp accepted.
const MAX_AGE: Duration = Duration::from_secs(300);
/// How long an interaction token can be used for follow-ups.
const TOKEN_LIFE: Duration = Duration::from_secs(15 * 60);

/// `/discord/interactions`, to merge into the bot's router.
pub fn routes(discord: Discord) -> Router {
    Router::new().route("/discord/interactions", post(interactions)).with_state(discord)
}

fn unauthorized(why: &str) -> Response {
    tracing::warn!(why, "refused a Discord interaction");
    (StatusCode::UNAUTHORIZED, "invalid request signature").into_response()
}

/// A header that appears exactly once: a repeated signature or timestamp header could make the
/// verifier and a proxy in front of it disagree about which one was checked.
fn once<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// Whether Discord signed this body, recently.
fn verify(discord: &Discord, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let (Some(sig), Some(ts)) = (once(headers, "x-signature-ed25519"), once(headers, "x-signature-timestamp")) else {
        return Err("signature headers missing or repeated");
    };
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err("timestamp is not plain digits");
    }
    let signed_at = ts.parse::<u64>().map_err(|_| "timestamp is not a number")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if now.abs_diff(signed_at) > MAX_AGE.as_secs() {
        return Err("stale timestamp");
    }
    discord.inner.verifier.verify(sig, ts, body).map_err(|()| "bad signature")
}

async fn interactions(State(discord): State<Discord>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = verify(&discord, &headers, &body) {
        return unauthorized(why);
    }
    let Ok(p) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected an interaction (JSON)").into_response();
    };
    if p["type"] == 1 {
        return Json(serde_json::json!({ "type": 1 })).into_response();
    }
    Json(discord.answer(p).await).into_response()
}

impl Discord {
    async fn dispatch(&self, p: &Value) -> Reply {
        // Autocomplete changes nothing and is asked for on every keystroke; everything else acts
        // once per interaction id, whatever Discord retries or someone replays.
        if p["type"] != 4 && !self.first_delivery(p["id"].as_str().unwrap_or("")).await {
            return match p["type"].as_u64() {
                Some(3) => Reply::Ack,
                _ => Reply::private(elevate_core::chat::ALREADY_RECEIVED),
            };
        }
        match p["type"].as_u64() {
            Some(2) => self.command(p).await,
            Some(3) => self.component(p).await,
            Some(4) => self.autocomplete(p),
            Some(5) => self.modal_submit(p).await,
            _ => Reply::private("elevate does not handle this kind of interaction."),
        }
    }

    /// Runs the handler within the budget; past it, defers and finishes in the background.
    async fn answer(&self, p: Value) -> CreateInteractionResponse {
        let received = Instant::now();
        let this = self.clone();
        let payload = p.clone();
        let mut work = tokio::spawn(async move { this.dispatch(&payload).await });
        // A zero budget always defers, so tests can see that path deterministically.
        let budget = self.ack_budget();
        let done = if budget.is_zero() { None } else { tokio::time::timeout(budget, &mut work).await.ok() };
        match done {
            Some(Ok(reply)) => return reply.response(),
            Some(Err(e)) => {
                tracing::error!(error = %e, "Discord interaction handler panicked");
                return Reply::private("⚠️ Something went wrong on elevate's side.").response();
            }
            None => {}
        }
        let kind = p["type"].as_u64().unwrap_or(0);
        if kind == 4 {
            // Autocomplete cannot be deferred; suggest nothing rather than time out.
            return Reply::Choices(Vec::new()).response();
        }
        let this = self.clone();
        self.later(async move {
            let reply = work.await.unwrap_or_else(|_| Reply::private("⚠️ Something went wrong."));
            this.finish_deferred(&p, kind, reply, received).await;
        });
        if kind == 3 {
            CreateInteractionResponse::Acknowledge
        } else {
            CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true))
        }
    }

    /// Delivers a reply that missed the 3 seconds: into the deferred answer (commands, forms)
    /// or as an ephemeral follow-up (clicks); by DM if the token has run out.
    async fn finish_deferred(&self, p: &Value, kind: u64, reply: Reply, received: Instant) {
        let (text, rows) = match reply {
            Reply::Private(t, rows) => (t, rows),
            Reply::Modal(_) => {
                ("Discord needs a form within 3 seconds and elevate was slower; click again.".into(), vec![])
            }
            Reply::Ack if kind == 3 => return,
            Reply::Ack | Reply::Choices(_) => ("Done.".into(), vec![]),
        };
        let token = p["token"].as_str().unwrap_or("");
        let api = &self.inner.api;
        let sent = if received.elapsed() >= TOKEN_LIFE {
            self.dm(user_id(p), CreateMessage::new().content(clip(&text)).allowed_mentions(quiet())).await
        } else if kind == 3 {
            let msg = CreateInteractionResponseFollowup::new().content(clip(&text)).components(rows).ephemeral(true);
            api.followup(token, msg.allowed_mentions(quiet())).await
        } else {
            let msg = EditInteractionResponse::new().content(clip(&text)).components(rows);
            api.edit_original(token, msg.allowed_mentions(quiet())).await
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e.message, "could not deliver a deferred Discord answer");
        }
    }

    /// Whether this interaction id is the first of its kind; see
    /// [`elevate_core::chat::first_delivery`].
    async fn first_delivery(&self, id: &str) -> bool {
        let now = self.inner.service.now();
        elevate_core::chat::first_delivery(self.inner.refs.as_ref(), crate::PLATFORM, id, now).await
    }

    /// Sends a DM through the bot API.
    pub(crate) async fn dm(&self, user: &str, msg: CreateMessage) -> Result<(), ApiError> {
        let channel = self.inner.api.open_dm(user).await?;
        self.inner.api.post(&channel, msg).await.map(|_| ())
    }
}
