//! Stopping and losing replicas.
//!
//! - `drain`: one `elevate serve` (SQLite) with 64 grant calls in flight, each answered by the
//!   receiver after 2 s; SIGTERM is sent as the 64th call arrives. The figure is the time from
//!   SIGTERM to the process's exit; the drain must let every call finish (64 grants active
//!   afterwards) and exit 0.
//! - `takeover`: two `elevate serve` on one PostgreSQL database with the default lease (30 s).
//!   Replica A claims an apply and is killed (SIGKILL) while its grant call is in flight;
//!   replica B, started then, runs it when A's lease ends. The figure is the time from the kill
//!   until B's grant call arrives at the provider.

use crate::{
    node::{self, Node, NodeConfig},
    receiver::Receiver,
    report::{Bench, Row},
};
use anyhow::{Context, bail};
use elevate_core::{State, ports::Store};
use serde_json::json;
use std::time::Duration;

const IN_FLIGHT: usize = 64;
const LATENCY: Duration = Duration::from_secs(2);

pub async fn drain(b: &mut Bench) -> anyhow::Result<()> {
    let receiver = Receiver::start(LATENCY).await?;
    let url = b.sqlite_url("drain");
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), ..NodeConfig::new(&url) };
    let n = Node::start(&b.elevate, b.dir.path(), "drain", &cfg).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut ids = Vec::with_capacity(IN_FLIGHT);
    for i in 0..IN_FLIGHT {
        let body = json!({ "role": node::ROLE, "duration": "1h", "reason": format!("INC-{i} drain") });
        let created = post(&http, &format!("{}/api/v1/requests", n.base), &node::requester(i), body).await?;
        ids.push(created["id"].as_i64().context("no id")?);
    }
    // Approved all at once, so that the 64 calls are in flight together.
    let approvals = ids.iter().enumerate().map(|(i, id)| {
        let url = format!("{}/api/v1/requests/{id}/approve", n.base);
        let http = http.clone();
        async move { post(&http, &url, &node::approver(i % cfg.approvers), json!({})).await }
    });
    for r in futures::future::join_all(approvals).await {
        r?;
    }
    let arrived = receiver.wait_arrivals(None, IN_FLIGHT, Duration::from_secs(30)).await;
    if arrived.len() < IN_FLIGHT {
        bail!("only {} of {IN_FLIGHT} grant calls reached the provider", arrived.len());
    }
    let first = arrived.iter().min().copied().unwrap_or_default();
    let last = arrived.iter().max().copied().unwrap_or_default();
    let spread = Duration::from_millis((last - first).max(0) as u64);
    let (took, code) = n.terminate(Duration::from_secs(60)).await?;
    let store = elevate_sql::SqlStore::connect(&url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let active = store
        .count_by_state()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .find(|(s, _)| *s == State::Active)
        .map_or(0, |(_, n)| n);
    println!(
        "    SIGTERM → exit {:.2} s (exit code {code:?}); {active}/{IN_FLIGHT} grants active; calls arrived over {} ms",
        took.as_secs_f64(),
        spread.as_millis()
    );
    let clean = code == Some(0) && active == IN_FLIGHT as i64;
    b.row(Row {
        scenario: "drain",
        figure: format!(
            "SIGTERM → process exit with {IN_FLIGHT} grant calls in flight at 2 s each (SIGTERM as the last \
             arrives; they arrived over {} ms); every call finished and committed: {}",
            spread.as_millis(),
            if clean { "yes" } else { "NO" }
        ),
        measured: format!("{:.2} s", took.as_secs_f64()),
        target: "≈ 2 s + small, ≤ drain_timeout (25 s)".into(),
        floor: String::new(),
        met: Some(clean && took < Duration::from_secs(3)),
    });
    Ok(())
}

pub async fn takeover(b: &mut Bench) -> anyhow::Result<()> {
    let rounds = if b.quick { 1 } else { 3 };
    let Some(url) = b.pg_url("takeover").await? else { return Ok(()) };
    let receiver = Receiver::start(LATENCY).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), ..NodeConfig::new(&url) };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut after_kill = Vec::new();
    let mut after_claim = Vec::new();
    for round in 0..rounds {
        let a = Node::start(&b.elevate, b.dir.path(), &format!("takeover-a{round}"), &cfg).await?;
        let body = json!({ "role": node::ROLE, "duration": "1h", "reason": format!("INC-{round} takeover") });
        let created = post(&http, &format!("{}/api/v1/requests", a.base), &node::requester(round), body).await?;
        let id = created["id"].as_i64().context("no id")?;
        let grant = format!("elevate-{id}");
        post(&http, &format!("{}/api/v1/requests/{id}/approve", a.base), &node::approver(0), json!({})).await?;
        let first = receiver.wait_arrivals(Some(&grant), 1, Duration::from_secs(10)).await;
        let Some(&claimed) = first.first() else { bail!("replica A never called the provider for {id}") };
        // A dies with the call in flight: nothing released, the lease holds the item.
        a.stop().await;
        let killed = chrono::Utc::now().timestamp_millis();
        let node_b = Node::start(&b.elevate, b.dir.path(), &format!("takeover-b{round}"), &cfg).await?;
        let calls = receiver.wait_arrivals(Some(&grant), 2, Duration::from_secs(120)).await;
        node_b.stop().await;
        let Some(&again) = calls.get(1) else { bail!("replica B did not take over {id} within 120 s") };
        after_kill.push(Duration::from_millis((again - killed).max(0) as u64));
        after_claim.push(Duration::from_millis((again - claimed).max(0) as u64));
    }
    let secs = |v: &[Duration]| v.iter().map(|d| format!("{:.1}", d.as_secs_f64())).collect::<Vec<_>>().join(", ");
    let worst = after_kill.iter().max().copied().unwrap_or_default();
    println!("    SIGKILL → B's call: {} s; A's call → B's call: {} s", secs(&after_kill), secs(&after_claim));
    b.row(Row {
        scenario: "takeover",
        figure: format!(
            "replica A (PostgreSQL) killed with SIGKILL while its grant call is in flight → replica B's grant \
             call for the same item, default lease 30 s, {rounds} rounds: worst (each: {} s; from A's call: {} s)",
            secs(&after_kill),
            secs(&after_claim)
        ),
        measured: format!("{:.1} s", worst.as_secs_f64()),
        target: "≤ lease (30 s) + a few s".into(),
        floor: String::new(),
        met: Some(after_claim.iter().all(|d| *d <= Duration::from_secs(33))),
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
