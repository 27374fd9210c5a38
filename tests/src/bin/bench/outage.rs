//! PostgreSQL stopped under a running `elevate serve`: how long an API call, a signed Slack
//! command and `/readyz` take to answer, the first call after the stop (which finds the database
//! away) and the calls after it; then how long after the database is back `/readyz` is 200
//! again. The database is a private server (`PgInstance`), never the shared one.

use crate::{
    node::{self, Node, NodeConfig},
    report::{Bench, Row, ms},
};
use anyhow::{Context, bail};
use elevate_tests::pg_instance::PgInstance;
use std::time::{Duration, Instant};

const CALLS: usize = 20;

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let pg = PgInstance::start().context("no PostgreSQL tools (initdb, pg_ctl) to run a private server")?;
    let slack = elevate_tests::fake_slack::FakeSlack::start(
        node::SLACK_BOT_TOKEN,
        &[node::APPROVAL_CHANNEL, node::AUDIT_CHANNEL],
    )
    .await;
    let person = node::requester(0);
    slack.add_user(&node::slack_id(&person), node::SLACK_TEAM, None);
    let cfg = NodeConfig { slack_api: Some(slack.url.clone()), ..NodeConfig::new(&pg.url) };
    let server = Node::start(&b.elevate, b.dir.path(), "outage", &cfg).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let api = |i: usize| {
        http.post(format!("{}/api/v1/requests", server.base)).bearer_auth(node::token(&person)).json(
            &serde_json::json!({ "role": node::ROLE, "duration": "1h", "reason": format!("INC-{i} outage bench") }),
        )
    };
    let chat = |i: usize| {
        let text = format!("{} 1h INC-{i} outage bench", node::ROLE);
        let body = elevate_tests::slack::command_body(node::SLACK_TEAM, &node::slack_id(&person), &person, &text);
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = elevate_tests::slack::sign(node::SLACK_SIGNING_SECRET, &ts, &body);
        http.post(format!("{}/slack/commands", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
    };
    let readyz = || http.get(format!("{}/readyz", server.base));
    let status = api(0).send().await?.status();
    if status.as_u16() != 201 {
        bail!("a request with the database up answered {status}");
    }

    pg.stop();
    let timed = |req: reqwest::RequestBuilder, want: u16| async move {
        let t = Instant::now();
        let resp = req.send().await?;
        let (status, text) = (resp.status().as_u16(), resp.text().await?);
        let took = t.elapsed();
        if status != want || (want == 200 && !text.contains("cannot reach its database")) {
            bail!("with the database stopped: HTTP {status} {text}");
        }
        anyhow::Ok(took)
    };
    let first = timed(api(1), 503).await?;
    let (mut apis, mut chats, mut readies) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..CALLS {
        apis.push(timed(api(i + 2), 503).await?);
        chats.push(timed(chat(i), 200).await?);
        readies.push(timed(readyz(), 503).await?);
    }
    let t = Instant::now();
    pg.start_again();
    let restart = t.elapsed();
    let t = Instant::now();
    while !readyz().send().await.is_ok_and(|r| r.status().is_success()) {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("not ready 30 s after the database came back");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = t.elapsed();
    let status = api(99).send().await?.status();
    server.stop().await;
    if status.as_u16() != 201 {
        bail!("a request after the database came back answered {status}");
    }
    let max = |v: &[Duration]| v.iter().copied().max().unwrap_or_default();
    println!(
        "    first {}, API max {}, chat max {}, readyz max {}; pg_ctl start {}, ready again {} after",
        ms(first),
        ms(max(&apis)),
        ms(max(&chats)),
        ms(max(&readies)),
        ms(restart),
        ms(back)
    );
    let slowest = first.max(max(&apis)).max(max(&chats));
    b.row(Row {
        scenario: "outage",
        figure: format!(
            "PostgreSQL stopped: slowest answer of the first API call ({}) and {CALLS} each of API `POST /requests` (max {}) and signed Slack `/elevate` (max {}), all 503 / \"cannot reach its database\"",
            ms(first),
            ms(max(&apis)),
            ms(max(&chats))
        ),
        measured: ms(slowest),
        target: "≤ 2 s".into(),
        floor: String::new(),
        met: Some(slowest <= Duration::from_secs(2)),
    });
    b.row(Row {
        scenario: "outage",
        figure: format!("`/readyz` with PostgreSQL stopped: slowest of {CALLS} (all 503)"),
        measured: ms(max(&readies)),
        target: "≤ 1 s".into(),
        floor: String::new(),
        met: Some(max(&readies) <= Duration::from_secs(1)),
    });
    b.row(Row {
        scenario: "outage",
        figure: "PostgreSQL back (`pg_ctl start` returned) → `/readyz` 200, no restart of elevate".into(),
        measured: ms(back),
        target: "report".into(),
        floor: String::new(),
        met: None,
    });
    Ok(())
}
