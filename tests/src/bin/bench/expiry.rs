//! Time-driven work at scale: expiry precision with 100,000 active grants on the books (and
//! the server's memory while it holds them) and with 2,000 overlapping grants of one person,
//! and recovery after a restart with 10,000 grants already overdue.

use crate::{
    lifecycle::wait_state,
    load::percentile,
    node::{Node, NodeConfig},
    receiver::Receiver,
    report::{Bench, Row, ms},
    seed::seed,
};
use anyhow::bail;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;

const REQUESTERS: usize = 1_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// 100,000 active grants, 1,000 of them expiring in the same second: held by 10,000 people
/// (ten each), and again by 1,000 people holding a hundred grants of the same role each (every
/// revoke asks whether another of them still needs the role's target); then 2,000 grants of one
/// person and one role.
pub async fn precision(b: &mut Bench) -> anyhow::Result<()> {
    precision_with(b, 10_000, true).await?;
    precision_with(b, 1_000, false).await?;
    one_person(b).await
}

/// 2,000 live grants of one person and one role (so one provider and target), all expiring in
/// the same second: every revoke asks whether another live grant still needs the access, which
/// once meant reading (and sending) the others, so the work grew with the square of the count.
async fn one_person(b: &mut Bench) -> anyhow::Result<()> {
    let n = 2_000;
    let url = b.sqlite_url("expiry-one-person");
    let second = (now_ms() / 1000 + 8) * 1000;
    seed(&url, n, 1, 3_600_000, |i| second + (i as i64 * 997) % 1000).await?;
    let receiver = Receiver::start(Duration::ZERO).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), requesters: 1, ..NodeConfig::new(&url) };
    let node = Node::start(&b.elevate, b.dir.path(), "expiry-one-person", &cfg).await?;
    if now_ms() >= second {
        bail!("the server took too long to start: the burst was already due");
    }
    let all = receiver.wait_revokes(n, Duration::from_secs(120)).await;
    let expired = wait_state(&url, "expired", n as i64, Duration::from_secs(30)).await?;
    node.stop().await;
    let revokes = receiver.revokes();
    if !all || !expired || revokes.len() != n {
        bail!("{} revokes for {n} expiring grants", revokes.len());
    }
    // The last grants to be revoked are told that nothing else needs the access any more.
    let alone = revokes.iter().filter(|r| !r.still_needed).count();
    if alone == 0 {
        bail!("no revoke was told it was the last: the shared access would never be removed");
    }
    let late: Vec<Duration> = revokes
        .iter()
        .map(|r| Duration::from_millis((r.at_ms - r.expires_at_ms.unwrap_or(r.at_ms)).max(0) as u64))
        .collect();
    let p99 = percentile(&late, 99.0);
    println!(
        "    lateness p50 {} p99 {} max {}; {alone} told alone",
        ms(percentile(&late, 50.0)),
        ms(p99),
        ms(percentile(&late, 100.0))
    );
    b.row(Row {
        scenario: "expiry precision",
        figure: format!(
            "{n} live grants of one person and one role (one provider target), all expiring in one second, SQLite: p99 of revoke call − expires_at (p50 {}, max {}; {alone} revokes told no other grant still needed the access)",
            ms(percentile(&late, 50.0)),
            ms(percentile(&late, 100.0))
        ),
        measured: ms(p99),
        target: "≤ 1 s".into(),
        floor: String::new(),
        met: Some(p99 <= Duration::from_secs(1)),
    });
    Ok(())
}

async fn precision_with(b: &mut Bench, people: usize, memory: bool) -> anyhow::Result<()> {
    let (total, burst) = if b.quick { (20_000, 1_000) } else { (100_000, 1_000) };
    let url = b.sqlite_url(&format!("expiry-{people}"));
    let t = Instant::now();
    // The many that stay: they expire tomorrow.
    let tomorrow = now_ms() + 86_400_000;
    seed(&url, total - burst, people, 3_600_000, |i| tomorrow + i as i64).await?;
    // The burst: all in one whole second, a few seconds after the server is up.
    let second = (now_ms() / 1000 + 8) * 1000;
    seed(&url, burst, people, 3_600_000, |i| second + (i as i64 * 997) % 1000).await?;
    println!("  seeded {total} active grants in {:.1} s", t.elapsed().as_secs_f64());

    let receiver = Receiver::start(Duration::ZERO).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), requesters: people, ..NodeConfig::new(&url) };
    let node = Node::start(&b.elevate, b.dir.path(), &format!("expiry-{people}"), &cfg).await?;
    if now_ms() >= second {
        bail!("the server took too long to start: the burst was already due");
    }
    let peak = sample_rss(node.pid);
    let all = receiver.wait_revokes(burst, Duration::from_secs(120)).await;
    let expired = wait_state(&url, "expired", burst as i64, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = node.rss_mb()?;
    let peak_rss = peak.stop().await;
    node.stop().await;
    if !all || !expired {
        bail!("only {} of {burst} grants were revoked", receiver.revoke_count());
    }
    let revokes = receiver.revokes();
    if revokes.len() != burst {
        bail!("{} revokes for {burst} expiring grants: something else expired or one was revoked twice", revokes.len());
    }
    let late: Vec<Duration> = revokes
        .iter()
        .map(|r| Duration::from_millis((r.at_ms - r.expires_at_ms.unwrap_or(r.at_ms)).max(0) as u64))
        .collect();
    let p99 = percentile(&late, 99.0);
    println!("    lateness p50 {} p99 {} max {}", ms(percentile(&late, 50.0)), ms(p99), ms(percentile(&late, 100.0)));
    b.row(Row {
        scenario: "expiry precision",
        figure: format!(
            "{total} active grants held by {people} people ({} each), {burst} expiring in one second, SQLite: p99 of revoke call − expires_at (p50 {}, max {})",
            total / people,
            ms(percentile(&late, 50.0)),
            ms(percentile(&late, 100.0))
        ),
        measured: ms(p99),
        target: "≤ 1 s".into(),
        floor: String::new(),
        met: Some(p99 <= Duration::from_secs(1)),
    });
    if !memory {
        return Ok(());
    }
    b.row(Row {
        scenario: "memory",
        figure: format!("RSS with {total} active grants (peak while revoking the burst; {rss_after:.1} MB after)"),
        measured: format!("{peak_rss:.1} MB"),
        target: "≤ 150 MB".into(),
        floor: String::new(),
        met: Some(peak_rss <= 150.0),
    });
    Ok(())
}

/// A restart with 10,000 grants already past their expiry, the provider taking 20 ms a call.
pub async fn recovery(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 3_000 } else { 10_000 };
    let latency = Duration::from_millis(20);
    let url = b.sqlite_url("recovery");
    let past = now_ms() - 60_000;
    seed(&url, n, REQUESTERS, 3_600_000, |i| past + i as i64 % 1000).await?;
    let receiver = Receiver::start(latency).await?;
    let cfg = NodeConfig { receiver_url: Some(receiver.url.clone()), requesters: REQUESTERS, ..NodeConfig::new(&url) };
    let started = Instant::now();
    let node = Node::start(&b.elevate, b.dir.path(), "recovery", &cfg).await?;
    let all = receiver.wait_revokes(n, Duration::from_secs(120)).await;
    let expired = wait_state(&url, "expired", n as i64, Duration::from_secs(60)).await?;
    let took = started.elapsed();
    node.stop().await;
    if !all || !expired {
        bail!("recovery: only {} of {n} overdue grants were revoked", receiver.revoke_count());
    }
    println!("    all {n} revoked {:.2} s after start", took.as_secs_f64());
    b.row(Row {
        scenario: "recovery",
        figure: format!(
            "start with {n} overdue grants, provider latency {} ms, default `[scheduler] concurrency`, SQLite: start → all `expired`",
            latency.as_millis()
        ),
        measured: format!("{:.2} s", took.as_secs_f64()),
        target: "≤ 10 s".into(),
        floor: String::new(),
        met: Some(took <= Duration::from_secs(10)),
    });
    Ok(())
}

/// Samples a process's RSS every 50 ms until stopped; `stop` returns the peak (MB).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
}

pub fn sample_rss(pid: u32) -> RssSampler {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        while !flag.load(Ordering::Relaxed) {
            if let Some(mb) = crate::node::rss_of(pid) {
                peak = peak.max(mb);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    RssSampler { stop, task }
}

impl RssSampler {
    pub async fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0.0)
    }
}
