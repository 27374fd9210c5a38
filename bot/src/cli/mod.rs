//! The `elevate` command line. `serve`, `check`, `explain`, `audit` and `token` work on the
//! config file and database directly; the action verbs call a running server's API with the
//! token in `ELEVATE_TOKEN`, so the actor is always the token's person.

mod client;
mod extras;
mod local;
mod progress;
mod wait;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "elevate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ELEVATE_GIT_COMMIT"), ")"),
    about = "Just-in-time privilege elevation, approved in chat.",
    after_help = "Environment:\n  ELEVATE_TOKEN   your API token, for the commands that call a server (request, approve, \
                  status, whoami, …); `elevate token new` makes one. Kept out of flags so that it stays out of \
                  the process list and shell history.\n  ELEVATE_SERVER  the server to talk to (or --server)\n  \
                  ELEVATE_CONFIG  the config file (or --config)\n  ELEVATE_DATABASE_URL, ELEVATE_LISTEN  over the \
                  config file, for serve and check"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct ConfigArg {
    /// The config file.
    #[arg(long, short, env = "ELEVATE_CONFIG", default_value = "elevate.toml")]
    pub config: PathBuf,
}

/// The database, for commands that open it. Precedence: `--database-url`, then
/// `ELEVATE_DATABASE_URL`, then `[database]` in the config file.
#[derive(clap::Args, Clone)]
pub struct DatabaseArg {
    /// The database, over `[database]` in the config file: a SQLite file path or a
    /// `postgres://` URL. A URL with a password belongs in the environment variable (a flag
    /// shows in the process list).
    #[arg(long, env = "ELEVATE_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// What differs per deployment, over the config file. Precedence for each: the flag, then the
/// environment variable, then the file.
#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The address to listen on, over `[server] listen` (e.g. 0.0.0.0:8080 in a container).
    #[arg(long, env = "ELEVATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArg,
}

impl ServeArgs {
    fn source(&self) -> local::Source<'_> {
        local::Source {
            path: &self.config.config,
            listen: self.listen.as_deref(),
            database_url: self.database.database_url.as_deref(),
        }
    }
}

fn with_database<'a>(config: &'a ConfigArg, database: &'a DatabaseArg) -> local::Source<'a> {
    local::Source { path: &config.config, listen: None, database_url: database.database_url.as_deref() }
}

#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// The elevate server to talk to (your token is read from ELEVATE_TOKEN).
    #[arg(long, env = "ELEVATE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// How `report` prints.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReportFormat {
    /// Aligned columns, for people.
    Table,
    /// Comma-separated, for spreadsheets.
    Csv,
    /// One JSON document.
    Json,
}

/// How `audit export` prints.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated, one event per row.
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, scheduler, audit feed.
    Serve(ServeArgs),
    /// Validate a config file and the secrets it names, and print every problem with its key
    /// path (with the same overrides as `serve`).
    Check {
        #[command(flatten)]
        args: ServeArgs,
        /// Check the file only, not the secrets it names (for CI, where they are absent).
        #[arg(long)]
        skip_secrets: bool,
    },
    /// Dry-run the policy: may PERSON request ROLE, who approves, what would happen.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// The person, as the policy names them.
        #[arg(long = "as")]
        person: String,
        /// The role, as the policy names it (`elevate roles` lists yours).
        #[arg(long)]
        role: String,
    },
    /// Ask for a role: `elevate request ROLE [DURATION] REASON...`.
    Request {
        /// The role, as the policy names it (`elevate roles` lists yours); several at once
        /// with commas (`db,logs`), or a bundle's name.
        role: String,
        /// Duration (e.g. 30m, 2h, 1h30m) then the reason; the duration may be left out.
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        /// A ticket, when the role asks for one and the reason does not name it.
        #[arg(long)]
        ticket: Option<String>,
        /// Wait until the request is decided, printing each change; the exit code says how it
        /// ended: 0 active, 3 denied, 4 timed out, 5 cancelled or ended, 6 the grant failed.
        /// With several roles: 0 once every role is active.
        #[arg(long)]
        wait: bool,
        /// Start later, at this time: `2026-12-05 22:00 Europe/Berlin` (an IANA zone; UTC if
        /// none) or RFC 3339. Approved ahead, applied at the start.
        #[arg(long, value_name = "TIME", conflicts_with = "start_in")]
        at: Option<String>,
        /// Start later, this long from now: `3h`.
        #[arg(long = "in", value_name = "DURATION")]
        start_in: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve a pending request.
    Approve {
        /// The request number (`12` or `#12`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Deny a pending request, with a reason.
    Deny {
        /// The request number (`12` or `#12`).
        id: String,
        /// Why, in words: it is recorded in the audit log and shown to the people concerned.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Withdraw your own pending request.
    Cancel {
        /// The request number (`12` or `#12`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Take an active grant away (approvers and the security team), with a reason.
    Revoke {
        /// The request number (`12` or `#12`).
        id: String,
        /// Why, in words: it is recorded in the audit log and shown to the people concerned.
        #[arg(long)]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give your access back early.
    Release {
        /// The request number (`12` or `#12`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Ask for more time on your active grant (needs approval like a request).
    Extend {
        /// The request number (`12` or `#12`).
        id: String,
        /// How long, e.g. 30m, 2h or 1h30m.
        duration: String,
        /// Why more time is needed (shown to the approvers).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Emergency access without approval (for persons the role allows); alerts the security team.
    Breakglass {
        /// The role, as the policy names it (`elevate roles` lists yours).
        role: String,
        /// How long, e.g. 30m, 2h or 1h30m.
        duration: String,
        /// Why, in words: it is shown to the security team and kept for the review.
        #[arg(required = true, num_args = 1..)]
        justification: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a break-glass drill: a real grant through the emergency path that revokes itself,
    /// with each step's timing and a check that the provider no longer lists it.
    Drill {
        /// The role, as the policy names it (`elevate roles` lists yours).
        role: String,
        /// How long the drill grant lasts.
        #[arg(long, default_value = "1m")]
        hold: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Mark a break-glass grant reviewed (security team).
    Review {
        /// The request number (`12` or `#12`).
        id: String,
        /// What the review found: kept with the grant and in the audit log.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Kill switch (security team): refuse new requests for ROLE (or `all`) and revoke its grants now.
    Lockdown {
        /// A role, or `all` for every role.
        scope: String,
        /// Why, in words: it is recorded in the audit log and shown to the people concerned.
        #[arg(long)]
        reason: String,
        /// Refuse break-glass too.
        #[arg(long)]
        block_breakglass: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Lift a lockdown (security team).
    Unlock {
        /// A role, or `all` for every role.
        scope: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List lockdowns in force.
    Lockdowns {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one request, or your pending requests and active grants.
    Status {
        /// A request number; without it, your pending requests and active grants.
        id: Option<String>,
        /// Every request you may read (yours, the roles you approve; everything for the
        /// security group), not only yours.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Usage report: elevations per role and person, approvals, denials, break-glass, revoke failures.
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        database: DatabaseArg,
        /// The period: an age like 30d, or a time (RFC 3339).
        #[arg(long, default_value = "30d")]
        since: String,
        /// How to print it.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Re-read the server's config file and swap in its policy without a restart (security
    /// team). An invalid file changes nothing and every problem is listed; sections read only at
    /// start are named as needing a restart. `kill -HUP` on the server does the same.
    Reload {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Who your token says you are.
    Whoami {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The roles you may request: for how long, and who approves.
    Roles {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a shell completion script: `elevate completions bash > /etc/bash_completion.d/elevate`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `elevate man > elevate.1`.
    Man,
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Exit 0 when the server answers `/healthz`, 1 otherwise: a container HEALTHCHECK with no
    /// curl in the image.
    Healthcheck {
        /// The URL to ask; by default `/healthz` on ELEVATE_LISTEN's port over loopback, or
        /// http://127.0.0.1:8080/healthz.
        #[arg(long)]
        url: Option<String>,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and name the first broken seq; check checkpoints (and their
    /// signatures, given the checkpoint key's public half here or as `[audit] public_key`).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        database: DatabaseArg,
        /// The checkpoint key's public half (hex), over `[audit] public_key`.
        #[arg(long)]
        public_key: Option<String>,
        /// Check the chain against the newest anchor kept outside the database: a file of
        /// anchor lines (`[audit] anchor_file`, or the lines a log shipper collected from
        /// stdout), or SEQ:HASH as posted with a checkpoint in the audit channel. Fails when the
        /// chain ends before the anchor or holds another hash at its seq.
        #[arg(long, value_name = "FILE | SEQ:HASH")]
        anchor: Option<String>,
    },
    /// Make a new checkpoint signing key: prints the secret seed (for `[audit] signing_key_env`)
    /// and its public key (for `[audit] public_key` and for auditors).
    Keygen,
    /// Export events as JSON lines or CSV.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        database: DatabaseArg,
        /// How to print the events.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only events at or after this time (RFC 3339, or an age like 30d, 12h).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token for PERSON (or a SERVICE identity, for CI) and print the config
    /// lines holding its hash.
    New {
        /// The person, as the policy names them.
        #[arg(long, required_unless_present = "service", conflicts_with = "service")]
        person: Option<String>,
        /// A service identity (`[services.NAME]`): automation requesting for itself.
        #[arg(long)]
        service: Option<String>,
        /// A name for the token, to tell a person's tokens apart in the config and the audit log.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

/// Runs the CLI; returns the process exit code (0 ok, 1 refused, 2 usage or setup error).
pub async fn run() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(c) => local::serve(&c.source()).await,
        Command::Check { args, skip_secrets } => local::check(&args.source(), skip_secrets),
        Command::Explain { config, person, role } => local::explain(&config.config, &person, &role),
        Command::Audit { command: AuditCommand::Verify { config, database, public_key, anchor } } => {
            local::audit_verify(&with_database(&config, &database), public_key.as_deref(), anchor.as_deref()).await
        }
        Command::Audit { command: AuditCommand::Keygen } => local::audit_keygen(),
        Command::Audit { command: AuditCommand::Export { config, database, format, since } } => {
            let format = if format == ExportFormat::Csv { "csv" } else { "jsonl" };
            local::audit_export(&with_database(&config, &database), format, since.as_deref()).await
        }
        Command::Token { command: TokenCommand::New { person, service, name } } => match (person, service) {
            (Some(p), _) => local::token_new("person", &p, &name),
            (None, Some(s)) => local::token_new("service", &s, &name),
            (None, None) => 2,
        },
        Command::Healthcheck { url } => client::healthcheck(url.as_deref()).await,
        Command::Report { config, database, since, format } => {
            let format = match format {
                ReportFormat::Table => "table",
                ReportFormat::Csv => "csv",
                ReportFormat::Json => "json",
            };
            local::report(&with_database(&config, &database), &since, format).await
        }
        Command::Request { role, words, ticket, wait, at, start_in, server } => {
            client::request(&server, &role, &words, ticket, wait, (at, start_in)).await
        }
        Command::Whoami { server } => extras::whoami(&server).await,
        Command::Reload { server } => extras::reload(&server).await,
        Command::Roles { server } => extras::roles(&server).await,
        Command::Completions { shell } => extras::completions(shell),
        Command::Man => extras::man(),
        Command::Approve { id, server } => client::act(&server, &id, "approve", serde_json::json!({})).await,
        Command::Deny { id, reason, server } => {
            client::act(&server, &id, "deny", serde_json::json!({ "reason": reason })).await
        }
        Command::Cancel { id, server } => client::act(&server, &id, "cancel", serde_json::json!({})).await,
        Command::Revoke { id, reason, yes, server } => client::revoke(&server, &id, &reason, yes).await,
        Command::Release { id, server } => client::act(&server, &id, "release", serde_json::json!({})).await,
        Command::Extend { id, duration, reason, server } => {
            client::act(&server, &id, "extend", serde_json::json!({ "duration": duration, "reason": reason })).await
        }
        Command::Status { id, all, server } => client::status(&server, id.as_deref(), all).await,
        Command::Breakglass { role, duration, justification, server } => {
            client::breakglass(&server, &role, &duration, &justification.join(" ")).await
        }
        Command::Drill { role, hold, server } => client::drill(&server, &role, &hold).await,
        Command::Review { id, note, server } => {
            client::act(&server, &id, "review", serde_json::json!({ "note": note })).await
        }
        Command::Lockdown { scope, reason, block_breakglass, yes, server } => {
            client::lockdown(&server, &scope, &reason, block_breakglass, yes).await
        }
        Command::Unlock { scope, server } => client::unlock(&server, &scope).await,
        Command::Lockdowns { server } => client::lockdowns(&server).await,
    }
}
