//! Driving the app as Slack does: signed payloads in the shapes Slack documents, posted to the
//! real endpoints, with the real Slack client talking to [`FakeSlack`]. People are Slack users:
//! bob, carol, dave, erin and mallory have a `slack_id` in the policy; alice is found by the
//! email on her Slack profile; `UNOBODY` is in the workspace but not in the policy.

use crate::{TestApp, fake_slack::FakeSlack};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SIGNING_SECRET: &str = "test-slack-signing-secret-42";
pub const BOT_TOKEN: &str = "xoxb-test-token";
pub const TEAM: &str = "T0ELEVATE";
pub const DB_CHANNEL: &str = "CDBAPPROVERS";
pub const PROD_CHANNEL: &str = "CPRODAPPROVERS";
pub const AUDIT_CHANNEL: &str = "CAUDIT";
pub const SECURITY_CHANNEL: &str = "CSECURITY";

/// The Slack user of each test person.
pub fn user(person: &str) -> String {
    match person {
        "nobody" => "UNOBODY".into(),
        p => format!("U{}", p.to_uppercase()),
    }
}

pub async fn start_fake() -> FakeSlack {
    let fake = FakeSlack::start(BOT_TOKEN, &[DB_CHANNEL, PROD_CHANNEL, AUDIT_CHANNEL, SECURITY_CHANNEL]).await;
    for p in ["alice", "bob", "carol", "dave", "erin", "mallory"] {
        fake.add_user(&user(p), TEAM, Some(&format!("{p}@example.com")));
    }
    fake.add_user("UNOBODY", TEAM, Some("nobody@example.com"));
    fake
}

/// The test policy plus Slack identities, approver channels and a `[slack]` section.
pub fn config(text: &str, slack_url: &str) -> String {
    // SAFETY of set_var: the same values every time, before any reader starts.
    unsafe {
        std::env::set_var("ELEVATE_TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET);
        std::env::set_var("ELEVATE_TEST_SLACK_BOT_TOKEN", BOT_TOKEN);
    }
    let mut text = text.replacen("[security]\n", &format!("[security]\nslack_channel = \"{SECURITY_CHANNEL}\"\n"), 1);
    for p in ["bob", "carol", "dave", "erin", "mallory"] {
        let head = format!("[persons.{p}]\n");
        text = text.replacen(&head, &format!("{head}slack_id = \"{}\"\n", user(p)), 1);
    }
    for (role, ch) in [("db", DB_CHANNEL), ("prod", PROD_CHANNEL), ("sandbox", DB_CHANNEL)] {
        let head = format!("[roles.{role}]\n");
        text = text.replacen(&head, &format!("{head}slack_channel = \"{ch}\"\n"), 1);
    }
    format!(
        "{text}\n[slack]\nteam_id = \"{TEAM}\"\nsigning_secret_env = \"ELEVATE_TEST_SLACK_SIGNING_SECRET\"\n\
         bot_token_env = \"ELEVATE_TEST_SLACK_BOT_TOKEN\"\naudit_channel = \"{AUDIT_CHANNEL}\"\napi_url = \"{slack_url}\"\n"
    )
}

/// `v0=` + hex HMAC-SHA256 of `v0:{ts}:{body}`, as Slack signs.
pub fn sign(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh `trigger_id` in Slack's shape: Slack gives every command and interaction its own,
/// and elevate acts once per trigger.
pub fn trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("13345224609.738474920.{n:032x}")
}

/// A slash command's body as Slack posts it (form-encoded, the documented fields), `/elevate`
/// typed by `user_id` in a general channel of `team`.
pub fn command_body(team: &str, user_id: &str, user_name: &str, text: &str) -> String {
    let form = [
        ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
        ("team_id", team),
        ("team_domain", "example"),
        ("channel_id", "CGENERAL"),
        ("channel_name", "general"),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", "/elevate"),
        ("text", text),
        ("api_app_id", "A0ELEVATE"),
        ("response_url", "https://hooks.slack.com/commands/T0ELEVATE/1/abc"),
        ("trigger_id", &trigger_id()),
    ];
    serde_urlencoded::to_string(form).expect("form")
}

pub fn now_ts() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// How a payload is signed, for the forgery tests.
#[derive(Clone, Copy)]
pub enum Signing<'a> {
    Good,
    Secret(&'a str),
    AgedSecs(i64),
    Missing,
}

/// Slack's answer: HTTP status and body (JSON, or `Null` when empty).
#[derive(Debug)]
pub struct SlackAnswer {
    pub status: u16,
    pub body: Value,
}

impl SlackAnswer {
    /// The ephemeral text of a slash command answer.
    pub fn text(&self) -> String {
        assert_eq!(self.status, 200, "{:?}", self.body);
        self.body["text"].as_str().unwrap_or("").to_string()
    }
}

impl TestApp {
    pub fn fake_slack(&self) -> &FakeSlack {
        self.slack.as_ref().expect("built with .slack()")
    }

    pub async fn slack_post(&self, path: &str, content_type: &str, body: String, signing: Signing<'_>) -> SlackAnswer {
        let (secret, age) = match signing {
            Signing::Good | Signing::Missing => (SIGNING_SECRET, 0),
            Signing::Secret(s) => (s, 0),
            Signing::AgedSecs(a) => (SIGNING_SECRET, a),
        };
        let ts = (now_ts() - age).to_string();
        let mut req = reqwest::Client::new().post(format!("{}{path}", self.base)).header("content-type", content_type);
        if !matches!(signing, Signing::Missing) {
            req = req.header("x-slack-request-timestamp", &ts).header("x-slack-signature", sign(secret, &ts, &body));
        }
        let resp = req.body(body).send().await.expect("app reachable");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        self.settle().await;
        SlackAnswer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// `/elevate …` typed by `person` in the db approvers' channel of our workspace.
    pub async fn slack_command(&self, person: &str, text: &str) -> SlackAnswer {
        self.slack_command_in(TEAM, person, text, Signing::Good).await
    }

    pub async fn slack_command_in(&self, team: &str, person: &str, text: &str, signing: Signing<'_>) -> SlackAnswer {
        let body = command_body(team, &user(person), person, text);
        self.slack_post("/slack/commands", "application/x-www-form-urlencoded", body, signing).await
    }

    /// Posts an interaction payload (`payload=<json>`).
    pub async fn slack_interaction(&self, payload: Value, signing: Signing<'_>) -> SlackAnswer {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.slack_post("/slack/interactions", "application/x-www-form-urlencoded", body, signing).await
    }

    /// `person` clicks the button `action` of request `id` on the message that carries it.
    pub async fn slack_click(&self, person: &str, action: &str, id: i64) -> SlackAnswer {
        self.slack_click_as(TEAM, person, action, id, Signing::Good).await
    }

    pub async fn slack_click_as(
        &self,
        team: &str,
        person: &str,
        action: &str,
        id: i64,
        signing: Signing<'_>,
    ) -> SlackAnswer {
        let payload = self.click_payload(team, person, action, id);
        self.slack_interaction(payload, signing).await
    }

    /// The `block_actions` payload of `person` (of `team`) clicking `action` of request `id`, to
    /// send more than once.
    pub fn click_payload(&self, team: &str, person: &str, action: &str, id: i64) -> Value {
        let (channel, ts) = self.message_with_button(action, id).unwrap_or((DB_CHANNEL.into(), "0".into()));
        Click { team, person, action, value: &id.to_string(), channel: &channel, ts: &ts, ephemeral: false }.payload()
    }

    /// `person` clicks a button whose value is `value` (a confirm button of an ephemeral answer).
    pub async fn slack_button(&self, person: &str, action: &str, value: &str) -> SlackAnswer {
        let click =
            Click { team: TEAM, person, action, value, channel: "CGENERAL", ts: "1548426417.000100", ephemeral: true };
        self.slack_interaction(click.payload(), Signing::Good).await
    }

    /// `person` submits a modal with these fields (`(block, value)`; `role` is a select).
    pub async fn slack_submit(
        &self,
        person: &str,
        callback: &str,
        metadata: &str,
        fields: &[(&str, &str)],
    ) -> SlackAnswer {
        self.slack_interaction(submission(person, callback, metadata, fields), Signing::Good).await
    }

    fn message_with_button(&self, action: &str, id: i64) -> Option<(String, String)> {
        let fake = self.fake_slack();
        let channels = [DB_CHANNEL.to_string(), PROD_CHANNEL.to_string(), "DUALICE".to_string()];
        channels.iter().flat_map(|c| fake.messages(c)).rev().find_map(|m| {
            let has = m.blocks.as_array().into_iter().flatten().any(|b| {
                b["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["action_id"] == action && e["value"].as_str() == Some(id.to_string().as_str()))
            });
            has.then(|| (m.channel.clone(), m.ts.clone()))
        })
    }

    /// The replies in the thread of request `id`'s card, oldest first.
    pub fn thread(&self, id: i64) -> Vec<String> {
        let card = self.card(id);
        self.fake_slack()
            .messages(&card.channel)
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(card.ts.as_str()))
            .map(|m| m.text)
            .collect()
    }

    /// The approval card of request `id`, as it stands now.
    pub fn card(&self, id: i64) -> crate::fake_slack::SlackMessage {
        let fake = self.fake_slack();
        [DB_CHANNEL, PROD_CHANNEL]
            .iter()
            .flat_map(|c| fake.messages(c))
            .find(|m| m.text.starts_with(&format!("Request #{id}:")))
            .unwrap_or_else(|| panic!("no card for #{id}"))
    }

    /// Waits for follow-ups sent after an acknowledgement (ephemeral refusals, DMs, deferred
    /// Discord answers).
    pub async fn settle(&self) {
        if let Some(s) = &self.app.slack {
            s.settle().await;
        }
        if let Some(d) = &self.app.discord {
            d.settle().await;
        }
    }

    /// Delivers every audit event so far to every notifier and feed channel, as the delivery
    /// loops would, retrying failed destinations at once (ignoring backoff and posting rates).
    /// Between retries a few seconds pass at the fake chat APIs only (not on the app's clock),
    /// as if the test waited out their rate limits.
    pub async fn deliver(&self) {
        for _ in 0..50 {
            if self.app.deliver_step(elevate_bot::feed::Mode::Drain).await.waiting == 0 {
                break;
            }
            for time in self.slack.iter().map(|s| &s.time).chain(self.discord.iter().map(|d| &d.time)) {
                time.pass(std::time::Duration::from_secs(5));
            }
        }
        self.settle().await;
    }

    /// Runs due work, then delivers what it caused.
    pub async fn tick(&self) {
        self.run_due().await;
        self.deliver().await;
    }

    /// The request number in an answer like "Request #3 for …".
    pub fn id_in(text: &str) -> i64 {
        let at = text.find('#').unwrap_or_else(|| panic!("no request number in {text:?}"));
        text[at + 1..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
    }
}

/// One button click, as Slack posts it (`block_actions`).
struct Click<'a> {
    team: &'a str,
    person: &'a str,
    action: &'a str,
    value: &'a str,
    channel: &'a str,
    ts: &'a str,
    ephemeral: bool,
}

impl Click<'_> {
    fn payload(&self) -> Value {
        json!({
            "type": "block_actions",
            "team": { "id": self.team, "domain": "example" },
            "user": { "id": user(self.person), "username": self.person, "team_id": self.team },
            "api_app_id": "A0ELEVATE",
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "trigger_id": trigger_id(),
            "container": { "type": "message", "message_ts": self.ts, "channel_id": self.channel, "is_ephemeral": self.ephemeral },
            "channel": { "id": self.channel, "name": "approvers" },
            "response_url": "https://hooks.slack.com/actions/T0ELEVATE/1/xyz",
            "actions": [{ "action_id": self.action, "block_id": "decide", "type": "button", "value": self.value,
                          "text": { "type": "plain_text", "text": self.action }, "action_ts": "1548426417.840180" }],
        })
    }
}

/// The `view_submission` payload of `person` submitting the modal `callback` with these fields
/// (`(block, value)`; `role` is a multi-select, `db,audit` for two), to send more than once.
pub fn submission(person: &str, callback: &str, metadata: &str, fields: &[(&str, &str)]) -> Value {
    let mut values = serde_json::Map::new();
    for (block, value) in fields {
        let v = if *block == "role" {
            // A multi-select: `db,audit` picks two options.
            let options: Vec<Value> =
                value.split(',').map(|v| json!({ "text": { "type": "plain_text", "text": v }, "value": v })).collect();
            json!({ "type": "multi_static_select", "selected_options": options })
        } else {
            json!({ "type": "plain_text_input", "value": value })
        };
        values.insert(block.to_string(), json!({ *block: v }));
    }
    json!({
        "type": "view_submission",
        "team": { "id": TEAM, "domain": "example" },
        "user": { "id": user(person), "username": person, "team_id": TEAM },
        "api_app_id": "A0ELEVATE",
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "trigger_id": trigger_id(),
        "view": { "id": "V0001", "team_id": TEAM, "type": "modal", "callback_id": callback,
                  "private_metadata": metadata, "hash": "156663117.cd33ad1f",
                  "title": { "type": "plain_text", "text": "elevate" }, "blocks": [],
                  "state": { "values": values } },
    })
}

impl TestApp {
    /// `person` opens elevate's App Home tab (the `app_home_opened` event Slack sends).
    pub async fn slack_open_home(&self, person: &str) {
        let event = json!({
            "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": TEAM, "api_app_id": "A0ELEVATE",
            "type": "event_callback", "event_id": format!("Ev{}", trigger_id().replace('.', "")),
            "event_time": 1_700_000_000, "authorizations": [],
            "event": { "type": "app_home_opened", "user": user(person), "channel": format!("D{}", user(person)),
                       "tab": "home", "event_ts": "1700000000.000100" },
        });
        let a = self.slack_post("/slack/events", "application/json", event.to_string(), Signing::Good).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        self.settle().await;
    }

    /// The App Home tab Slack would show `person` now, rendered as text.
    pub fn slack_home(&self, person: &str) -> String {
        let view = self.fake_slack().home(&user(person)).unwrap_or_else(|| panic!("no Home tab for {person}"));
        crate::render::slack_blocks(&view["blocks"])
    }

    /// `person` clicks a button of their Home tab: a `block_actions` payload from a view.
    pub async fn slack_home_click(&self, person: &str, action: &str, value: &str) -> SlackAnswer {
        let payload = json!({
            "type": "block_actions",
            "team": { "id": TEAM, "domain": "example" },
            "user": { "id": user(person), "username": person, "team_id": TEAM },
            "api_app_id": "A0ELEVATE", "token": "gIkuvaNzQIHg97ATvDxqgjtO", "trigger_id": trigger_id(),
            "container": { "type": "view", "view_id": "VHOME" },
            "view": { "id": "VHOME", "type": "home", "team_id": TEAM },
            "actions": [{ "action_id": action, "block_id": "home", "type": "button", "value": value,
                          "text": { "type": "plain_text", "text": action }, "action_ts": "1548426417.840180" }],
        });
        self.slack_interaction(payload, Signing::Good).await
    }
}
