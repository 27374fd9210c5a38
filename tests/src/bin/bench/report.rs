//! The bench's shared context (where binaries and databases are) and its one table.

use sqlx::{Connection, Executor, PgConnection};
use std::{
    fmt::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

/// One line of the table.
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub measured: String,
    pub target: String,
    /// The floor measured in the same run, where the target names one.
    pub floor: String,
    /// `None` when there is no target to meet (an aim, or a figure shown for context).
    pub met: Option<bool>,
}

pub struct Bench {
    pub elevate: PathBuf,
    pub dir: tempfile::TempDir,
    /// An admin URL of a PostgreSQL server (`postgres://…/postgres`) to create databases on.
    pub pg_admin: Option<String>,
    /// Shorter runs, for trying the bench out; the figures to record come from a full run.
    pub quick: bool,
    pub rows: Vec<Row>,
    /// PostgreSQL lifecycle throughput of one replica, for the two-replica comparison.
    pub pg_lifecycle: Option<f64>,
    /// Its floor (see `lifecycle_floor.rs`), measured in the same run.
    pub pg_floor: Option<f64>,
    pg_dbs: Vec<String>,
    started: Instant,
}

impl Bench {
    pub fn new(elevate: PathBuf, pg_admin: Option<String>, quick: bool) -> anyhow::Result<Bench> {
        Ok(Bench {
            elevate,
            dir: tempfile::tempdir()?,
            pg_admin,
            quick,
            rows: Vec::new(),
            pg_lifecycle: None,
            pg_floor: None,
            pg_dbs: Vec::new(),
            started: Instant::now(),
        })
    }

    pub fn sqlite_url(&self, name: &str) -> String {
        self.dir.path().join(format!("{name}.db")).display().to_string()
    }

    /// A fresh PostgreSQL database, or `None` (and a note) without a server.
    pub async fn pg_url(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        let Some(admin) = self.pg_admin.clone() else {
            eprintln!("  (no PostgreSQL: set ELEVATE_BENCH_POSTGRES_URL or run ./scripts/bench)");
            return Ok(None);
        };
        let db = format!("elevate_bench_{name}_{:08x}", rand::random::<u32>());
        let mut c = PgConnection::connect(&admin).await?;
        c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await?;
        self.pg_dbs.push(db.clone());
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(Some(format!("{base}/{db}")))
    }

    /// Drops the databases this run created.
    pub async fn cleanup(&mut self) {
        let Some(admin) = &self.pg_admin else { return };
        let Ok(mut c) = PgConnection::connect(admin).await else { return };
        for db in self.pg_dbs.drain(..) {
            let _ = c.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))).await;
        }
    }

    pub fn row(&mut self, row: Row) {
        println!(
            "  {} | {} | {} | target {} {}",
            row.scenario,
            row.figure,
            row.measured,
            row.target,
            match row.met {
                Some(true) => "(met)",
                Some(false) => "(MISSED)",
                None => "",
            }
        );
        self.rows.push(row);
    }

    /// The table, Markdown, with the machine it ran on.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| scenario | figure | measured | target | floor (same run) | met |");
        let _ = writeln!(t, "|---|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {met} |",
                r.scenario,
                r.figure,
                r.measured,
                r.target,
                if r.floor.is_empty() { "–" } else { &r.floor }
            );
        }
        let _ = writeln!(t, "\n{}", machine());
        let _ = writeln!(
            t,
            "Whole run: {:.0} s{}.",
            self.started.elapsed().as_secs_f64(),
            if self.quick { " (--quick: shortened, not for the record)" } else { "" }
        );
        t
    }
}

/// CPU model, cores, memory and kernel, from `/proc`.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.trim_start_matches("MemTotal:").trim().to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {} cores, {}, {} memory, Linux {}.",
        cores,
        model.unwrap_or_else(|| "unknown CPU".into()),
        mem,
        kernel.trim()
    )
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
