//! Two `elevate serve` on one PostgreSQL database: 10,000 grants expiring at once must each be
//! revoked exactly once (and both replicas should share the work), and lifecycle throughput
//! with clients spread over both, against one replica's.

use crate::{
    lifecycle::{self, wait_state},
    node::{Node, NodeConfig},
    receiver::Receiver,
    report::{Bench, Row},
    seed::seed,
};
use anyhow::bail;
use std::{collections::HashMap, time::Duration};
use tokio::time::Instant;

const REQUESTERS: usize = 1_000;

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 2_000 } else { 10_000 };
    let Some(one_url) = b.pg_url("drain1").await? else { return Ok(()) };
    let one = drain(b, &one_url, n, 1).await?;
    let two_url = b.pg_url("drain2").await?.expect("PostgreSQL present");
    let two = drain(b, &two_url, n, 2).await?;
    let shares: Vec<String> = two.by.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    b.row(Row {
        scenario: "two replicas",
        figure: format!(
            "{n} grants expiring in one second, 2 × `elevate serve` on one PostgreSQL: revokes per grant (split {})",
            shares.join(", ")
        ),
        measured: format!("{} grants, {} revokes, max {} per grant", two.grants, two.revokes, two.max_per_grant),
        target: "each exactly once".into(),
        floor: String::new(),
        met: Some(two.grants == n && two.revokes == n && two.max_per_grant == 1),
    });
    b.row(Row {
        scenario: "two replicas",
        figure: format!("time to revoke those {n}: two replicas vs one ({:.2} s)", one.took.as_secs_f64()),
        measured: format!(
            "{:.2} s ({:.2}× one replica's rate)",
            two.took.as_secs_f64(),
            one.took.as_secs_f64() / two.took.as_secs_f64()
        ),
        target: "report".into(),
        floor: String::new(),
        met: None,
    });

    let ln = if b.quick { 1_500 } else { 6_000 };
    let url = b.pg_url("lifecycle2").await?.expect("PostgreSQL present");
    let t = lifecycle::measure(b, &url, "lifecycle-pg-2", ln, 2, lifecycle::PEOPLE).await?;
    let ratio = b.pg_lifecycle.map(|one| t.per_sec / one);
    b.row(Row {
        scenario: "two replicas",
        figure: format!(
            "lifecycle throughput, 2 replicas, PostgreSQL ({ln} lifecycles), vs one replica ({})",
            b.pg_lifecycle.map(|x| format!("{x:.0} / s")).unwrap_or_else(|| "not measured in this run".into())
        ),
        measured: format!(
            "{:.0} / s{}{}",
            t.per_sec,
            ratio.map(|r| format!(" ({r:.2}×)")).unwrap_or_default(),
            b.pg_floor.map(|f| format!(", {:.2}× floor", t.per_sec / f)).unwrap_or_default()
        ),
        target: "aim ≥ 1.6×".into(),
        floor: b.pg_floor.map(|f| format!("{f:.0} / s (one client, as in `lifecycle`)")).unwrap_or_default(),
        met: None,
    });
    Ok(())
}

struct Drain {
    took: Duration,
    grants: usize,
    revokes: usize,
    max_per_grant: usize,
    by: Vec<(String, usize)>,
}

/// Seeds `n` grants expiring together on `url` and runs `replicas` servers until all are revoked.
async fn drain(b: &Bench, url: &str, n: usize, replicas: usize) -> anyhow::Result<Drain> {
    let second = (chrono::Utc::now().timestamp() + 10) * 1000;
    seed(url, n, REQUESTERS, 3_600_000, |i| second + (i as i64 * 7) % 1000).await?;
    let receiver = Receiver::start(Duration::ZERO).await?;
    let mut nodes = Vec::new();
    for r in 0..replicas {
        let cfg = NodeConfig {
            receiver_url: Some(format!("{}?by=replica-{r}", receiver.url)),
            requesters: REQUESTERS,
            ..NodeConfig::new(url)
        };
        nodes.push(Node::start(&b.elevate, b.dir.path(), &format!("drain{replicas}-{r}"), &cfg).await?);
    }
    let wait = (second - chrono::Utc::now().timestamp_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let t0 = Instant::now();
    let all = receiver.wait_revokes(n, Duration::from_secs(300)).await;
    let expired = wait_state(url, "expired", n as i64, Duration::from_secs(60)).await?;
    let took = t0.elapsed();
    // Anything late (a second revoke of the same grant) has time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in nodes {
        node.stop().await;
    }
    if !all || !expired {
        bail!("{replicas} replica(s): only {} of {n} grants revoked", receiver.revoke_count());
    }
    let revokes = receiver.revokes();
    let mut per_grant: HashMap<&str, usize> = HashMap::new();
    let mut by: HashMap<String, usize> = HashMap::new();
    for r in &revokes {
        *per_grant.entry(&r.grant_id).or_default() += 1;
        *by.entry(r.by.clone()).or_default() += 1;
    }
    let mut by: Vec<(String, usize)> = by.into_iter().collect();
    by.sort();
    println!("    {replicas} replica(s): {n} revoked in {:.2} s ({by:?})", took.as_secs_f64());
    Ok(Drain {
        took,
        grants: per_grant.len(),
        revokes: revokes.len(),
        max_per_grant: per_grant.values().copied().max().unwrap_or(0),
        by,
    })
}
