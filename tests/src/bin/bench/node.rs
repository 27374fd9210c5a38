//! A real `elevate serve` process on loopback: its config (a bench policy with as many people
//! as a scenario needs), start-up until `/readyz` answers, its resident memory, and a kill on
//! drop so that a failed scenario leaves no server behind.

use anyhow::{Context, bail};
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// The webhook secret the bench receiver and the servers share.
pub const WEBHOOK_SECRET: &str = "bench-webhook-secret-0123456789abcdef";
pub const SLACK_SIGNING_SECRET: &str = "bench-slack-signing-secret-42";
pub const SLACK_BOT_TOKEN: &str = "xoxb-bench-token";
pub const SLACK_TEAM: &str = "T0BENCH";
pub const APPROVAL_CHANNEL: &str = "CBENCHAPPROVERS";
pub const AUDIT_CHANNEL: &str = "CBENCHAUDIT";

/// The role every scenario requests.
pub const ROLE: &str = "app";

/// Requester `i` (`u00042`) and approver `i` (`a007`), with their API tokens and Slack ids.
pub fn requester(i: usize) -> String {
    format!("u{i:05}")
}
pub fn approver(i: usize) -> String {
    format!("a{i:03}")
}
pub fn token(person: &str) -> String {
    format!("bench-token-{person}")
}
pub fn slack_id(person: &str) -> String {
    format!("U{}", person.to_uppercase())
}

/// What a scenario's server runs with.
#[derive(Clone)]
pub struct NodeConfig {
    pub database_url: String,
    /// The provider receiver; `None` uses the dry-run provider.
    pub receiver_url: Option<String>,
    /// The fake Slack Web API; `None` runs without Slack.
    pub slack_api: Option<String>,
    pub requesters: usize,
    pub approvers: usize,
    /// `[scheduler] concurrency`; `None` keeps the default.
    pub concurrency: Option<usize>,
    /// More roles like [`ROLE`], each with its own approval channel: `(role, channel)`.
    pub extra_roles: Vec<(String, String)>,
    /// `false` writes `[scheduler] enabled = false`: a replica that runs no due work.
    pub scheduler: bool,
}

impl NodeConfig {
    pub fn new(database_url: &str) -> Self {
        NodeConfig {
            database_url: database_url.to_string(),
            receiver_url: None,
            slack_api: None,
            requesters: 100,
            approvers: 10,
            concurrency: None,
            extra_roles: Vec::new(),
            scheduler: true,
        }
    }

    /// The config file text, listening on `listen`.
    pub fn render(&self, listen: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "[server]\nlisten = \"{listen}\"\n");
        // A URL with a password belongs in the environment, as elevate insists.
        if self.database_url.starts_with("postgres") {
            t.push_str("[database]\nurl_env = \"ELEVATE_BENCH_DATABASE_URL\"\n\n");
        } else {
            let _ = writeln!(t, "[database]\nurl = \"{}\"\n", self.database_url);
        }
        match &self.receiver_url {
            Some(url) => {
                let _ = writeln!(
                    t,
                    "[providers.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"ELEVATE_BENCH_WEBHOOK_SECRET\"\n"
                );
            }
            None => t.push_str("[providers.hook]\ntype = \"dry-run\"\n\n"),
        }
        if self.concurrency.is_some() || !self.scheduler {
            t.push_str("[scheduler]\n");
            if let Some(c) = self.concurrency {
                let _ = writeln!(t, "concurrency = {c}");
            }
            if !self.scheduler {
                t.push_str("enabled = false\n");
            }
            t.push('\n');
        }
        if let Some(api) = &self.slack_api {
            let _ = writeln!(
                t,
                "[slack]\nteam_id = \"{SLACK_TEAM}\"\nsigning_secret_env = \"ELEVATE_BENCH_SLACK_SIGNING_SECRET\"\n\
                 bot_token_env = \"ELEVATE_BENCH_SLACK_BOT_TOKEN\"\naudit_channel = \"{AUDIT_CHANNEL}\"\napi_url = \"{api}\"\n"
            );
        }
        t.push_str("[settings]\nexpiry_warning = \"1m\"\n\n");
        let people: Vec<String> =
            (0..self.requesters).map(requester).chain((0..self.approvers).map(approver)).collect();
        for p in &people {
            let _ = writeln!(
                t,
                "[persons.{p}]\nslack_id = \"{}\"\n[tokens.{p}]\nperson = \"{p}\"\nsha256 = \"{}\"",
                slack_id(p),
                elevate_bot::http::token_hash(&token(p))
            );
        }
        let list = |v: Vec<String>| v.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
        let _ =
            writeln!(t, "\n[groups.engineers]\nmembers = [{}]", list((0..self.requesters).map(requester).collect()));
        let _ = writeln!(t, "[groups.approvers]\nmembers = [{}]", list((0..self.approvers).map(approver).collect()));
        let _ = writeln!(t, "[groups.security]\nmembers = [\"{}\"]\n\n[security]\ngroup = \"security\"\n", approver(0));
        let _ = writeln!(
            t,
            "[roles.{ROLE}]\ndescription = \"bench role\"\nprovider = \"hook\"\ntarget = {{ app = \"bench\" }}\n\
             default_duration = \"1h\"\nmax_duration = \"1d\"\nrequesters = [\"engineers\"]\napprovers = [\"approvers\"]\n\
             approvals_required = 1\nslack_channel = \"{APPROVAL_CHANNEL}\""
        );
        for (role, channel) in &self.extra_roles {
            let _ = writeln!(
                t,
                "\n[roles.{role}]\nprovider = \"hook\"\ntarget = {{ app = \"{role}\" }}\ndefault_duration = \"1h\"\n\
                 max_duration = \"1d\"\nrequesters = [\"engineers\"]\napprovers = [\"approvers\"]\nslack_channel = \"{channel}\""
            );
        }
        t
    }
}

/// A running server.
pub struct Node {
    child: Child,
    pub base: String,
    pub pid: u32,
    /// From spawn to the first `/readyz` 200.
    pub ready_after: Duration,
}

impl Node {
    /// Writes the config into `dir`, spawns `elevate serve` and waits for `/readyz`.
    pub async fn start(elevate: &Path, dir: &Path, name: &str, cfg: &NodeConfig) -> anyhow::Result<Node> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, cfg.render(&listen))?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let started = Instant::now();
        let child = Command::new(elevate)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("ELEVATE_BENCH_DATABASE_URL", &cfg.database_url)
            .env("ELEVATE_BENCH_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("ELEVATE_BENCH_SLACK_SIGNING_SECRET", SLACK_SIGNING_SECRET)
            .env("ELEVATE_BENCH_SLACK_BOT_TOKEN", SLACK_BOT_TOKEN)
            .env("RUST_LOG", std::env::var("ELEVATE_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", elevate.display()))?;
        let pid = child.id().context("no pid")?;
        let base = format!("http://{listen}");
        let mut node = Node { child, base, pid, ready_after: Duration::ZERO };
        node.ready_after = node.wait_ready(started).await.with_context(|| {
            format!("{name} did not become ready; its log is {}", dir.join(format!("{name}.log")).display())
        })?;
        Ok(node)
    }

    async fn wait_ready(&mut self, started: Instant) -> anyhow::Result<Duration> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let url = format!("{}/readyz", self.base);
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited with {status}");
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("not ready after 60 s")
    }

    /// Resident set size, MB (from `/proc`).
    pub fn rss_mb(&self) -> anyhow::Result<f64> {
        rss_of(self.pid).context("cannot read the server's VmRSS")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, as an orchestrator stops a process, then waits (at most `limit`) for it to
    /// exit: how long that took, and its exit code.
    pub async fn terminate(mut self, limit: Duration) -> anyhow::Result<(Duration, Option<i32>)> {
        let sent = Instant::now();
        let status = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(exit) => Ok((sent.elapsed(), exit?.code())),
            Err(_) => bail!("still running {limit:?} after SIGTERM"),
        }
    }
}

/// A process's resident set size, MB, from `/proc/PID/status`.
pub fn rss_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `elevate` binary next to this one (both built by `cargo run --release`), built first
/// unless told not to.
pub fn elevate_binary(build: bool) -> anyhow::Result<PathBuf> {
    if build {
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--locked", "-p", "elevate-bot", "--bin", "elevate"])
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("building the release elevate binary failed");
        }
    }
    let me = std::env::current_exe()?;
    let bin = me.parent().context("exe dir")?.join("elevate");
    if !bin.exists() {
        bail!(
            "{} does not exist: run the bench with `cargo run --release -p elevate-tests --bin bench`",
            bin.display()
        );
    }
    Ok(bin)
}
