//! Lifecycle throughput: request → approve (REST, as the CLI does) → grant (scheduler, webhook
//! provider with no latency) → expire → revoke, many at once, until every request is `expired`.
//! Each grant is held one second; that second is the grant's length, not work, so it is taken
//! off the elapsed time.

use crate::{
    load::closed_loop,
    node::{self, Node, NodeConfig},
    receiver::Receiver,
    report::{Bench, Row},
};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

const HOLD: Duration = Duration::from_secs(1);
const WORKERS: usize = 64;
/// Requesters the lifecycles are spread over. Every revoke asks whether another live grant of
/// the person's still needs the role's target (so that it does not take away what they still
/// give), and the clients submit faster than grants expire, so with few people each holds many
/// at once: with 1,000 people about 20 at the peak, with 100 (the second SQLite row) about 200.
pub const PEOPLE: usize = 1000;
const FEW_PEOPLE: usize = 100;

/// One scenario's outcome.
pub struct Throughput {
    pub per_sec: f64,
    pub n: usize,
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 3_000 } else { 20_000 };
    let url = b.sqlite_url("lifecycle");
    let t = measure(b, &url, "lifecycle-sqlite", n, 1, PEOPLE).await?;
    b.row(Row {
        scenario: "lifecycle throughput",
        figure: format!(
            "request → approve → grant → expire → revoke, provider latency 0, SQLite ({} lifecycles, {PEOPLE} people)",
            t.n
        ),
        measured: format!("{:.0} / s", t.per_sec),
        target: "≥ 1,000 / s".into(),
        floor: String::new(),
        met: Some(t.per_sec >= 1000.0),
    });
    let url = b.sqlite_url("lifecycle-few");
    let t = measure(b, &url, "lifecycle-sqlite-few", n, 1, FEW_PEOPLE).await?;
    b.row(Row {
        scenario: "lifecycle throughput",
        figure: format!(
            "same with {FEW_PEOPLE} people, each holding up to ~200 grants of the role at once ({} lifecycles)",
            t.n
        ),
        measured: format!("{:.0} / s", t.per_sec),
        target: "report".into(),
        floor: String::new(),
        met: None,
    });
    if let Some(url) = b.pg_url("lifecycle").await? {
        let n = if b.quick { 1_500 } else { 6_000 };
        let t = measure(b, &url, "lifecycle-pg", n, 1, PEOPLE).await?;
        b.row(Row {
            scenario: "lifecycle throughput",
            figure: format!("same, PostgreSQL ({} lifecycles, {PEOPLE} people)", t.n),
            measured: format!("{:.0} / s", t.per_sec),
            target: "≥ 300 / s".into(),
            floor: String::new(),
            met: Some(t.per_sec >= 300.0),
        });
        b.pg_lifecycle = Some(t.per_sec);
    }
    Ok(())
}

/// Runs `n` lifecycles against `replicas` servers on the database at `url`, clients spread over
/// them.
pub async fn measure(
    b: &Bench,
    url: &str,
    name: &str,
    n: usize,
    replicas: usize,
    people: usize,
) -> anyhow::Result<Throughput> {
    let receiver = Receiver::start(Duration::ZERO).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), requesters: people, ..NodeConfig::new(url) };
    let mut nodes = Vec::new();
    for r in 0..replicas {
        nodes.push(Node::start(&b.elevate, b.dir.path(), &format!("{name}-{r}"), &cfg).await?);
    }
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.base.clone()).collect());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let (requesters, approvers) = (cfg.requesters, cfg.approvers);
    println!("  {name}: {n} lifecycles, {replicas} server(s)");
    let start = Instant::now();
    closed_loop(n, WORKERS, move |i| {
        let base = bases[i % bases.len()].clone();
        let http = http.clone();
        async move {
            let requester = node::requester(i % requesters);
            let approver = node::approver(i % approvers);
            let body = json!({ "role": node::ROLE, "duration": format!("{}s", HOLD.as_secs()), "reason": format!("INC-{i} bench") });
            let created = call(&http, &format!("{base}/api/v1/requests"), &requester, body).await?;
            let id = created["id"].as_i64().context("no id")?;
            call(&http, &format!("{base}/api/v1/requests/{id}/approve"), &approver, json!({})).await?;
            Ok(())
        }
    })
    .await?;
    let submitted = start.elapsed();
    if !receiver.wait_revokes(n, Duration::from_secs(600)).await {
        bail!("{name}: only {} of {n} grants were revoked within 10 minutes", receiver.revoke_count());
    }
    let done = wait_state(url, "expired", n as i64, Duration::from_secs(60)).await?;
    let elapsed = start.elapsed();
    if !done {
        bail!("{name}: the provider saw {n} revokes but not every request reached `expired`");
    }
    for node in nodes {
        node.stop().await;
    }
    if receiver.bad_signatures() > 0 {
        bail!("{name}: {} webhook calls had a bad signature", receiver.bad_signatures());
    }
    let work = elapsed.saturating_sub(HOLD);
    let per_sec = n as f64 / work.as_secs_f64();
    println!(
        "    submitted in {:.1} s, all expired after {:.1} s: {per_sec:.0} / s",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok(Throughput { per_sec, n })
}

async fn call(http: &reqwest::Client, url: &str, person: &str, body: Value) -> anyhow::Result<Value> {
    let resp = http.post(url).bearer_auth(node::token(person)).json(&body).send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: HTTP {status}: {v}");
    }
    Ok(v)
}

/// Waits until `n` requests are in `state`.
pub async fn wait_state(url: &str, state: &str, n: i64, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if count_state(url, state).await? >= n {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn count_state(url: &str, state: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    let q = "SELECT COUNT(*) FROM requests WHERE state = $1";
    let (n,): (i64,) = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query_as(q).bind(state).fetch_one(&mut c).await?
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{url}")).await?;
        sqlx::query_as(q).bind(state).fetch_one(&mut c).await?
    };
    Ok(n)
}
