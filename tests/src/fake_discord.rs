//! A fake of Discord's REST API (v10) on loopback, for serenity's real `Http` client to talk
//! to. A small stateful model, not a stub: messages live in channels and must exist to be
//! edited; a DM channel is created per user by `POST /users/@me/channels` (the same one every
//! time) and only for users the fake knows; the bot token is checked on bot routes; commands are
//! a set per guild that `PUT` replaces whole. Errors come back as Discord sends them (JSON
//! `{"message", "code"}`; 429 with `retry_after` in the body and a `Retry-After` header), and a
//! test can script a fault for the next call of a kind, take the bot's access to a channel away,
//! delete a message, or take the whole API down for a while.
//!
//! Rate limits are enforced on the fake's time ([`FakeTime`]) the way Discord's headers
//! describe them: a bucket per route and channel (creating and editing messages: 5 per 5
//! seconds per channel, what Discord's `X-RateLimit-*` headers announce for those routes) and
//! the global limit of 50 requests per second. Every answer carries `X-RateLimit-Limit`,
//! `-Remaining`, `-Reset-After` and `-Bucket`; a call over its limit gets 429 with `retry_after`
//! and `X-RateLimit-Scope: user`, and changes nothing. A create with `enforce_nonce` whose
//! nonce the channel saw lately answers the message already created, as Discord does.

use crate::fake_time::{Buckets, FakeTime, Limit, Outage};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::any,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex},
};

/// Creating or editing messages in one channel.
pub const CHANNEL_LIMIT: Limit = Limit { burst: 5.0, per_second: 1.0 };
const GLOBAL_LIMIT: Limit = Limit { burst: 50.0, per_second: 50.0 };

/// One call as the fake received it.
#[derive(Debug, Clone)]
pub struct DiscordCall {
    /// `create_message`, `edit_message`, `open_dm`, `register_commands`, `edit_original`,
    /// `followup`, or `unknown`.
    pub kind: String,
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// A fault scripted for the next call of a kind.
#[derive(Debug, Clone, Copy)]
pub enum DiscordFault {
    /// 429 with this `retry_after` (seconds), in the body and the `Retry-After` header.
    RateLimited(f64),
    /// 502 Bad Gateway.
    ServerError,
}

/// A message as it stands in a channel.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    pub channel: String,
    pub content: String,
    pub components: Value,
    pub allowed_mentions: Value,
    /// The message this one replies to (`message_reference.message_id`).
    pub reply_to: Option<String>,
}

impl FakeMessage {
    /// custom_ids of its buttons.
    pub fn buttons(&self) -> Vec<String> {
        let rows = self.components.as_array().cloned().unwrap_or_default();
        rows.iter()
            .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == 2)
            .filter_map(|c| c["custom_id"].as_str().map(String::from))
            .collect()
    }
}

#[derive(Default)]
struct Model {
    calls: Vec<DiscordCall>,
    faults: BTreeMap<String, VecDeque<DiscordFault>>,
    channels: BTreeSet<String>,
    messages: Vec<FakeMessage>,
    users: BTreeSet<String>,
    /// Users whose privacy settings refuse DMs from the bot.
    closed_dms: BTreeSet<String>,
    /// user → DM channel
    dms: BTreeMap<String, String>,
    /// guild id (or `global`) → registered commands
    commands: BTreeMap<String, Vec<Value>>,
    next_id: u64,
    buckets: Buckets,
    /// Channels the bot may no longer see (50001 Missing Access).
    no_access: BTreeSet<String>,
    outage: Option<(DateTime<Utc>, Outage)>,
    /// 429s answered, by kind.
    rate_limited: BTreeMap<String, usize>,
    /// (channel, nonce) → message id, for `enforce_nonce`.
    nonces: BTreeMap<(String, String), String>,
}

impl Model {
    fn snowflake(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

/// The running fake. Cheap to clone. `url` is what serenity's `proxy` takes (it stands in
/// for `https://discord.com`).
#[derive(Clone)]
pub struct FakeDiscord {
    pub url: String,
    pub token: String,
    pub application_id: String,
    pub time: FakeTime,
    model: Arc<Mutex<Model>>,
}

const BOT_USER: &str = "1099999999999999999";

impl FakeDiscord {
    pub async fn start(token: &str, application_id: &str, channels: &[&str]) -> FakeDiscord {
        let model = Arc::new(Mutex::new(Model {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            next_id: 1_800_000_000_000_000_000,
            ..Model::default()
        }));
        let mut fake = FakeDiscord {
            url: String::new(),
            token: token.into(),
            application_id: application_id.into(),
            time: FakeTime::default(),
            model,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        fake.url = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().route("/api/v10/{*path}", any(handle)).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    /// A Discord user the bot can open a DM with.
    pub fn add_user(&self, id: &str) {
        self.model.lock().unwrap().users.insert(id.into());
    }

    /// The user has turned off DMs from server members: their DM channel opens, but posting to
    /// it is refused (403, code 50007), as Discord does.
    pub fn refuse_dms(&self, user: &str) {
        self.model.lock().unwrap().closed_dms.insert(user.into());
    }

    /// The bot loses access to `channel`: posting or editing there answers 403, 50001.
    pub fn revoke_access(&self, channel: &str) {
        self.model.lock().unwrap().no_access.insert(channel.into());
    }

    /// Someone deleted the message: editing it answers 404, 10008.
    pub fn delete_message(&self, channel: &str, id: &str) {
        self.model.lock().unwrap().messages.retain(|m| !(m.channel == channel && m.id == id));
    }

    /// Every call fails this way until the fake's time reaches `until`.
    pub fn go_down(&self, until: DateTime<Utc>, how: Outage) {
        self.model.lock().unwrap().outage = Some((until, how));
    }

    /// 429s answered so far to calls of `kind`.
    pub fn rate_limited(&self, kind: &str) -> usize {
        self.model.lock().unwrap().rate_limited.get(kind).copied().unwrap_or(0)
    }

    pub fn fail_next(&self, kind: &str, fault: DiscordFault) {
        self.model.lock().unwrap().faults.entry(kind.into()).or_default().push_back(fault);
    }

    pub fn calls(&self, kind: &str) -> Vec<DiscordCall> {
        self.model.lock().unwrap().calls.iter().filter(|c| c.kind == kind).cloned().collect()
    }

    pub fn all_calls(&self) -> Vec<DiscordCall> {
        self.model.lock().unwrap().calls.clone()
    }

    /// Messages in a channel, oldest first, as they stand now.
    pub fn messages(&self, channel: &str) -> Vec<FakeMessage> {
        self.model.lock().unwrap().messages.iter().filter(|m| m.channel == channel).cloned().collect()
    }

    /// Every message anywhere, as they stand now.
    pub fn all_messages(&self) -> Vec<FakeMessage> {
        self.model.lock().unwrap().messages.clone()
    }

    /// DMs to a user, oldest first.
    pub fn dms(&self, user: &str) -> Vec<FakeMessage> {
        let channel = self.model.lock().unwrap().dms.get(user).cloned();
        channel.map(|c| self.messages(&c)).unwrap_or_default()
    }

    /// The commands registered for a guild (or `global`).
    pub fn commands(&self, scope: &str) -> Vec<Value> {
        self.model.lock().unwrap().commands.get(scope).cloned().unwrap_or_default()
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "message": message, "code": code }))).into_response()
}

fn too_many(secs: f64, global: bool) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            ("retry-after", format!("{}", secs.ceil() as u64)),
            ("x-ratelimit-scope", if global { "global" } else { "user" }.to_string()),
        ],
        Json(json!({ "message": "You are being rate limited.", "retry_after": secs, "global": global })),
    )
        .into_response()
}

fn message_json(m: &FakeMessage) -> Value {
    json!({
        "id": m.id, "channel_id": m.channel, "type": 0, "content": m.content,
        "author": { "id": BOT_USER, "username": "elevate", "discriminator": "0", "global_name": null,
                    "avatar": null, "bot": true },
        "timestamp": "2026-03-02T09:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "components": m.components, "flags": 0,
    })
}

/// Which kind of call a route is, for faults and assertions.
fn kind_of(method: &Method, parts: &[&str]) -> &'static str {
    match (method.as_str(), parts) {
        ("POST", ["channels", _, "messages"]) => "create_message",
        ("PATCH", ["channels", _, "messages", _]) => "edit_message",
        ("POST", ["users", "@me", "channels"]) => "open_dm",
        ("PUT", ["applications", _, "guilds", _, "commands"]) | ("PUT", ["applications", _, "commands"]) => {
            "register_commands"
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) => "edit_original",
        ("POST", ["webhooks", _, _]) => "followup",
        _ => "unknown",
    }
}

async fn handle(
    State(fake): State<FakeDiscord>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let parts: Vec<&str> = path.split('/').collect();
    let kind = kind_of(&method, &parts);
    let mut m = fake.model.lock().unwrap();
    m.calls.push(DiscordCall {
        kind: kind.into(),
        method: method.to_string(),
        path: uri.path().to_string(),
        body: body.clone(),
    });
    if let Some(fault) = m.faults.get_mut(kind).and_then(|q| q.pop_front()) {
        return match fault {
            DiscordFault::RateLimited(secs) => {
                *m.rate_limited.entry(kind.to_string()).or_default() += 1;
                too_many(secs, false)
            }
            DiscordFault::ServerError => error(StatusCode::BAD_GATEWAY, 0, "502: Bad Gateway"),
        };
    }
    let now = fake.time.now();
    match m.outage {
        Some((until, how)) if now < until => {
            return match how {
                Outage::ServerError => error(StatusCode::SERVICE_UNAVAILABLE, 0, "503: Service Unavailable"),
                Outage::Timeout => error(StatusCode::GATEWAY_TIMEOUT, 0, "504: Gateway Timeout"),
            };
        }
        _ => {}
    }
    if let Err(wait) = m.buckets.take("global", GLOBAL_LIMIT, now) {
        *m.rate_limited.entry(kind.to_string()).or_default() += 1;
        return too_many(wait.as_secs_f64(), true);
    }
    let bucket = match (kind, parts.as_slice()) {
        ("create_message" | "edit_message", [_, channel, ..]) => Some(format!("{kind}:{channel}")),
        _ => None,
    };
    if let Some(b) = &bucket
        && let Err(wait) = m.buckets.take(b, CHANNEL_LIMIT, now)
    {
        *m.rate_limited.entry(kind.to_string()).or_default() += 1;
        return too_many(wait.as_secs_f64(), false);
    }
    let remaining = bucket.as_ref().map(|b| m.buckets.remaining(b)).unwrap_or(0);
    let mut answer = answer(&fake, &mut m, kind, &parts, &headers, &body);
    if let Some(b) = bucket {
        let h = answer.headers_mut();
        h.insert("x-ratelimit-limit", "5".parse().unwrap());
        h.insert("x-ratelimit-remaining", remaining.to_string().parse().unwrap());
        h.insert("x-ratelimit-reset-after", "5.000".parse().unwrap());
        h.insert("x-ratelimit-bucket", hex::encode(b.as_bytes()).parse().unwrap());
    }
    answer
}

/// The answer to a call within its limits.
fn answer(
    fake: &FakeDiscord,
    m: &mut Model,
    kind: &str,
    parts: &[&str],
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    let webhook = parts.first() == Some(&"webhooks");
    if webhook {
        // Interaction webhooks are authorised by the token in the path, not the bot token.
        if parts.get(1) != Some(&fake.application_id.as_str()) {
            return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
        }
    } else {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if auth != format!("Bot {}", fake.token) {
            return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }
    let text = |k: &str| body[k].as_str().unwrap_or("").to_string();
    match (kind, parts) {
        ("create_message", [_, channel, _]) => {
            if !m.channels.contains(*channel) {
                return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
            }
            if m.no_access.contains(*channel) {
                return error(StatusCode::FORBIDDEN, 50001, "Missing Access");
            }
            let nonce = body["nonce"].as_str().filter(|_| body["enforce_nonce"] == true).map(String::from);
            if let Some(n) = &nonce
                && let Some(id) = m.nonces.get(&(channel.to_string(), n.clone()))
                && let Some(existing) = m.messages.iter().find(|x| &x.id == id)
            {
                return Json(message_json(existing)).into_response();
            }
            if m.dms.iter().any(|(u, c)| c == channel && m.closed_dms.contains(u)) {
                return error(StatusCode::FORBIDDEN, 50007, "Cannot send messages to this user");
            }
            let id = m.snowflake();
            let msg = FakeMessage {
                id,
                channel: channel.to_string(),
                content: text("content"),
                components: body.get("components").cloned().unwrap_or(json!([])),
                allowed_mentions: body["allowed_mentions"].clone(),
                reply_to: body["message_reference"]["message_id"].as_str().map(String::from),
            };
            m.messages.push(msg.clone());
            if let Some(n) = nonce {
                m.nonces.insert((channel.to_string(), n), msg.id.clone());
            }
            Json(message_json(&msg)).into_response()
        }
        ("edit_message", [_, channel, _, id]) => {
            if m.no_access.contains(*channel) {
                return error(StatusCode::FORBIDDEN, 50001, "Missing Access");
            }
            let Some(msg) = m.messages.iter_mut().find(|x| x.channel == *channel && x.id == *id) else {
                return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
            };
            if let Some(c) = body.get("content").and_then(Value::as_str) {
                msg.content = c.to_string();
            }
            if let Some(c) = body.get("components") {
                msg.components = c.clone();
            }
            msg.allowed_mentions = body["allowed_mentions"].clone();
            Json(message_json(msg)).into_response()
        }
        ("open_dm", _) => {
            let user = text("recipient_id");
            if !m.users.contains(&user) {
                return error(StatusCode::BAD_REQUEST, 50033, "Invalid Recipient(s)");
            }
            let channel = match m.dms.get(&user) {
                Some(c) => c.clone(),
                None => {
                    let c = m.snowflake();
                    m.dms.insert(user.clone(), c.clone());
                    m.channels.insert(c.clone());
                    c
                }
            };
            Json(json!({ "id": channel, "type": 1, "last_message_id": null, "flags": 0,
                "recipients": [{ "id": user, "username": "someone", "discriminator": "0", "global_name": null, "avatar": null }] }))
            .into_response()
        }
        ("register_commands", [_, app, rest @ ..]) => {
            if *app != fake.application_id {
                return error(StatusCode::FORBIDDEN, 50001, "Missing Access");
            }
            let scope = match rest {
                ["guilds", guild, _] => guild.to_string(),
                _ => "global".to_string(),
            };
            let Some(list) = body.as_array().cloned() else {
                return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
            };
            let guild_id = if scope == "global" { Value::Null } else { json!(scope) };
            let mut saved = Vec::new();
            for mut c in list {
                c["id"] = json!(m.snowflake());
                c["application_id"] = json!(fake.application_id);
                c["guild_id"] = guild_id.clone();
                c["version"] = json!(m.snowflake());
                c["default_member_permissions"] = Value::Null;
                if c.get("type").is_none() {
                    c["type"] = json!(1);
                }
                saved.push(c);
            }
            m.commands.insert(scope, saved.clone());
            Json(Value::Array(saved)).into_response()
        }
        ("edit_original" | "followup", _) => {
            let msg = FakeMessage {
                id: m.snowflake(),
                channel: format!("interaction:{}", parts[2]),
                content: text("content"),
                components: body.get("components").cloned().unwrap_or(json!([])),
                allowed_mentions: body["allowed_mentions"].clone(),
                reply_to: None,
            };
            m.messages.push(msg.clone());
            Json(message_json(&msg)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}
