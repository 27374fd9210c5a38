//! Ingress: signed `/elevate` slash commands at a fixed rate, from this process to the real
//! server (which creates each request and posts its approval card to a fake Slack Web API),
//! against the floor: a bare handler with the same signature check and one SQLite insert.

use crate::{
    load::{Outcome, open_loop},
    node::{self, Node, NodeConfig},
    report::{Bench, Row, ms},
};
use anyhow::{Context, bail};
use std::{process::Stdio, sync::Arc, time::Duration};
use tokio::io::{AsyncBufReadExt, BufReader};

const RATE: u32 = 1000;
const REQUESTERS: usize = 200;

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let secs = if b.quick { 10 } else { 60 };
    let duration = Duration::from_secs(secs);

    // The floor, in its own process.
    let floor_db = b.dir.path().join("floor.db");
    let mut floor = tokio::process::Command::new(std::env::current_exe()?)
        .arg("floor-server")
        .arg(&floor_db)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(floor.stdout.take().context("floor stdout")?).lines();
    let port = lines.next_line().await?.and_then(|l| l.strip_prefix("listening ").map(String::from));
    let port = port.context("the floor server did not start")?;
    let floor_base = format!("http://127.0.0.1:{port}");
    println!("  floor: {RATE} req/s for {secs} s");
    let floor_out = blast(&floor_base, duration).await;
    let _ = floor.kill().await;
    check(&floor_out, "floor")?;

    // The real server with Slack.
    let slack = elevate_tests::fake_slack::FakeSlack::start(
        node::SLACK_BOT_TOKEN,
        &[node::APPROVAL_CHANNEL, node::AUDIT_CHANNEL],
    )
    .await;
    // This scenario measures the command's answer, not the cards: Slack's one post per second
    // per channel would only make the server retry thousands of cards meanwhile (the
    // `delivery` scenario measures cards under Slack's limits).
    slack.limit_posts(node::APPROVAL_CHANNEL, elevate_tests::fake_time::Limit { burst: 1e9, per_second: 1e9 });
    // Every requester is new in the first second: their `users.info` lookups would be far over
    // Slack's Tier 4, and elevate then refuses (fail closed, "could not check your Slack
    // account"), which is not what this scenario measures.
    slack.limit_method("users.info", elevate_tests::fake_time::Limit { burst: 1e9, per_second: 1e9 });
    // elevate acts only for active members of the workspace (it asks `users.info`).
    for i in 0..REQUESTERS {
        slack.add_user(&node::slack_id(&node::requester(i)), node::SLACK_TEAM, None);
    }
    let url = b.sqlite_url("ingress");
    let cfg = NodeConfig { slack_api: Some(slack.url.clone()), requesters: REQUESTERS, ..NodeConfig::new(&url) };
    let server = Node::start(&b.elevate, b.dir.path(), "ingress", &cfg).await?;
    println!("  elevate: {RATE} req/s for {secs} s");
    let out = blast(&server.base, duration).await;
    server.stop().await;
    check(&out, "elevate")?;
    let created = crate::lifecycle::count_state(&url, "pending").await?;
    if created != out.ok as i64 {
        bail!("elevate answered {} commands but created {created} requests", out.ok);
    }

    let (p99, floor_p99) = (out.percentile(99.0), floor_out.percentile(99.0));
    let ratio = p99.as_secs_f64() / floor_p99.as_secs_f64();
    b.row(Row {
        scenario: "ingress",
        figure: format!(
            "signed `/elevate` → 200, {:.0} req/s for {secs} s, SQLite: p99 (p50 {}, max {})",
            out.achieved_rate(),
            ms(out.percentile(50.0)),
            ms(out.percentile(100.0))
        ),
        measured: format!("{} ({ratio:.2}× floor)", ms(p99)),
        target: "p99 ≤ 10 ms and ≤ 1.5× floor".into(),
        floor: format!("p99 {} (p50 {})", ms(floor_p99), ms(floor_out.percentile(50.0))),
        met: Some(p99 <= Duration::from_millis(10) && ratio <= 1.5),
    });
    Ok(())
}

fn check(out: &Outcome, who: &str) -> anyhow::Result<()> {
    println!(
        "    sent {} ({:.0}/s), ok {}, failed {}, p50 {}, p99 {}",
        out.sent,
        out.achieved_rate(),
        out.ok,
        out.failed,
        ms(out.percentile(50.0)),
        ms(out.percentile(99.0))
    );
    if out.failed > 0 {
        bail!(
            "{who}: {} of {} commands failed, first: {}",
            out.failed,
            out.sent,
            out.first_failure.clone().unwrap_or_default()
        );
    }
    Ok(())
}

/// `/elevate app 1h …` from requester `i % REQUESTERS`, signed as Slack signs, in Slack's
/// documented form shape.
async fn blast(base: &str, duration: Duration) -> Outcome {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let url = Arc::new(format!("{base}/slack/commands"));
    open_loop(RATE, duration, move |i| {
        let person = node::requester(i as usize % REQUESTERS);
        let text = format!("{} 1h INC-{i} bench load", node::ROLE);
        let body = elevate_tests::slack::command_body(node::SLACK_TEAM, &node::slack_id(&person), &person, &text);
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = elevate_tests::slack::sign(node::SLACK_SIGNING_SECRET, &ts, &body);
        let req = http
            .post(url.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body);
        async move {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}: {text}")) }
        }
    })
    .await
}
