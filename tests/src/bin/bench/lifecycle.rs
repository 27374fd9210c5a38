//! Lifecycle throughput: request → approve (REST, as the CLI does) → grant (scheduler, webhook
//! provider with no latency) → expire → revoke, many at once, until every request is `expired`.
//! Each grant is held one second; that second is the grant's length, not work, so it is taken
//! off the elapsed time.

use crate::{
    lifecycle_floor,
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
    /// PostgreSQL only: transactions per lifecycle the database counted (read-only
    /// statements outside a transaction count as one each).
    pub commits: Option<f64>,
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 3_000 } else { 20_000 };
    let floor = lifecycle_floor::sqlite(&b.sqlite_url("lifecycle-floor"), n).await?;
    println!("  SQLite floor: {:.0} lifecycles / s", floor.per_sec);
    let url = b.sqlite_url("lifecycle");
    let t = measure(b, &url, "lifecycle-sqlite", n, 1, PEOPLE).await?;
    let ratio = t.per_sec / floor.per_sec;
    b.row(Row {
        scenario: "lifecycle throughput",
        figure: format!(
            "request → approve → grant → expire → revoke, provider latency 0, SQLite ({} lifecycles, {PEOPLE} people)",
            t.n
        ),
        measured: format!("{:.0} / s ({ratio:.2}× floor)", t.per_sec),
        target: "≥ 1,000 / s and ≥ 0.6× floor".into(),
        floor: format!("{:.0} / s", floor.per_sec),
        met: Some(t.per_sec >= 1000.0 && ratio >= 0.6),
    });
    let url = b.sqlite_url("lifecycle-few");
    let t = measure(b, &url, "lifecycle-sqlite-few", n, 1, FEW_PEOPLE).await?;
    b.row(Row {
        scenario: "lifecycle throughput",
        figure: format!(
            "same with {FEW_PEOPLE} people, each holding up to ~200 grants of the role at once ({} lifecycles)",
            t.n
        ),
        measured: format!("{:.0} / s ({:.2}× floor)", t.per_sec, t.per_sec / floor.per_sec),
        target: "report".into(),
        floor: format!("{:.0} / s (the row above's)", floor.per_sec),
        met: None,
    });
    if let Some(url) = b.pg_url("lifecycle").await? {
        let n = if b.quick { 1_500 } else { 6_000 };
        let floor_url = b.pg_url("lifecycle_floor").await?.expect("PostgreSQL present");
        let floor = lifecycle_floor::pg(&floor_url, n).await?;
        println!(
            "  PostgreSQL floor: {:.0} lifecycles / s, {:.1} commits each",
            floor.per_sec,
            floor.commits.unwrap_or(0.0)
        );
        let t = measure(b, &url, "lifecycle-pg", n, 1, PEOPLE).await?;
        let ratio = t.per_sec / floor.per_sec;
        b.row(Row {
            scenario: "lifecycle throughput",
            figure: format!(
                "same, PostgreSQL ({} lifecycles, {PEOPLE} people; {:.1} transactions per lifecycle, reads included)",
                t.n,
                t.commits.unwrap_or(0.0)
            ),
            measured: format!("{:.0} / s ({ratio:.2}× floor)", t.per_sec),
            target: "≥ 400 / s and ≥ 0.6× floor".into(),
            floor: format!("{:.0} / s ({:.1} commits each)", floor.per_sec, floor.commits.unwrap_or(0.0)),
            met: Some(t.per_sec >= 400.0 && ratio >= 0.6),
        });
        b.pg_lifecycle = Some(t.per_sec);
        b.pg_floor = Some(floor.per_sec);
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
    measure_via(b, url, url, name, n, replicas, people).await
}

/// One server's lifecycles with its database reached at `node_url` (a counting proxy in front
/// of `url`, see `roundtrips.rs`); the bench's own queries go to `url` directly.
pub async fn measure_counted(b: &Bench, node_url: &str, url: &str, name: &str, n: usize) -> anyhow::Result<Throughput> {
    measure_via(b, node_url, url, name, n, 1, PEOPLE).await
}

async fn measure_via(
    b: &Bench,
    node_url: &str,
    url: &str,
    name: &str,
    n: usize,
    replicas: usize,
    people: usize,
) -> anyhow::Result<Throughput> {
    let receiver = Receiver::start(Duration::ZERO).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), requesters: people, ..NodeConfig::new(node_url) };
    let mut nodes = Vec::new();
    for r in 0..replicas {
        nodes.push(Node::start(&b.elevate, b.dir.path(), &format!("{name}-{r}"), &cfg).await?);
    }
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.base.clone()).collect());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let (requesters, approvers) = (cfg.requesters, cfg.approvers);
    println!("  {name}: {n} lifecycles, {replicas} server(s)");
    let pg = url.starts_with("postgres");
    let before = if pg { Some(xact_commits(url).await?) } else { None };
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
    let commits = match before {
        Some(before) => Some((xact_commits(url).await? - before) as f64 / n as f64),
        None => None,
    };
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
    Ok(Throughput { per_sec, n, commits })
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

/// Transactions committed so far in the PostgreSQL database at `url` (each statement outside
/// a transaction counts as one). A backend reports its counts when it ends (or after a second
/// idle), so this is read once the clients' connections are closed, after a second's wait; the
/// reading connection adds a few commits of its own.
pub async fn xact_commits(url: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut c = sqlx::PgConnection::connect(url).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut c)
        .await?;
    c.close().await?;
    Ok(n)
}
