//! Start-up and idle memory: `elevate serve` on a new SQLite file (so migrations run) until
//! `/readyz` answers 200, five times; then the resident memory of a server left idle.

use crate::{
    node::{Node, NodeConfig},
    report::{Bench, Row, ms},
};
use std::time::Duration;

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let mut times = Vec::new();
    let mut idle_rss = 0.0;
    for i in 0..5 {
        let url = b.sqlite_url(&format!("start-{i}"));
        let node = Node::start(&b.elevate, b.dir.path(), &format!("start-{i}"), &NodeConfig::new(&url)).await?;
        times.push(node.ready_after);
        if i == 4 {
            tokio::time::sleep(Duration::from_secs(if b.quick { 2 } else { 5 })).await;
            idle_rss = node.rss_mb()?;
        }
        node.stop().await;
    }
    times.sort();
    let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
    println!("    ready after {}", times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", "));
    b.row(Row {
        scenario: "start",
        figure: format!(
            "`elevate serve` → `/readyz` 200, new SQLite file (migrations applied): median of 5 (max {})",
            ms(max)
        ),
        measured: ms(median),
        target: "≤ 300 ms".into(),
        floor: String::new(),
        met: Some(max <= Duration::from_millis(300)),
    });
    b.row(Row {
        scenario: "memory",
        figure: "RSS idle (SQLite, 110 people in the policy)".into(),
        measured: format!("{idle_rss:.1} MB"),
        target: "≤ 50 MB".into(),
        floor: String::new(),
        met: Some(idle_rss <= 50.0),
    });
    Ok(())
}
