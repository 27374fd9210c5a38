//! elevate-bot: the `elevate` binary's library. Reads the config, wires the store, providers,
//! service, scheduler and audit feed together, serves the HTTP API, and runs the CLI.

pub mod anchor;
pub mod app;
pub mod cli;
pub mod config;
pub mod feed;
pub mod http;
pub mod leases;
pub mod metrics;
pub mod notices;
pub mod oncall;
pub mod providers;
pub mod reload;
pub mod scheduler;
pub mod secrets;
pub mod single;
pub mod tickets;

/// reqwest is built without a TLS crypto provider of its own (`rustls-no-provider`), and the
/// chat clients bring ring: installing ring's provider once, before any HTTP client is built,
/// keeps two providers from fighting at the first HTTPS call. Safe to call more than once.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Logging for the binary: human-readable by default, JSON with `ELEVATE_LOG_FORMAT=json`,
/// level from `RUST_LOG` (default `info`). Colours only on a terminal: a log file or a
/// collector gets plain text. Secrets are never logged: configs hold only their sources, and
/// errors name where a secret was looked for, not its value.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("ELEVATE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
