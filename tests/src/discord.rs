//! Driving the app as Discord does: interaction payloads in Discord's documented JSON shapes,
//! signed with a fixed Ed25519 test key and posted to the real endpoint, with serenity's real
//! `Http` client talking to [`FakeDiscord`]. Every test person has a `discord_id`; the `discord-oncall`
//! group is backed by the Discord role [`ONCALL_ROLE`] and approves the `db-ro` role, so who
//! may approve it depends on the roles a click carries.

use crate::{TestApp, fake_discord::FakeDiscord};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

pub const APP_ID: &str = "1100000000000000001";
pub const GUILD: &str = "1200000000000000001";
pub const OTHER_GUILD: &str = "1200000000000000666";
pub const BOT_TOKEN: &str = "discord-test-bot-token";
pub const DB_CHANNEL: &str = "1300000000000000001";
pub const PROD_CHANNEL: &str = "1300000000000000002";
pub const AUDIT_CHANNEL: &str = "1300000000000000003";
pub const SECURITY_CHANNEL: &str = "1300000000000000004";
/// Where people type `/elevate`.
pub const GENERAL_CHANNEL: &str = "1300000000000000009";
/// The Discord role that backs the `discord-oncall` approver group.
pub const ONCALL_ROLE: &str = "1400000000000000001";
/// The fixed test key: Discord holds the private half, the app is configured with the public.
const TEST_KEY: [u8; 32] = [7; 32];

pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&TEST_KEY)
}

pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// The Discord user of each test person.
pub fn user(person: &str) -> String {
    let n = match person {
        "alice" => 1,
        "bob" => 2,
        "carol" => 3,
        "dave" => 4,
        "erin" => 5,
        "mallory" => 6,
        _ => 99,
    };
    format!("15000000000000000{n:02}")
}

pub async fn start_fake() -> FakeDiscord {
    let fake =
        FakeDiscord::start(BOT_TOKEN, APP_ID, &[DB_CHANNEL, PROD_CHANNEL, AUDIT_CHANNEL, SECURITY_CHANNEL]).await;
    for p in ["alice", "bob", "carol", "dave", "erin", "mallory", "nobody"] {
        fake.add_user(&user(p));
    }
    fake
}

/// The test policy plus Discord identities, approver channels, the role-backed `discord-oncall` group
/// and a `[discord]` section.
pub fn config(text: &str, api_url: &str) -> String {
    // SAFETY of set_var: the same value every time, before any reader starts.
    unsafe { std::env::set_var("ELEVATE_TEST_DISCORD_BOT_TOKEN", BOT_TOKEN) };
    let mut text = text.replacen("[security]\n", &format!("[security]\ndiscord_channel = \"{SECURITY_CHANNEL}\"\n"), 1);
    for p in ["alice", "bob", "carol", "dave", "erin", "mallory"] {
        let head = format!("[persons.{p}]\n");
        text = text.replacen(&head, &format!("{head}discord_id = \"{}\"\n", user(p)), 1);
    }
    for (role, ch) in [("db", DB_CHANNEL), ("db-ro", DB_CHANNEL), ("prod", PROD_CHANNEL), ("sandbox", DB_CHANNEL)] {
        let head = format!("[roles.{role}]\n");
        text = text.replacen(&head, &format!("{head}discord_channel = \"{ch}\"\n"), 1);
    }
    text = text.replacen(
        "[roles.db-ro]\n",
        &format!("[groups.discord-oncall]\ndiscord_role = \"{ONCALL_ROLE}\"\n\n[roles.db-ro]\n"),
        1,
    );
    let approvers = "approvers = [\"approvers\"]\n";
    let at = text.find("[roles.db-ro]").expect("db-ro role");
    let (head, tail) = text.split_at(at);
    let text = format!("{head}{}", tail.replacen(approvers, "approvers = [\"discord-oncall\"]\n", 1));
    format!(
        "{text}\n[discord]\napplication_id = \"{APP_ID}\"\npublic_key = \"{}\"\n\
         bot_token_env = \"ELEVATE_TEST_DISCORD_BOT_TOKEN\"\nguild_id = \"{GUILD}\"\n\
         audit_channel = \"{AUDIT_CHANNEL}\"\napi_url = \"{api_url}\"\n",
        public_key_hex()
    )
}

/// How an interaction is signed, for the forgery tests.
#[derive(Clone, Copy)]
pub enum Signing {
    Good,
    /// Signed by a key that is not the application's.
    WrongKey,
    /// Signed correctly, this many seconds ago.
    AgedSecs(u64),
    Missing,
    /// Signed correctly, then changed on the way (a byte appended).
    Tampered,
}

/// The endpoint's answer: HTTP status and body (`Null` when not JSON).
#[derive(Debug)]
pub struct DiscordAnswer {
    pub status: u16,
    pub body: Value,
}

impl DiscordAnswer {
    /// The interaction response type (1 PONG, 4 message, 5 deferred, 6 ack, 8 choices, 9 modal).
    pub fn kind(&self) -> u64 {
        assert_eq!(self.status, 200, "{:?}", self.body);
        self.body["type"].as_u64().unwrap_or(0)
    }

    /// The text of an ephemeral answer (asserts it is one, and that it pings nobody).
    pub fn text(&self) -> String {
        assert_eq!(self.kind(), 4, "{:?}", self.body);
        assert_eq!(self.body["data"]["flags"], 64, "ephemeral: {:?}", self.body);
        assert_eq!(self.body["data"]["allowed_mentions"]["parse"], json!([]), "{:?}", self.body);
        self.body["data"]["content"].as_str().unwrap_or("").to_string()
    }
}

/// Who clicks or types: a person, in a guild, holding some Discord roles.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub person: &'a str,
    pub guild: Option<&'a str>,
    pub roles: &'a [&'a str],
}

impl<'a> Member<'a> {
    pub fn of(person: &'a str) -> Self {
        Member { person, guild: Some(GUILD), roles: &[] }
    }
    pub fn with_roles(self, roles: &'a [&'a str]) -> Self {
        Member { roles, ..self }
    }
    pub fn in_guild(self, guild: &'a str) -> Self {
        Member { guild: Some(guild), ..self }
    }
    /// In a DM with the bot: no guild, no member, just the user.
    pub fn in_dm(self) -> Self {
        Member { guild: None, ..self }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// An interaction of `kind` with `data`, from `who`, as Discord posts it.
pub fn interaction(kind: u64, who: Member<'_>, data: Value, message: Option<Value>) -> Value {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let u = json!({ "id": user(who.person), "username": who.person, "discriminator": "0",
                    "global_name": who.person, "avatar": null });
    let mut p = json!({
        "id": format!("16000000000000{n:05}"), "application_id": APP_ID, "type": kind,
        "token": format!("interaction-token-{n}"), "version": 1, "data": data,
        "app_permissions": "2248473465835073", "locale": "en-US", "entitlements": [],
    });
    match who.guild {
        Some(g) => {
            p["guild_id"] = json!(g);
            p["guild_locale"] = json!("en-US");
            p["channel_id"] = json!(GENERAL_CHANNEL);
            p["context"] = json!(0);
            p["member"] = json!({ "user": u, "roles": who.roles, "joined_at": "2025-01-06T10:00:00.000000+00:00",
                "deaf": false, "mute": false, "flags": 0, "pending": false, "permissions": "2248473465835073",
                "nick": null, "avatar": null, "premium_since": null });
        }
        None => {
            p["user"] = u;
            p["channel_id"] = json!("1300000000000000777");
            p["context"] = json!(1);
        }
    }
    if let Some(m) = message {
        p["message"] = m;
    }
    p
}

/// The interaction of `who` typing `/elevate sub option:value …`, to send more than once.
pub fn command(who: Member<'_>, sub: &str, options: &[(&str, Value)]) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .map(|(name, v)| json!({ "name": name, "type": if v.is_number() { 4 } else { 3 }, "value": v }))
        .collect();
    let data = json!({ "id": "1700000000000000001", "name": "elevate", "type": 1, "guild_id": GUILD,
                       "options": [{ "name": sub, "type": 1, "options": opts }] });
    interaction(2, who, data, None)
}

impl TestApp {
    pub fn fake_discord(&self) -> &FakeDiscord {
        self.discord.as_ref().expect("built with .discord()")
    }

    /// Posts a raw body to the interactions endpoint, signed as asked.
    pub async fn discord_post(&self, body: String, signing: Signing) -> DiscordAnswer {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let (key, ts) = match signing {
            Signing::WrongKey => (SigningKey::from_bytes(&[9; 32]), now),
            Signing::AgedSecs(a) => (signing_key(), now - a),
            Signing::Good | Signing::Missing | Signing::Tampered => (signing_key(), now),
        };
        let ts = ts.to_string();
        let sig = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
        let mut req = reqwest::Client::new()
            .post(format!("{}/discord/interactions", self.base))
            .header("content-type", "application/json");
        if !matches!(signing, Signing::Missing) {
            req = req.header("x-signature-ed25519", sig).header("x-signature-timestamp", ts);
        }
        let body = if matches!(signing, Signing::Tampered) { format!("{body} ") } else { body };
        let resp = req.body(body).send().await.expect("app reachable");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        self.settle().await;
        DiscordAnswer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    pub async fn discord_send(&self, payload: Value) -> DiscordAnswer {
        self.discord_post(payload.to_string(), Signing::Good).await
    }

    /// `/elevate sub option:value …` typed by `who`.
    pub async fn discord_command_as(&self, who: Member<'_>, sub: &str, options: &[(&str, Value)]) -> DiscordAnswer {
        self.discord_send(command(who, sub, options)).await
    }

    pub async fn discord_command(&self, person: &str, sub: &str, options: &[(&str, Value)]) -> DiscordAnswer {
        self.discord_command_as(Member::of(person), sub, options).await
    }

    /// `/elevate request role:… duration:… reason:…` by `person`; returns the request number.
    pub async fn discord_request(&self, person: &str, role: &str, duration: &str, reason: &str) -> i64 {
        let opts = [("role", json!(role)), ("duration", json!(duration)), ("reason", json!(reason))];
        TestApp::id_in(&self.discord_command(person, "request", &opts).await.text())
    }

    /// `who` clicks the button `custom_id` on the message that carries it.
    pub async fn discord_click_as(&self, who: Member<'_>, custom_id: &str) -> DiscordAnswer {
        self.discord_send(self.click(who, custom_id)).await
    }

    /// The interaction of `who` clicking `custom_id` on the message that carries it, to send
    /// more than once.
    pub fn click(&self, who: Member<'_>, custom_id: &str) -> Value {
        let message =
            self.fake_discord().all_messages().into_iter().rev().find(|m| m.buttons().iter().any(|b| b == custom_id));
        let message = message.map(|m| {
            json!({ "id": m.id, "channel_id": m.channel, "content": m.content,
            "components": m.components, "type": 0 })
        });
        let data = json!({ "custom_id": custom_id, "component_type": 2 });
        interaction(3, who, data, message)
    }

    pub async fn discord_click(&self, person: &str, custom_id: &str) -> DiscordAnswer {
        self.discord_click_as(Member::of(person), custom_id).await
    }

    /// `who` submits the modal `custom_id` with these text inputs.
    pub async fn discord_submit_as(&self, who: Member<'_>, custom_id: &str, fields: &[(&str, &str)]) -> DiscordAnswer {
        let rows: Vec<Value> = fields
            .iter()
            .map(|(id, v)| json!({ "type": 1, "components": [{ "type": 4, "custom_id": id, "value": v }] }))
            .collect();
        self.discord_send(interaction(5, who, json!({ "custom_id": custom_id, "components": rows }), None)).await
    }

    /// `who` has typed `typed` into the role option of `/elevate request`.
    pub async fn discord_autocomplete(&self, who: Member<'_>, typed: &str) -> Vec<String> {
        let data = json!({ "id": "1700000000000000001", "name": "elevate", "type": 1, "options": [{ "name": "request",
            "type": 1, "options": [{ "name": "role", "type": 3, "value": typed, "focused": true }] }] });
        let answer = self.discord_send(interaction(4, who, data, None)).await;
        assert_eq!(answer.kind(), 8, "{:?}", answer.body);
        answer.body["data"]["choices"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap().into()).collect()
    }

    /// The approval message of request `id`, as it stands now.
    pub fn discord_card(&self, id: i64) -> crate::fake_discord::FakeMessage {
        let fake = self.fake_discord();
        [DB_CHANNEL, PROD_CHANNEL]
            .iter()
            .flat_map(|c| fake.messages(c))
            .find(|m| m.content.starts_with(&format!("**Request #{id}:")))
            .unwrap_or_else(|| panic!("no approval message for #{id}"))
    }

    /// The replies to request `id`'s approval message, oldest first.
    pub fn discord_replies(&self, id: i64) -> Vec<String> {
        let card = self.discord_card(id);
        let fake = self.fake_discord();
        fake.messages(&card.channel)
            .into_iter()
            .filter(|m| m.reply_to.as_deref() == Some(card.id.as_str()))
            .map(|m| m.content)
            .collect()
    }

    /// The DMs `person` got, as text.
    pub fn discord_dms(&self, person: &str) -> Vec<String> {
        self.fake_discord().dms(&user(person)).into_iter().map(|m| m.content).collect()
    }
}
