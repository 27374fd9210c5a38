//! Delivery: how soon approvers see a card while another role's channel refuses every call and
//! the audit feed drains a backlog, all against the fake Slack's enforced rate limits (about one
//! `chat.postMessage` per second per channel, 429 with `Retry-After` beyond it).
//!
//! A first server without Slack records 1,000 requests for the `broken` role (whose channel
//! the bot is not in); a second server on the same database starts with Slack, so its feed
//! begins 1,000 events behind and every one of those cards fails for good. At once, requests
//! arrive at 10 per second for twenty healthy roles (one channel each), plus 2 per second for
//! the broken one. Card latency is from the request's answer to the card's arrival at the fake.

use crate::{
    load::{closed_loop, open_loop, percentile},
    node::{self, Node, NodeConfig},
    report::{Bench, Row, ms},
};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use elevate_tests::fake_slack::FakeSlack;
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

const BACKLOG: usize = 1000;
const HEALTHY_ROLES: usize = 20;
const RATE: u32 = 12;
const BROKEN_CHANNEL: &str = "CBENCHBROKEN";

/// Each healthy request as answered: its id, its card's channel, when the answer came.
type Answered = Vec<(i64, String, DateTime<Utc>)>;

fn role(i: usize) -> (String, String) {
    (format!("r{i:02}"), format!("CBENCHR{i:02}"))
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let secs = if b.quick { 10 } else { 30 };
    let url = b.sqlite_url("delivery");
    let mut roles: Vec<(String, String)> = (0..HEALTHY_ROLES).map(role).collect();
    roles.push(("broken".into(), BROKEN_CHANNEL.into()));
    let mut channels: Vec<&str> = roles.iter().map(|(_, c)| c.as_str()).collect();
    channels.extend([node::APPROVAL_CHANNEL, node::AUDIT_CHANNEL]);
    let slack = FakeSlack::start(node::SLACK_BOT_TOKEN, &channels).await;
    slack.remove_bot(BROKEN_CHANNEL);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;

    // The backlog, recorded while no chat platform was configured.
    let quiet = NodeConfig { requesters: 200, extra_roles: roles.clone(), ..NodeConfig::new(&url) };
    let first = Node::start(&b.elevate, b.dir.path(), "delivery-backlog", &quiet).await?;
    let base = first.base.clone();
    let h = http.clone();
    closed_loop(BACKLOG, 16, move |i| {
        let (h, base) = (h.clone(), base.clone());
        async move {
            request(&h, &base, &node::requester(i % 200), "broken", i).await?;
            Ok(())
        }
    })
    .await?;
    first.stop().await;

    // The same database with Slack: 1,000 events behind, and a channel that refuses everything.
    let cfg = NodeConfig { slack_api: Some(slack.url.clone()), ..quiet };
    let server = Node::start(&b.elevate, b.dir.path(), "delivery", &cfg).await?;
    let t0 = Utc::now();
    println!("  {RATE} req/s for {secs} s (10 to {HEALTHY_ROLES} healthy roles, 2 to `broken`); feed {BACKLOG} behind");
    let answered: Arc<Mutex<Answered>> = Arc::default();
    let (base, h, seen) = (server.base.clone(), http.clone(), answered.clone());
    let out = open_loop(RATE, Duration::from_secs(secs), move |i| {
        let (h, base, seen) = (h.clone(), base.clone(), seen.clone());
        let i = i as usize;
        async move {
            let (role, channel) =
                if i % 6 == 5 { ("broken".into(), BROKEN_CHANNEL.into()) } else { role(i % HEALTHY_ROLES) };
            let id =
                request(&h, &base, &node::requester(i % 200), &role, BACKLOG + i).await.map_err(|e| e.to_string())?;
            if channel != BROKEN_CHANNEL {
                seen.lock().unwrap().push((id, channel, Utc::now()));
            }
            Ok(())
        }
    })
    .await;
    if out.failed > 0 {
        bail!("{} of {} requests failed: {}", out.failed, out.sent, out.first_failure.unwrap_or_default());
    }

    // Every healthy card, and the whole backlog in the feed, within a minute.
    let answered = answered.lock().unwrap().clone();
    let deadline = Utc::now() + chrono::Duration::seconds(60);
    let (latencies, drained) = loop {
        let lat = card_latencies(&slack, &answered);
        let drained = feed_drained_at(&slack, BACKLOG);
        if (lat.len() == answered.len() && drained.is_some()) || Utc::now() > deadline {
            break (lat, drained);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    server.stop().await;
    if latencies.len() < answered.len() {
        bail!("only {} of {} cards were posted within a minute", latencies.len(), answered.len());
    }
    let drain = drained.context("the feed did not post the whole backlog within a minute")?;
    let drain = (drain - t0).to_std().unwrap_or_default();
    let feed_messages = slack.messages(node::AUDIT_CHANNEL).len();
    let refused = slack.calls("chat.postMessage").iter().filter(|c| c.args["channel"] == BROKEN_CHANNEL).count();
    let (p50, p99, max) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0), percentile(&latencies, 100.0));
    println!(
        "    cards {}: p50 {}, p99 {}, max {}; feed drained in {:.1} s in {feed_messages} messages; \
         {refused} refused posts to `broken`; 429s answered {}, retried early {}",
        latencies.len(),
        ms(p50),
        ms(p99),
        ms(max),
        drain.as_secs_f64(),
        slack.rate_limited("chat.postMessage"),
        slack.early_retries()
    );
    b.row(Row {
        scenario: "delivery",
        figure: format!(
            "card visible after the answer, {:.0} req/s to {HEALTHY_ROLES} channels + 2/s to one refusing every \
             call, feed draining {BACKLOG}, SQLite: p99 (p50 {}, max {})",
            out.achieved_rate() * 10.0 / 12.0,
            ms(p50),
            ms(max)
        ),
        measured: ms(p99),
        target: "p99 ≤ 1 s".into(),
        floor: String::new(),
        met: Some(p99 <= Duration::from_secs(1)),
    });
    b.row(Row {
        scenario: "delivery",
        figure: format!(
            "audit feed drains a {BACKLOG}-event backlog within Slack's limits ({feed_messages} messages, {} 429s \
             answered, {} early retries)",
            slack.rate_limited("chat.postMessage"),
            slack.early_retries()
        ),
        measured: format!("{:.1} s", drain.as_secs_f64()),
        target: "≤ 30 s".into(),
        floor: String::new(),
        met: Some(drain <= Duration::from_secs(30) && slack.early_retries() == 0),
    });
    Ok(())
}

/// Creates a request through the API; returns its id.
async fn request(http: &reqwest::Client, base: &str, person: &str, role: &str, i: usize) -> anyhow::Result<i64> {
    let body = json!({ "role": role, "duration": "1h", "reason": format!("INC-{i} bench delivery") });
    let resp = http.post(format!("{base}/api/v1/requests")).bearer_auth(node::token(person)).json(&body).send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("HTTP {status}: {v}");
    }
    v["id"].as_i64().context("no id in the answer")
}

/// From each answer to its card at the fake, for the cards posted so far.
fn card_latencies(slack: &FakeSlack, answered: &[(i64, String, DateTime<Utc>)]) -> Vec<Duration> {
    let mut posted = std::collections::HashMap::new();
    for (_, channel, _) in answered {
        if posted.contains_key(channel) {
            continue;
        }
        let msgs = slack.messages(channel);
        posted.insert(channel.clone(), msgs);
    }
    answered
        .iter()
        .filter_map(|(id, channel, at)| {
            let prefix = format!("Request #{id}:");
            let card = posted[channel].iter().find(|m| m.text.starts_with(&prefix))?;
            Some((card.posted_at - *at).to_std().unwrap_or_default())
        })
        .collect()
}

/// When the feed message holding line `n` was posted, once it has been.
fn feed_drained_at(slack: &FakeSlack, n: usize) -> Option<DateTime<Utc>> {
    let mut lines = 0;
    for m in slack.messages(node::AUDIT_CHANNEL) {
        lines += m.text.lines().count();
        if lines >= n {
            return Some(m.posted_at);
        }
    }
    None
}
