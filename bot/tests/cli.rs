//! The `elevate` binary as people run it: real processes, real SQLite files, real HTTP.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_elevate");

fn quickstart() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml")).unwrap()
}

fn elevate(args: &[&str], token: Option<&str>, server: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    for var in ["ELEVATE_TOKEN", "ELEVATE_CONFIG", "ELEVATE_LISTEN", "ELEVATE_DATABASE_URL"] {
        c.env_remove(var);
    }
    if let Some(t) = token {
        c.env("ELEVATE_TOKEN", t);
    }
    if let Some(s) = server {
        c.env("ELEVATE_SERVER", s);
    }
    c.output().expect("run elevate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A server process on a free port with its own SQLite file, killed (not shut down) on drop.
struct Server {
    child: Child,
    url: String,
    config: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &str) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("elevate.toml");
        let text = quickstart()
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("elevate-quickstart.db", &dir.join("e.db").display().to_string())
            + extra;
        std::fs::write(&config, text).unwrap();
        Self::start_with(config, port)
    }

    fn start_with(config: PathBuf, port: u16) -> Server {
        Self::start_overridden(config, port, &[], &[])
    }

    /// `serve` with extra flags and environment, expected to listen on `port`.
    fn start_overridden(config: PathBuf, port: u16, flags: &[&str], env: &[(&str, &str)]) -> Server {
        let child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(flags)
            .env_remove("ELEVATE_LISTEN")
            .env_remove("ELEVATE_DATABASE_URL")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, url, config }
    }

    /// `kill -9`: nothing is flushed or shut down cleanly.
    fn crash(mut self) -> (PathBuf, u16) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let port = self.url.rsplit(':').next().unwrap().parse().unwrap();
        (self.config.clone(), port)
    }

    fn run(&self, token: &str, args: &[&str]) -> Output {
        elevate(args, Some(token), Some(&self.url))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_accepts_the_quickstart_and_names_every_problem_of_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, quickstart()).unwrap();
    let o = elevate(&["check", "--config", good.to_str().unwrap()], None, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok (3 persons, 3 groups, 2 roles"), "{}", stdout(&o));

    let bad = dir.path().join("bad.toml");
    let text = quickstart().replace("max_duration = \"5m\"", "max_duration = \"5 minutes\"").replace(
        "approvers = [\"db-approvers\"]\napprovals_required = 1",
        "approvers = [\"db-aprovers\"]\napprovals_required = 1",
    ) + "\n[roles.x]\nprovider = \"nope\"\n";
    std::fs::write(&bad, text).unwrap();
    let o = elevate(&["check", "--config", bad.to_str().unwrap()], None, None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for needle in ["roles.demo-db.max_duration", "roles.demo-db.approvers[0]: unknown group `db-aprovers`", "roles.x"] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
}

#[test]
fn explain_says_who_approves_and_what_would_happen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("q.toml");
    std::fs::write(&cfg, quickstart()).unwrap();
    let o =
        elevate(&["explain", "--config", cfg.to_str().unwrap(), "--as", "alice", "--role", "prod-admin"], None, None);
    let out = stdout(&o);
    assert!(out.contains("may request: yes"), "{out}");
    assert!(out.contains("approvers:   bob, carol"), "{out}");
    assert!(out.contains("2 distinct approver(s) needed"), "{out}");
    let o =
        elevate(&["explain", "--config", cfg.to_str().unwrap(), "--as", "alice", "--role", "prod-admn"], None, None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Did you mean `prod-admin`?"), "{}", stderr(&o));
}

#[test]
fn the_walkthrough_works_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let o = s.run("example-token-alice", &["request", "demo-db", "2m", "INC-7", "look", "at", "the", "slow", "query"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "#1 alice demo-db for 2m — pending, 0 of 1 approvals");
    let o = s.run("example-token-alice", &["approve", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an approver"), "{}", stderr(&o));
    let o = s.run("example-token-bob", &["approve", "#1"]);
    assert_eq!(stdout(&o).trim(), "#1 alice demo-db for 2m — approved");
    let t = Instant::now();
    loop {
        let o = s.run("example-token-alice", &["status"]);
        if stdout(&o).contains("active, until") {
            assert!(stdout(&o).contains("[dry run: nothing applied]"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "not applied: {}", stdout(&o));
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = s.run("example-token-alice", &["request", "demo-db", "9h", "INC-1", "x"]);
    assert!(stderr(&o).contains("at most 5m"), "{}", stderr(&o));
    let o = s.run("not-a-token", &["status"]);
    assert!(stderr(&o).contains("Unknown or revoked API token"), "{}", stderr(&o));
    let o = elevate(&["status"], None, Some(&s.url));
    assert!(stderr(&o).contains("ELEVATE_TOKEN is not set"), "{}", stderr(&o));
    let o = s.run("example-token-carol", &["revoke", "1", "--reason", "demo over"]);
    assert_eq!(o.status.code(), Some(2), "revoke without a terminal needs --yes");
    let o = s.run("example-token-carol", &["revoke", "1", "--reason", "demo over", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_killed_server_revokes_overdue_grants_as_soon_as_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    s.run("example-token-alice", &["request", "demo-db", "1s", "INC-7", "quick", "look"]);
    s.run("example-token-bob", &["approve", "1"]);
    let t = Instant::now();
    while !stdout(&s.run("example-token-alice", &["status", "1"])).contains("active") {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (config, port) = s.crash();
    std::thread::sleep(Duration::from_millis(1100));
    let s = Server::start_with(config, port);
    let t = Instant::now();
    loop {
        let out = stdout(&s.run("example-token-alice", &["status", "1"]));
        if out.contains("— expired") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still {out}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_refuses_to_start_without_a_database_or_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pg.toml");
    std::fs::write(&cfg, quickstart().replace("url = \"elevate-quickstart.db\"", "url_env = \"ELEVATE_TEST_NO_DB\""))
        .unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("ELEVATE_TEST_NO_DB", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot connect to PostgreSQL"), "{}", stderr(&o));

    let cfg = dir.path().join("hook.toml");
    let text = quickstart().replace(
        "[providers.dry]\ntype = \"dry-run\"",
        "[providers.dry]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nsecret_env = \"ELEVATE_TEST_UNSET_SECRET\"",
    );
    std::fs::write(&cfg, text.replace("elevate-quickstart.db", &dir.path().join("h.db").display().to_string()))
        .unwrap();
    let o = Command::new(BIN).args(["serve", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("ELEVATE_TEST_UNSET_SECRET") && err.contains("not set"), "{err}");
}

#[test]
fn audit_verify_names_the_edited_event_and_export_writes_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    s.run("example-token-alice", &["request", "demo-db", "2m", "INC-7", "look"]);
    s.run("example-token-bob", &["approve", "1"]);
    let cfg = s.config.clone();
    drop(s);
    let c = cfg.to_str().unwrap();
    let o = elevate(&["audit", "verify", "--config", c], None, None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));

    let o = elevate(&["audit", "export", "--config", c, "--format", "jsonl"], None, None);
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 2);
    assert_eq!(lines[0]["kind"], "request.created");
    let o = elevate(&["audit", "export", "--config", c, "--format", "csv", "--since", "1d"], None, None);
    assert!(stdout(&o).starts_with("seq,at,actor,kind,subject,details,prev_hash,hash\n"), "{}", stdout(&o));
    let o = elevate(&["audit", "export", "--config", c, "--format", "xml"], None, None);
    assert_eq!(o.status.code(), Some(2));

    // Edit event 1 behind elevate's back.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = elevate_sql::SqlStore::connect(&dir.path().join("e.db").display().to_string()).await.unwrap();
        store.execute_raw_for_tests("UPDATE audit_events SET actor = 'person:bob' WHERE seq = 1").await.unwrap();
    });
    let o = elevate(&["audit", "verify", "--config", c], None, None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("BROKEN: audit chain broken at seq 1"), "{}", stdout(&o));
}

#[test]
fn audit_verify_with_an_anchor_names_the_events_the_chain_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    s.run("example-token-alice", &["request", "demo-db", "2m", "INC-7", "look"]);
    let cfg = s.config.clone();
    drop(s);
    let c = cfg.to_str().unwrap();
    let head = |o: &Output| -> Vec<String> {
        let out = stdout(o);
        out.split("head seq ").nth(1).unwrap().split_whitespace().map(String::from).collect()
    };
    let o = elevate(&["audit", "verify", "--config", c], None, None);
    let h = head(&o);
    let (seq, hash) = (h[0].parse::<i64>().unwrap(), h[2].as_str());
    // As pasted from the audit channel.
    let o = elevate(&["audit", "verify", "--config", c, "--anchor", &format!("{seq}:{hash}")], None, None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("seq {seq} hash {hash} matches the chain")), "{}", stdout(&o));
    // An anchor further than the chain: what came after was cut off.
    let later = format!("{}:{hash}", seq + 3);
    let o = elevate(&["audit", "verify", "--config", c, "--anchor", &later], None, None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let want = format!("BROKEN: the chain ends at seq {seq}, but the anchor (--anchor {later}) names seq {}", seq + 3);
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("events {}..={} are missing", seq + 1, seq + 3)), "{}", stdout(&o));
    let o = elevate(&["audit", "verify", "--config", c, "--anchor", "12:nothex"], None, None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("64 hex digits"), "{}", stderr(&o));
}

#[test]
fn token_new_prints_a_token_and_its_hash_once() {
    let o = elevate(&["token", "new", "--person", "alice", "--name", "laptop"], None, None);
    let out = stdout(&o);
    let token = out.split_whitespace().find(|w| w.starts_with("elv_")).expect("a token");
    let hash = elevate_bot::http::token_hash(token);
    assert!(out.contains(&format!("sha256 = \"{hash}\"")), "{out}");
    assert!(out.contains("[tokens.laptop]"));
}

#[test]
fn a_drill_from_the_cli_reports_each_step_and_verifies_removal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let o = s.run("example-token-alice", &["drill", "demo-db", "--hold", "1s"]);
    assert_eq!(o.status.code(), Some(1), "alice may not drill: {}", stderr(&o));
    let o = s.run("example-token-carol", &["drill", "demo-db", "--hold", "1s"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for needle in [
        "granted by the provider",
        "revoked by the provider",
        "visible in the provider's list while active: yes",
        "access really removed (provider no longer lists it): yes",
    ] {
        assert!(out.contains(needle), "missing {needle} in:\n{out}");
    }
}

#[test]
fn listen_and_database_come_from_the_flag_then_the_environment_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| dir.path().join(name).display().to_string();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The file's address is taken: a server that ignored the overrides could not start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let file_addr = taken.local_addr().unwrap().to_string();
    let cfg = dir.path().join("elevate.toml");
    let text = quickstart().replace("127.0.0.1:8080", &file_addr).replace("elevate-quickstart.db", &db("file.db"));
    std::fs::write(&cfg, text).unwrap();

    // The environment over the file: a container sets these and mounts the file unchanged.
    let port = free();
    let listen = format!("127.0.0.1:{port}");
    let s = Server::start_overridden(
        cfg.clone(),
        port,
        &[],
        &[("ELEVATE_LISTEN", listen.as_str()), ("ELEVATE_DATABASE_URL", db("env.db").as_str())],
    );
    let o = s.run("example-token-alice", &["request", "demo-db", "2m", "INC-8", "look"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A container's HEALTHCHECK finds the server from the same variable.
    let health = || Command::new(BIN).arg("healthcheck").env("ELEVATE_LISTEN", &listen).output().unwrap();
    let o = health();
    assert!(o.status.success() && stdout(&o).starts_with("ok: "), "{}{}", stdout(&o), stderr(&o));
    drop(s);
    let o = health();
    assert_eq!(o.status.code(), Some(1), "a stopped server is unhealthy");
    assert!(stderr(&o).starts_with("unhealthy: cannot reach"), "{}", stderr(&o));

    // A flag over the environment.
    let port = free();
    let listen = format!("127.0.0.1:{port}");
    let s = Server::start_overridden(
        cfg.clone(),
        port,
        &["--listen", listen.as_str(), "--database-url", db("flag.db").as_str()],
        &[("ELEVATE_LISTEN", file_addr.as_str()), ("ELEVATE_DATABASE_URL", db("env.db").as_str())],
    );
    drop(s);
    assert!(Path::new(&db("env.db")).exists() && Path::new(&db("flag.db")).exists());

    // Commands that open the database take the same overrides: env.db holds the request.
    let export = |flags: &[&str], env: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["audit", "export", "--config", cfg.to_str().unwrap(), "--format", "jsonl"]).args(flags);
        c.env_remove("ELEVATE_DATABASE_URL").env("RUST_LOG", "warn");
        if let Some(url) = env {
            c.env("ELEVATE_DATABASE_URL", url);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().count()
    };
    assert!(export(&[], Some(&db("env.db"))) >= 1);
    assert_eq!(export(&["--database-url", &db("flag.db")], Some(&db("env.db"))), 0, "the flag wins");
    let o =
        elevate(&["audit", "verify", "--config", cfg.to_str().unwrap(), "--database-url", &db("env.db")], None, None);
    assert!(stdout(&o).starts_with("ok: "), "{}{}", stdout(&o), stderr(&o));
    assert!(!Path::new(&db("file.db")).exists(), "the file's database was never opened");

    // A bad override is named and nothing starts.
    let o = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("ELEVATE_LISTEN", "everywhere:80")
        .env_remove("ELEVATE_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("ELEVATE_LISTEN") && err.contains("`everywhere:80` is not an address"), "{err}");
    assert!(!Path::new(&db("file.db")).exists());
    drop(taken);
}

#[test]
fn every_argument_and_option_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(format!("{path} {} (no about)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&elevate_bot::cli::Cli::command(), "elevate", &mut missing);
    assert!(missing.is_empty(), "without help: {missing:#?}");
}

#[test]
fn whoami_roles_and_a_request_that_waits_for_its_decision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let o = s.run("example-token-carol", &["whoami"]);
    assert_eq!(stdout(&o).trim(), "carol (token `carol-example`), security team", "{}", stderr(&o));
    let o = s.run("example-token-alice", &["roles"]);
    let roles = stdout(&o);
    assert!(
        roles.contains("demo-db") && roles.contains("at most 5m") && roles.contains("approved by 1 of db-approvers"),
        "{roles}"
    );

    // The same strict duration rule as in chat: `1.5h` is refused, not read as the reason.
    let o = s.run("example-token-alice", &["request", "demo-db", "1.5h", "INC-7", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a duration"), "{}", stderr(&o));

    // --wait follows the request until bob decides; the exit code says how it ended.
    let url = s.url.clone();
    let approve = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        elevate(&["approve", "1"], Some("example-token-bob"), Some(&url))
    });
    let o = s.run("example-token-alice", &["request", "demo-db", "2m", "INC-7", "look", "--wait"]);
    assert!(approve.join().unwrap().status.success());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = stdout(&o);
    assert!(lines.contains("— pending") && lines.contains("— active"), "{lines}");

    let url = s.url.clone();
    let deny = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        elevate(&["deny", "2", "--reason", "not now"], Some("example-token-bob"), Some(&url))
    });
    let o = s.run("example-token-alice", &["request", "prod-admin", "2m", "INC-8", "look", "--wait"]);
    deny.join().unwrap();
    assert_eq!(o.status.code(), Some(3), "denied: {} {}", stdout(&o), stderr(&o));
}

#[test]
fn several_roles_and_a_start_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let args = ["request", "demo-db,prod-admin", "2m", "INC-9", "failover", "--in", "1h", "--json"];
    let o = s.run("example-token-alice", &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let roles: Vec<&str> = v["members"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["demo-db", "prod-admin"]);
    assert!(v["starts_at"].is_string(), "{v}");
    assert_eq!(v["reason"], "INC-9 failover");

    let o = s.run("example-token-alice", &["request", "demo-db", "2m", "INC-9", "x", "--at", "2026-13-01 10:00"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a date"), "{}", stderr(&o));
}

#[test]
fn completions_man_page_and_version_come_from_the_same_definition() {
    let o = elevate(&["completions", "bash"], None, None);
    assert!(o.status.success() && stdout(&o).contains("_elevate()") && stdout(&o).contains("breakglass"));
    let o = elevate(&["completions", "zsh"], None, None);
    assert!(o.status.success() && stdout(&o).contains("#compdef elevate"));
    let o = elevate(&["man"], None, None);
    assert!(o.status.success() && stdout(&o).contains(".TH elevate 1") && stdout(&o).contains("ELEVATE_TOKEN"));
    let o = elevate(&["--version"], None, None);
    let v = stdout(&o);
    assert!(v.starts_with("elevate ") && v.contains(" (") && v.trim_end().ends_with(')'), "{v}");
    let o = elevate(&["report", "--format", "xml"], None, None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[possible values: table, csv, json]"), "{}", stderr(&o));
}

const LOGS_ROLE: &str = "\n[roles.demo-logs]\nprovider = \"dry\"\ndefault_duration = \"1h\"\nmax_duration = \"8h\"\n\
                         requesters = [\"engineers\"]\napprovers = [\"db-approvers\"]\n";

#[test]
fn the_policy_reloads_without_a_restart_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let original = std::fs::read_to_string(&s.config).unwrap();
    let roles = |who: &str| stdout(&s.run(who, &["roles"]));
    assert!(!roles("example-token-alice").contains("demo-logs"));

    std::fs::write(&s.config, format!("{original}{LOGS_ROLE}")).unwrap();
    let o = s.run("example-token-alice", &["reload"]);
    assert_eq!(o.status.code(), Some(1), "only the security team reloads: {}", stderr(&o));
    let o = s.run("example-token-carol", &["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("roles added: demo-logs"), "{}", stdout(&o));
    assert!(roles("example-token-alice").contains("demo-logs"), "the next request sees the new policy");

    // An invalid file: every problem named, the running policy kept.
    let bad = format!("{original}{LOGS_ROLE}")
        .replace("provider = \"dry\"\ndefault_duration = \"1h\"", "provider = \"nope\"\ndefault_duration = \"soon\"");
    std::fs::write(&s.config, bad).unwrap();
    let o = s.run("example-token-carol", &["reload"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("roles.demo-logs.provider") && err.contains("roles.demo-logs.default_duration"), "{err}");
    assert!(roles("example-token-alice").contains("demo-logs"), "still the last good policy");

    // A start-only section changed: reloaded, and said to need a restart.
    let restart = format!("{original}{LOGS_ROLE}").replace("[scheduler]\n", "[scheduler]\nconcurrency = 7\n");
    std::fs::write(&s.config, restart).unwrap();
    let o = s.run("example-token-carol", &["reload"]);
    assert!(o.status.success() && stdout(&o).contains("needs a restart to apply: scheduler"), "{}", stdout(&o));

    // SIGHUP does the same as `elevate reload`.
    std::fs::write(&s.config, &original).unwrap();
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let t = Instant::now();
    while roles("example-token-alice").contains("demo-logs") {
        assert!(t.elapsed() < Duration::from_secs(10), "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Each reload is in the audit log, with the config's hash.
    let o = elevate(&["audit", "export", "--config", s.config.to_str().unwrap()], None, None);
    let reloads = stdout(&o).lines().filter(|l| l.contains("config.reloaded")).count();
    assert_eq!(reloads, 3, "{}", stdout(&o));
    assert!(stdout(&o).contains("config_sha256"));
}

#[test]
fn each_request_is_logged_once_without_secrets_and_refused_logins_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("elevate.toml");
    let text = quickstart()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("elevate-quickstart.db", &dir.path().join("e.db").display().to_string());
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("http://127.0.0.1:{port}");
    elevate(&["status", "1"], Some("example-token-alice"), Some(&url));
    elevate(&["status"], Some("a-wrong-token-SECRET"), Some(&url));
    let _ = std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut s| {
        use std::io::Write;
        let _ =
            s.write_all(b"GET /api/v1/requests?token=QUERY-SECRET HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    });
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(!out.contains("\u{1b}["), "no colour codes when stderr is not a terminal");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("elevate::http")).collect();
    assert!(lines.iter().any(|l| l.contains("route=/api/v1/requests/{id}") && l.contains("method=GET")), "{out}");
    assert!(lines.iter().any(|l| l.contains("status=401")), "the refused call is logged too: {out}");
    assert!(lines.iter().all(|l| l.contains("request_id=") && l.contains("ms=")), "{out}");
    assert!(out.contains("API authentication refused"), "{out}");
    for secret in ["example-token-alice", "a-wrong-token-SECRET", "QUERY-SECRET"] {
        assert!(!out.contains(secret), "{secret} reached the log:\n{out}");
    }
}

#[test]
fn a_second_server_on_the_same_sqlite_file_exits_at_once_and_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), "");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let second = || {
        Command::new(BIN)
            .args(["serve", "--config", first.config.to_str().unwrap(), "--listen", &listen])
            .env_remove("ELEVATE_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    // `output()` returns only when the process has exited: a second server that ran would hang here.
    let o = second();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let db = dir.path().join("e.db");
    assert!(
        err.contains(&format!("another elevate server is already running on the SQLite database {}", db.display())),
        "{err}"
    );
    assert!(err.contains("e.db.lock") && err.contains("PostgreSQL for several replicas"), "{err}");
    assert!(TcpListener::bind(&listen).is_ok(), "the second server never listened");

    let o = first.run("example-token-alice", &["request", "demo-db", "2m", "INC-9", "still", "served"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The CLI reads the file beside the running server.
    let o = elevate(&["audit", "verify", "--config", first.config.to_str().unwrap()], None, None);
    assert!(stdout(&o).starts_with("ok: "), "{}{}", stdout(&o), stderr(&o));

    // A crashed server leaves no lock behind: the operating system drops it with the process.
    let (config, port) = first.crash();
    let s = Server::start_with(config, port);
    let o = s.run("example-token-alice", &["status", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_pipeline_waits_for_its_own_access_with_a_service_token() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[services.deploy-bot]
owner = "alice"
principals = {{ webhook = "deploy-bot@ci" }}
[groups.pipelines]
members = ["deploy-bot"]
[roles.ci-deploy]
provider = "dry"
default_duration = "5m"
max_duration = "15m"
requesters = ["pipelines"]
approvers = ["db-approvers"]
[tokens.deploy-bot]
service = "deploy-bot"
sha256 = "{}"
"#,
        elevate_bot::http::token_hash("example-token-deploy-bot")
    );
    let s = Server::start(dir.path(), &extra);
    let url = s.url.clone();
    let approve = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        elevate(&["approve", "1"], Some("example-token-bob"), Some(&url))
    });
    let o = s.run("example-token-deploy-bot", &["request", "ci-deploy", "5m", "release", "42", "--wait"]);
    assert!(approve.join().unwrap().status.success());
    assert_eq!(o.status.code(), Some(0), "{} {}", stdout(&o), stderr(&o));
    let lines = stdout(&o);
    assert!(lines.contains("— pending") && lines.contains("— active"), "{lines}");
    let o = s.run("example-token-deploy-bot", &["request", "ci-deploy", "5m", "release", "43"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.run("example-token-deploy-bot", &["approve", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("You are not an approver"), "a service cannot approve: {}", stderr(&o));
}
