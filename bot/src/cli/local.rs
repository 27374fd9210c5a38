//! Commands that work on the config file and database directly.

use crate::{
    app::{App, AppOptions},
    config::{Config, DatabaseConfig},
    http::token_hash,
};
use chrono::{DateTime, Utc};
use elevate_core::{GrantDuration, explain, ports::Store};
use elevate_sql::SqlStore;
use std::path::Path;
use tracing::info;

/// Where a command's settings come from: the config file, and what the deployment overrides
/// over it (flag or environment, already merged by clap).
pub struct Source<'a> {
    pub path: &'a Path,
    pub listen: Option<&'a str>,
    pub database_url: Option<&'a str>,
}

fn load(path: &Path) -> Result<Config, i32> {
    load_from(&Source { path, listen: None, database_url: None })
}

/// Loads the file, then applies the overrides; a bad override is named with its flag and
/// variable and stops the command before anything is opened.
fn load_from(src: &Source<'_>) -> Result<Config, i32> {
    let path = src.path;
    let mut config = Config::load(path).map_err(|errs| {
        eprintln!("error: {} has {} problem{}:", path.display(), errs.len(), if errs.len() == 1 { "" } else { "s" });
        for e in errs {
            eprintln!("  {e}");
        }
        2
    })?;
    if let Some(listen) = src.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            eprintln!("error: --listen / ELEVATE_LISTEN: `{listen}` is not an address like 127.0.0.1:8080");
            return Err(2);
        }
        config.server.listen = listen.to_string();
    }
    if let Some(url) = src.database_url {
        if url.trim().is_empty() {
            eprintln!("error: --database-url / ELEVATE_DATABASE_URL is empty");
            return Err(2);
        }
        if let Err(e) = elevate_sql::Dialect::parse(url) {
            eprintln!("error: --database-url / ELEVATE_DATABASE_URL: {e}");
            return Err(2);
        }
        config.database = DatabaseConfig { url: Some(url.to_string()), url_env: None };
    }
    Ok(config)
}

async fn open_store(config: &Config) -> Result<SqlStore, i32> {
    let url = config.database_url().map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    SqlStore::connect(&url).await.map_err(|e| {
        eprintln!("error: {e}");
        2
    })
}

/// Prints problems as `load_from` does, under a heading naming what they are about.
fn report_problems(what: &str, errs: &[elevate_core::policy::ConfigError]) {
    eprintln!("error: {what} {} problem{}:", errs.len(), if errs.len() == 1 { "" } else { "s" });
    for e in errs {
        eprintln!("  {e}");
    }
}

pub async fn serve(src: &Source<'_>) -> i32 {
    let Ok(config) = load_from(src) else { return 2 };
    // Before anything is opened: a server without its secrets refuses to start, naming them all.
    let problems = config.check_secrets();
    if !problems.is_empty() {
        report_problems("cannot start: the secrets have", &problems);
        return 2;
    }
    let listen = config.listen();
    let opts = AppOptions { config_path: Some(src.path.to_path_buf()), ..AppOptions::default() };
    let app = match App::build(config, opts).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot start: {e:#}");
            return 2;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return 2;
        }
    };
    info!(address = %format!("http://{listen}"), "elevate listening");
    reload_on_hangup(app.reloader.clone());
    match app.serve(listener, first_of_two_signals()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// SIGHUP re-reads the config file, as daemons do; the outcome goes to the log (and a
/// successful reload to the audit log).
fn reload_on_hangup(reloader: std::sync::Arc<crate::reload::Reloader>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match reloader.reload(None).await {
                Ok(done) => {
                    info!(config_sha256 = %done.config_sha256, changes = ?done.changes, "policy reloaded (SIGHUP)");
                    if !done.needs_restart.is_empty() {
                        tracing::warn!(sections = ?done.needs_restart, "these sections changed but are only read at start: restart elevate to apply them");
                    }
                }
                Err(crate::reload::ReloadError::Invalid(problems)) => {
                    for p in &problems {
                        tracing::error!(path = %p.path, problem = %p.message, "reload refused: the running policy stays");
                    }
                }
                Err(crate::reload::ReloadError::Refused(e)) => {
                    tracing::error!(error = %e, "reload failed; the running policy stays")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = reloader;
}

/// Resolves at the first SIGTERM or ctrl-c, which starts the drain; a second one exits at once
/// (status 1), leaving what is still running to be taken over when its leases end.
fn first_of_two_signals() -> impl std::future::Future<Output = ()> + Send + 'static {
    let (first, got_first) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down: draining (a second SIGTERM or ctrl-c exits at once)");
        let _ = first.send(());
        shutdown_signal().await;
        tracing::warn!("second signal: exiting without draining; unfinished items run again when their leases end");
        std::process::exit(1);
    });
    async move {
        let _ = got_first.await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Checks the file, then (unless `skip_secrets`, for CI where they are absent) reads and checks
/// every secret it names, as `serve` would; every problem is printed, and any is exit 2.
pub fn check(src: &Source<'_>, skip_secrets: bool) -> i32 {
    let path = src.path;
    let Ok(config) = load_from(src) else { return 2 };
    if !skip_secrets {
        let problems = config.check_secrets();
        if !problems.is_empty() {
            report_problems(&format!("{} is valid, but its secrets have", path.display()), &problems);
            return 2;
        }
    }
    let p = &config.policy;
    println!(
        "{}: ok ({} persons, {} groups, {} roles, {} providers, {} API tokens{})",
        path.display(),
        p.persons.len(),
        p.groups.len(),
        p.roles.len(),
        config.providers.len(),
        p.tokens.len(),
        if skip_secrets {
            "; secrets not checked".to_string()
        } else {
            format!("; {} secrets read and checked", config.secret_uses().len())
        }
    );
    0
}

pub fn explain(path: &Path, person: &str, role: &str) -> i32 {
    let Ok(config) = load(path) else { return 2 };
    match explain::explain(&config.policy, person, role) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub async fn audit_verify(src: &Source<'_>, public_key: Option<&str>, anchor: Option<&str>) -> i32 {
    let anchor = match anchor.map(crate::anchor::parse_arg).transpose() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Ok(config) = load_from(src) else { return 2 };
    let Ok(store) = open_store(&config).await else { return 2 };
    let derived = config.audit.seed().ok().flatten().map(|seed| elevate_core::audit::sign_checkpoint(&seed, 0, "").1);
    let key = public_key.map(String::from).or(config.audit.public_key.clone()).or(derived);
    let progress = super::progress::Progress::new("audit verify");
    let verified = elevate_core::service::verify_store_watched(&store, key.as_deref(), &|n| progress.update(n)).await;
    progress.finish();
    match verified {
        Ok(r) => match r.broken {
            None if anchor.is_some() => {
                let given = anchor.as_ref().expect("checked");
                match crate::anchor::check(&store, r.head.clone(), given, key.as_deref()).await {
                    Ok(ok) => {
                        println!("ok: {} events verified; {ok}", r.checked);
                        0
                    }
                    Err(why) => {
                        println!("BROKEN: {why}");
                        println!("{} events verified as a chain, but it does not reach the anchor", r.checked);
                        1
                    }
                }
            }
            None => {
                match r.head {
                    Some((seq, hash)) => println!("ok: {} events verified; head seq {seq} hash {hash}", r.checked),
                    None => println!("ok: the audit log is empty"),
                }
                println!(
                    "{} checkpoint(s) match the chain{}",
                    r.checkpoints,
                    if key.is_some() {
                        format!(", {} signed by the checkpoint key", r.signed_checkpoints)
                    } else {
                        String::new()
                    }
                );
                0
            }
            Some(b) => {
                println!("BROKEN: {b}");
                println!("{} events before it verified", r.checked);
                1
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

pub fn audit_keygen() -> i32 {
    let seed: [u8; 32] = rand::random();
    let (_, public) = elevate_core::audit::sign_checkpoint(&seed, 0, "");
    println!(
        "signing key (secret: put it in the environment variable [audit] signing_key_env names, never in the config):"
    );
    println!("{}", hex::encode(seed));
    println!();
    println!("public key (for [audit] public_key and for auditors):");
    println!("{public}");
    0
}

/// `--since` as RFC 3339 or an age (`30d`).
fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    GrantDuration::parse(s)
        .map(|d| now - d.as_chrono())
        .map_err(|_| format!("--since `{s}` is neither a time like 2026-01-31T00:00:00Z nor an age like 30d"))
}

pub async fn audit_export(src: &Source<'_>, format: &str, since: Option<&str>) -> i32 {
    if !matches!(format, "jsonl" | "csv") {
        eprintln!("error: --format must be jsonl or csv, not `{format}`");
        return 2;
    }
    let since = match since.map(|s| parse_since(s, Utc::now())).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Ok(config) = load_from(src) else { return 2 };
    let Ok(store) = open_store(&config).await else {
        return 2;
    };
    let stdout = std::io::stdout();
    let mut csv_out = (format == "csv").then(|| csv::Writer::from_writer(stdout.lock()));
    if let Some(w) = csv_out.as_mut() {
        let _ = w.write_record(["seq", "at", "actor", "kind", "subject", "details", "prev_hash", "hash"]);
    }
    let progress = super::progress::Progress::new("audit export");
    let mut written = 0u64;
    let mut after = 0;
    loop {
        progress.update(written);
        let page = match store.events(after, 1000).await {
            Ok(p) => p,
            Err(e) => {
                progress.finish();
                eprintln!("error: {e}");
                return 2;
            }
        };
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.seq).unwrap_or(after);
        for ev in page.iter().filter(|e| since.is_none_or(|s| e.at >= s)) {
            written += 1;
            match csv_out.as_mut() {
                Some(w) => {
                    let _ = w.write_record([
                        ev.seq.to_string(),
                        ev.at.to_rfc3339(),
                        ev.actor.clone(),
                        ev.kind.clone(),
                        ev.subject.map(|s| s.to_string()).unwrap_or_default(),
                        ev.details.to_string(),
                        ev.prev_hash.clone(),
                        ev.hash.clone(),
                    ]);
                }
                None => println!("{}", serde_json::to_string(ev).unwrap_or_default()),
            }
        }
    }
    if let Some(mut w) = csv_out {
        let _ = w.flush();
    }
    progress.finish();
    0
}

/// `key` is `person` or `service`: which kind of identity the token belongs to.
pub fn token_new(key: &str, person: &str, name: &str) -> i32 {
    if let Err(e) = elevate_core::PersonId::parse(person) {
        eprintln!("error: {e}");
        return 2;
    }
    let bytes: [u8; 24] = rand::random();
    let token = format!("elv_{}", hex::encode(bytes));
    println!("token (give it to {person}; it is shown only now): {token}");
    println!();
    println!("add to the config file:");
    println!("[tokens.{name}]");
    println!("{key} = \"{person}\"");
    println!("sha256 = \"{}\"", token_hash(&token));
    0
}

pub async fn report(src: &Source<'_>, since: &str, format: &str) -> i32 {
    if !matches!(format, "table" | "csv" | "json") {
        eprintln!("error: --format must be table, csv or json, not `{format}`");
        return 2;
    }
    let now = Utc::now();
    let since = match parse_since(since, now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Ok(config) = load_from(src) else { return 2 };
    let Ok(store) = open_store(&config).await else { return 2 };
    let report = match elevate_core::service::report_from_store(&store, since, now).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        "csv" => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            for row in report.csv_rows() {
                let _ = w.write_record(row);
            }
            let _ = w.flush();
        }
        _ => print!("{}", report.table()),
    }
    0
}
