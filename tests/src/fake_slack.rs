//! A fake of the Slack Web API on loopback, for the real slack-morphism client to talk to. It is
//! a small stateful model, not a stub: messages live in channels and must exist to be updated;
//! DM channels are opened before they are posted to; users have profiles; tokens are checked.
//! Errors come back the way Slack sends them (`200 {"ok": false, "error": …}`, or `429` with
//! `Retry-After`), and a test can script a fault for the next call of a method, remove the bot
//! from a channel, archive a channel, delete a message, or take the whole API down for a while.
//!
//! Rate limits are enforced as Slack documents them, on the fake's time ([`FakeTime`]):
//! `chat.postMessage` about one message per second per channel with a generous burst (Slack:
//! "special" limit), `chat.update` and `conversations.open` Tier 3 (50 per minute),
//! `users.info`, `chat.postEphemeral` and `views.open` Tier 4 (100 per minute). A call over its
//! limit gets `429` with `Retry-After` (whole seconds) and changes nothing.

use crate::fake_time::{Buckets, FakeTime, Limit, Outage};
use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::any,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex},
};

/// `chat.postMessage` per channel: one per second, bursts of this many allowed.
pub const POST_BURST: f64 = 30.0;
/// Tier 2: 20+ calls per minute (`usergroups.users.list`).
const TIER_2: Limit = Limit { burst: 20.0, per_second: 20.0 / 60.0 };
const TIER_3: Limit = Limit { burst: 50.0, per_second: 50.0 / 60.0 };
const TIER_4: Limit = Limit { burst: 100.0, per_second: 100.0 / 60.0 };

/// One call as the fake received it: the method and its arguments (JSON body or query).
#[derive(Debug, Clone)]
pub struct SlackCall {
    pub method: String,
    pub args: Value,
}

/// A fault scripted for the next call of a method.
#[derive(Debug, Clone)]
pub enum SlackFault {
    /// `429 Too Many Requests` with `Retry-After: secs`.
    RateLimited(u64),
    /// `{"ok": false, "error": code}`.
    Error(&'static str),
}

/// A message as it stands in a channel.
#[derive(Debug, Clone)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    /// The message this one replies to in a thread.
    pub thread_ts: Option<String>,
    /// When it was posted, on the fake's time.
    pub posted_at: DateTime<Utc>,
}

impl SlackMessage {
    /// All text of the message, blocks included, for assertions.
    pub fn all_text(&self) -> String {
        format!("{} {}", self.text, self.blocks)
    }

    /// `action_id`s of its buttons.
    pub fn buttons(&self) -> Vec<String> {
        let mut out = Vec::new();
        for b in self.blocks.as_array().into_iter().flatten() {
            for e in b["elements"].as_array().into_iter().flatten() {
                if e["type"] == "button" {
                    out.push(e["action_id"].as_str().unwrap_or("").to_string());
                }
            }
        }
        out
    }
}

#[derive(Default)]
struct Model {
    calls: Vec<SlackCall>,
    faults: BTreeMap<String, VecDeque<SlackFault>>,
    channels: BTreeSet<String>,
    messages: Vec<SlackMessage>,
    /// user id → (team, email)
    users: BTreeMap<String, (String, Option<String>)>,
    next_ts: u64,
    /// user id → `users.info` fields beyond id, team and email (`is_bot`, `deleted`, …).
    user_flags: BTreeMap<String, Value>,
    /// User id → the Home tab view last published for them (`views.publish`).
    homes: BTreeMap<String, Value>,
    /// User group id (`S…`) → its members, as `usergroups.users.list` lists them.
    usergroups: BTreeMap<String, Vec<String>>,
    buckets: Buckets,
    /// `chat.postMessage` limits set by a test for one channel.
    post_limits: BTreeMap<String, Limit>,
    /// Limits set by a test or bench in place of a method's documented tier.
    method_limits: BTreeMap<String, Limit>,
    /// Channels the bot is not a member of (`not_in_channel`).
    outside: BTreeSet<String>,
    archived: BTreeSet<String>,
    outage: Option<(DateTime<Utc>, Outage)>,
    /// 429s answered, by method.
    rate_limited: BTreeMap<String, usize>,
    /// When each rate-limited bucket said to come back.
    retry_at: BTreeMap<String, DateTime<Utc>>,
    /// Calls that came back before their `Retry-After` was over.
    early: usize,
}

/// The running fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeSlack {
    pub url: String,
    pub token: String,
    pub time: FakeTime,
    model: Arc<Mutex<Model>>,
}

impl FakeSlack {
    /// Starts the fake with these public channels; `url` is the Web API base (`…/api`).
    pub async fn start(token: &str, channels: &[&str]) -> FakeSlack {
        let model = Arc::new(Mutex::new(Model {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            next_ts: 1_700_000_000,
            ..Model::default()
        }));
        let fake = FakeSlack { url: String::new(), token: token.to_string(), time: FakeTime::default(), model };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let router = Router::new().route("/api/{method}", any(handle)).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeSlack { url, ..fake }
    }

    /// A workspace member, as `users.info` shows them.
    pub fn add_user(&self, id: &str, team: &str, email: Option<&str>) {
        self.model.lock().unwrap().users.insert(id.into(), (team.into(), email.map(String::from)));
    }

    /// Sets `users.info` fields of a user, as Slack documents them: `{"is_bot": true}`,
    /// `{"deleted": true}`, `{"is_restricted": true}`, `{"team_id": "TOTHER"}`, …
    pub fn set_user_flags(&self, id: &str, flags: Value) {
        self.model.lock().unwrap().user_flags.insert(id.into(), flags);
    }

    /// The App Home view last published for `user`, if any.
    pub fn home(&self, user: &str) -> Option<Value> {
        self.model.lock().unwrap().homes.get(user).cloned()
    }

    /// A user group (`S…`) and its members; `usergroups.users.list` of any other id answers
    /// `no_such_subteam`.
    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        self.model.lock().unwrap().usergroups.insert(id.into(), members.iter().map(|m| m.to_string()).collect());
    }

    /// The bot is not (or no longer) a member of `channel`: posting there answers
    /// `not_in_channel`.
    pub fn remove_bot(&self, channel: &str) {
        self.model.lock().unwrap().outside.insert(channel.into());
    }

    /// The channel is archived: posting there answers `is_archived`.
    pub fn archive(&self, channel: &str) {
        self.model.lock().unwrap().archived.insert(channel.into());
    }

    /// Someone deleted the message: updating it answers `message_not_found`.
    pub fn delete_message(&self, channel: &str, ts: &str) {
        self.model.lock().unwrap().messages.retain(|m| !(m.channel == channel && m.ts == ts));
    }

    /// Every call fails this way until the fake's time reaches `until`.
    pub fn go_down(&self, until: DateTime<Utc>, how: Outage) {
        self.model.lock().unwrap().outage = Some((until, how));
    }

    /// A tighter `chat.postMessage` limit for one channel.
    pub fn limit_posts(&self, channel: &str, limit: Limit) {
        self.model.lock().unwrap().post_limits.insert(channel.into(), limit);
    }

    /// Another limit for `method` than its documented tier (a bench that measures something
    /// else than Slack's limits).
    pub fn limit_method(&self, method: &str, limit: Limit) {
        self.model.lock().unwrap().method_limits.insert(method.into(), limit);
    }

    /// Calls made again before the `Retry-After` of their 429 was over.
    pub fn early_retries(&self) -> usize {
        self.model.lock().unwrap().early
    }

    /// 429s answered so far to `method`.
    pub fn rate_limited(&self, method: &str) -> usize {
        self.model.lock().unwrap().rate_limited.get(method).copied().unwrap_or(0)
    }

    pub fn fail_next(&self, method: &str, fault: SlackFault) {
        self.model.lock().unwrap().faults.entry(method.into()).or_default().push_back(fault);
    }

    pub fn calls(&self, method: &str) -> Vec<SlackCall> {
        self.model.lock().unwrap().calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    /// Messages in a channel, oldest first, as they stand now.
    pub fn messages(&self, channel: &str) -> Vec<SlackMessage> {
        self.model.lock().unwrap().messages.iter().filter(|m| m.channel == channel).cloned().collect()
    }

    /// Every text ever sent to Slack, for "never unescaped" checks.
    pub fn everything_sent(&self) -> String {
        self.model.lock().unwrap().calls.iter().map(|c| c.args.to_string()).collect::<Vec<_>>().join("\n")
    }

    /// DMs to a user (their DM channel is `D` + user id).
    pub fn dms(&self, user: &str) -> Vec<String> {
        self.messages(&format!("D{user}")).into_iter().map(|m| m.all_text()).collect()
    }

    /// Ephemeral messages shown to a user.
    pub fn ephemerals(&self, user: &str) -> Vec<String> {
        self.calls("chat.postEphemeral")
            .into_iter()
            .filter(|c| c.args["user"] == user)
            .map(|c| c.args["text"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn ok(body: Value) -> Response {
    let mut body = body;
    body["ok"] = json!(true);
    Json(body).into_response()
}

fn error(code: &str) -> Response {
    Json(json!({ "ok": false, "error": code })).into_response()
}

fn too_many(retry_after: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", retry_after.to_string())],
        Json(json!({ "ok": false, "error": "ratelimited" })),
    )
        .into_response()
}

/// The bucket and limit a call is counted against, as Slack documents them.
fn limit_of(m: &Model, method: &str, args: &Value) -> Option<(String, Limit)> {
    match method {
        "chat.postMessage" => {
            let channel = args["channel"].as_str().unwrap_or("");
            let limit = m.post_limits.get(channel).copied().unwrap_or(Limit { burst: POST_BURST, per_second: 1.0 });
            Some((format!("{method}:{channel}"), limit))
        }
        _ if m.method_limits.contains_key(method) => Some((method.to_string(), m.method_limits[method])),
        "chat.update" | "conversations.open" => Some((method.to_string(), TIER_3)),
        "users.info" | "chat.postEphemeral" | "views.open" | "views.publish" => Some((method.to_string(), TIER_4)),
        "usergroups.users.list" => Some((method.to_string(), TIER_2)),
        _ => None,
    }
}

fn args_of(query: Option<String>, body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    let text = if body.is_empty() { query.unwrap_or_default() } else { body.to_string() };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&text).unwrap_or_default();
    Value::Object(pairs.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

async fn handle(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let args = args_of(query, &body);
    let mut m = fake.model.lock().unwrap();
    m.calls.push(SlackCall { method: method.clone(), args: args.clone() });
    let now = fake.time.now();
    if let Some(fault) = m.faults.get_mut(&method).and_then(|q| q.pop_front()) {
        return match fault {
            SlackFault::RateLimited(secs) => {
                *m.rate_limited.entry(method.clone()).or_default() += 1;
                too_many(secs)
            }
            SlackFault::Error(code) => error(code),
        };
    }
    match m.outage {
        Some((until, how)) if now < until => {
            return match how {
                Outage::ServerError => (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
                Outage::Timeout => error("request_timeout"),
            };
        }
        _ => {}
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Bearer {}", fake.token) {
        return error("invalid_auth");
    }
    if let Some((key, limit)) = limit_of(&m, &method, &args) {
        if m.retry_at.get(&key).is_some_and(|at| now < *at) {
            m.early += 1;
        }
        if let Err(wait) = m.buckets.take(&key, limit, now) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            *m.rate_limited.entry(method.clone()).or_default() += 1;
            m.retry_at.insert(key, now + chrono::Duration::seconds(secs as i64));
            return too_many(secs);
        }
    }
    let s = |k: &str| args[k].as_str().unwrap_or("").to_string();
    match method.as_str() {
        "chat.postMessage" => {
            let channel = s("channel");
            if !m.channels.contains(&channel) {
                return error("channel_not_found");
            }
            if m.archived.contains(&channel) {
                return error("is_archived");
            }
            if m.outside.contains(&channel) {
                return error("not_in_channel");
            }
            m.next_ts += 1;
            let ts = format!("{}.000100", m.next_ts);
            let msg = SlackMessage {
                channel: channel.clone(),
                ts: ts.clone(),
                text: s("text"),
                blocks: args["blocks"].clone(),
                thread_ts: args["thread_ts"].as_str().map(String::from),
                posted_at: now,
            };
            m.messages.push(msg);
            ok(json!({ "channel": channel, "ts": ts, "message": { "type": "message", "ts": ts, "text": s("text") } }))
        }
        "chat.update" => {
            let (channel, ts) = (s("channel"), s("ts"));
            let Some(msg) = m.messages.iter_mut().find(|x| x.channel == channel && x.ts == ts) else {
                return error("message_not_found");
            };
            msg.text = s("text");
            msg.blocks = args["blocks"].clone();
            ok(json!({ "channel": channel, "ts": ts, "text": s("text"), "message": { "text": s("text") } }))
        }
        "chat.postEphemeral" => {
            if !m.channels.contains(&s("channel")) {
                return error("channel_not_found");
            }
            ok(json!({ "message_ts": "1700000000.000001" }))
        }
        "views.open" => {
            let trigger = s("trigger_id");
            if trigger.is_empty() || trigger.starts_with("expired") {
                return error("expired_trigger_id");
            }
            let mut view = args["view"].clone();
            view["id"] = json!("V0001");
            view["team_id"] = json!("T0ELEVATE");
            view["hash"] = json!("h1");
            view["state"] = json!({ "values": {} });
            ok(json!({ "view": view }))
        }
        "users.info" => match m.users.get(&s("user")) {
            Some((team, email)) => {
                let mut user = json!({ "id": s("user"), "team_id": team, "deleted": false, "is_bot": false,
                    "is_app_user": false, "is_restricted": false, "is_ultra_restricted": false,
                    "profile": { "email": email } });
                for (k, v) in m.user_flags.get(&s("user")).and_then(Value::as_object).into_iter().flatten() {
                    user[k] = v.clone();
                }
                ok(json!({ "user": user }))
            }
            None => error("user_not_found"),
        },
        "views.publish" => {
            let user = s("user_id");
            let view = args["view"].clone();
            let view = if view.is_string() {
                serde_json::from_str(view.as_str().unwrap_or("")).unwrap_or(Value::Null)
            } else {
                view
            };
            if !m.users.contains_key(&user) {
                return error("user_not_found");
            }
            if view["type"] != "home" || !view["blocks"].is_array() {
                return error("invalid_arguments");
            }
            if view["blocks"].as_array().map_or(0, |b| b.len()) > 100 {
                return error("invalid_blocks");
            }
            m.homes.insert(user, view.clone());
            ok(json!({ "view": view }))
        }
        "usergroups.users.list" => match m.usergroups.get(&s("usergroup")) {
            Some(users) => ok(json!({ "users": users })),
            None => error("no_such_subteam"),
        },
        "conversations.open" => {
            let user = match &args["users"] {
                Value::Array(a) => a.first().and_then(|u| u.as_str()).unwrap_or("").to_string(),
                Value::String(u) => u.split(',').next().unwrap_or("").to_string(),
                _ => String::new(),
            };
            if !m.users.contains_key(&user) {
                return error("user_not_found");
            }
            let channel = format!("D{user}");
            m.channels.insert(channel.clone());
            ok(json!({ "channel": { "id": channel } }))
        }
        _ => error("unknown_method"),
    }
}
