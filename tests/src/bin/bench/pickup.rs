//! Cross-replica pick-up: two `elevate serve` on one PostgreSQL database, replica A with its
//! scheduler off (`[scheduler] enabled = false`: it only serves the API), replica B idle. A
//! request is created and approved on A; the apply it makes due can only be run by B. The
//! figure is the time from sending the approval to A until the grant call arrives at the
//! provider, one lifecycle at a time, so that B is asleep every time (its poll interval is the
//! default 5 s: without a signal from A, B would find the work only when it next looks).

use crate::{
    load::percentile,
    node::{self, Node, NodeConfig},
    receiver::Receiver,
    report::{Bench, Row, ms},
};
use anyhow::{Context, bail};
use serde_json::json;
use std::time::Duration;

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 50 } else { 300 };
    let Some(url) = b.pg_url("pickup").await? else { return Ok(()) };
    let receiver = Receiver::start(Duration::ZERO).await?;
    let base = NodeConfig { receiver_url: Some(receiver.url.clone()), ..NodeConfig::new(&url) };
    let a = Node::start(&b.elevate, b.dir.path(), "pickup-a", &NodeConfig { scheduler: false, ..base.clone() }).await?;
    let node_b = Node::start(&b.elevate, b.dir.path(), "pickup-b", &base).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let requester = node::requester(i % base.requesters);
        let body = json!({ "role": node::ROLE, "duration": "1h", "reason": format!("INC-{i} pickup") });
        let created = post(&http, &format!("{}/api/v1/requests", a.base), &requester, body).await?;
        let id = created["id"].as_i64().context("no id")?;
        // B is asleep: the last apply's work is done and nothing else is due for an hour.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = chrono::Utc::now().timestamp_millis();
        post(
            &http,
            &format!("{}/api/v1/requests/{id}/approve", a.base),
            &node::approver(i % base.approvers),
            json!({}),
        )
        .await?;
        let Some(at) = receiver.wait_grant(&format!("elevate-{id}"), Duration::from_secs(30)).await else {
            bail!("request {id} approved on A was not applied by B within 30 s");
        };
        took.push(Duration::from_millis((at - sent).max(0) as u64));
    }
    a.stop().await;
    node_b.stop().await;
    let (p50, p99, max) = (percentile(&took, 50.0), percentile(&took, 99.0), percentile(&took, 100.0));
    println!("    pick-up: p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max));
    b.row(Row {
        scenario: "two replicas",
        figure: format!(
            "cross-replica pick-up: approval sent to replica A (scheduler off) → grant call from replica B (idle, \
             polls every 5 s), {n} one at a time: p99 (p50 {}, max {})",
            ms(p50),
            ms(max)
        ),
        measured: ms(p99),
        target: "p99 ≤ 100 ms".into(),
        floor: String::new(),
        met: Some(p99 <= Duration::from_millis(100)),
    });
    Ok(())
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    person: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let resp = http.post(url).bearer_auth(node::token(person)).json(&body).send().await?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url}: HTTP {status}: {v}");
    }
    Ok(v)
}
