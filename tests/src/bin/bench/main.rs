//! `bench`: elevate's speed, scale and memory, measured against real processes on loopback
//! (release `elevate serve`, real SQLite and PostgreSQL, a webhook receiver whose latency is a
//! parameter) and printed as one table. Benchmarks, not tests: nothing here fails a build; the
//! table says which targets were met.
//!
//! ```text
//! cargo run --release -p elevate-tests --bin bench -- [--quick] [--no-build] [SCENARIO…]
//! ```
//!
//! Scenarios: `start` (start-up and idle memory), `ingress`, `lifecycle` (with its floors),
//! `roundtrips` (PostgreSQL statements per lifecycle), `expiry` (precision and memory with
//! 100,000 grants), `recovery`, `replicas`, `pickup` (cross-replica pick-up), `delivery` (card
//! latency and feed drain under Slack's rate limits), `outage` (answers while a private
//! PostgreSQL server is stopped), `drain` (SIGTERM to exit with 64 provider calls in flight),
//! `takeover` (a killed replica's claimed work run by another), or `all` (the default). PostgreSQL
//! comes from `ELEVATE_BENCH_POSTGRES_URL` (or `ELEVATE_TEST_POSTGRES_URL`), an admin URL;
//! `./scripts/bench` starts the local server and sets it.

mod delivery;
mod drain;
mod expiry;
mod floor;
mod ingress;
mod lifecycle;
mod lifecycle_floor;
mod load;
mod node;
mod outage;
mod pickup;
mod receiver;
mod replicas;
mod report;
mod roundtrips;
mod seed;
mod start;

use anyhow::bail;

const SCENARIOS: [&str; 12] = [
    "start",
    "ingress",
    "lifecycle",
    "roundtrips",
    "expiry",
    "recovery",
    "replicas",
    "pickup",
    "delivery",
    "outage",
    "drain",
    "takeover",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor-server") {
        let db = args.get(1).map(String::as_str).unwrap_or("floor.db");
        return floor::serve(db).await;
    }
    let mut quick = false;
    let mut build = true;
    let mut chosen: Vec<&str> = Vec::new();
    for a in &args {
        match a.as_str() {
            "--quick" => quick = true,
            "--no-build" => build = false,
            "all" => chosen.extend(SCENARIOS),
            "memory" => chosen.extend(["start", "expiry"]),
            "-h" | "--help" => {
                println!("bench [--quick] [--no-build] [all | {} | memory]…", SCENARIOS.join(" | "));
                return Ok(());
            }
            s => match SCENARIOS.iter().find(|x| **x == s) {
                Some(x) => chosen.push(x),
                None => bail!("unknown scenario `{s}`: use all, memory or one of {}", SCENARIOS.join(", ")),
            },
        }
    }
    if chosen.is_empty() {
        chosen.extend(SCENARIOS);
    }
    chosen.dedup();
    // The PostgreSQL lifecycle figure is the baseline of the two-replica comparison.
    if chosen.contains(&"replicas") && !chosen.contains(&"lifecycle") {
        eprintln!(
            "note: `replicas` compares with one replica's lifecycle figure; run `lifecycle` too to get the ratio"
        );
    }
    rustls::crypto::ring::default_provider().install_default().ok();
    let elevate = node::elevate_binary(build)?;
    let pg = std::env::var("ELEVATE_BENCH_POSTGRES_URL").or_else(|_| std::env::var("ELEVATE_TEST_POSTGRES_URL")).ok();
    let mut b = report::Bench::new(elevate, pg, quick)?;
    println!("{}", report::machine());
    let mut failures = Vec::new();
    for s in SCENARIOS.iter().filter(|s| chosen.contains(s)) {
        println!("\n== {s}");
        let r = match *s {
            "start" => start::run(&mut b).await,
            "ingress" => ingress::run(&mut b).await,
            "lifecycle" => lifecycle::run(&mut b).await,
            "expiry" => expiry::precision(&mut b).await,
            "recovery" => expiry::recovery(&mut b).await,
            "replicas" => replicas::run(&mut b).await,
            "delivery" => delivery::run(&mut b).await,
            "outage" => outage::run(&mut b).await,
            "pickup" => pickup::run(&mut b).await,
            "roundtrips" => roundtrips::run(&mut b).await,
            "drain" => drain::drain(&mut b).await,
            "takeover" => drain::takeover(&mut b).await,
            _ => unreachable!("checked above"),
        };
        if let Err(e) = r {
            eprintln!("  {s} FAILED: {e:#}");
            failures.push(format!("{s}: {e:#}"));
        }
    }
    b.cleanup().await;
    println!("\n{}", b.table());
    if !failures.is_empty() {
        bail!("{} scenario(s) could not run: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}
