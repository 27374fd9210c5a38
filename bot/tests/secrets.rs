//! Secrets are checked up front: `elevate check` and `elevate serve` read every secret the
//! config names, report every problem at once with its config key and its variable or file,
//! never print a value, and open no database until all of them are good.

use std::{
    path::Path,
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_elevate");

/// Values that must never appear in any output, whatever is wrong around them.
const SHORT_WEBHOOK_SECRET: &str = "tooshort-w3bh00k";
const DB_PASSWORD: &str = "hunter2-db-password";

fn quickstart(db: &Path) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml"))
        .unwrap()
        .replace("elevate-quickstart.db", &db.display().to_string())
}

/// Every kind of secret, each wrong in its own way. Variables are named `ELEVATE_ST_*` and
/// given to the child process only.
fn everything_wrong(dir: &Path) -> String {
    let short = dir.join("webhook.secret");
    std::fs::write(&short, format!("{SHORT_WEBHOOK_SECRET}\n")).unwrap();
    let not_json = dir.join("gcp.json");
    std::fs::write(&not_json, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let blank = dir.join("blank.token");
    std::fs::write(&blank, " \n\t\n").unwrap();
    quickstart(Path::new("NEVER")).replace("url = \"NEVER\"", "url_env = \"ELEVATE_ST_DB\"")
        + &format!(
            r#"
[slack]
team_id = "T0123"
signing_secret_env = "ELEVATE_ST_SLACK_SIGNING"
bot_token_env = "ELEVATE_ST_SLACK_BOT"

[discord]
application_id = "11"
guild_id = "22"
public_key_env = "ELEVATE_ST_DISCORD_KEY"
bot_token_file = "{blank}"

[audit]
signing_key_env = "ELEVATE_ST_AUDIT_KEY"

[providers.hook]
type = "webhook"
url = "https://receiver.invalid/elevate"
secret_file = "{short}"

[providers.gcloud]
type = "gcp"
credentials_file = "{not_json}"

[providers.proddb]
type = "postgres-roles"
url_file = "{missing}"
"#,
            blank = blank.display(),
            short = short.display(),
            not_json = not_json.display(),
            missing = dir.join("no-such-file").display(),
        )
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    for var in ["ELEVATE_CONFIG", "ELEVATE_LISTEN", "ELEVATE_DATABASE_URL", "ELEVATE_SECRETS_FILE"] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied()).output().expect("run elevate")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const WRONG_ENV: &[(&str, &str)] = &[
    // ELEVATE_ST_SLACK_SIGNING is not set at all.
    ("ELEVATE_ST_SLACK_BOT", ""),
    ("ELEVATE_ST_DISCORD_KEY", "   "),
    ("ELEVATE_ST_AUDIT_KEY", "not-hex-at-all"),
    ("ELEVATE_ST_DB", "postgress://elevate:hunter2-db-password@db/elevate"),
];

#[test]
fn check_and_serve_name_every_bad_secret_by_key_and_source_and_never_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("elevate.toml");
    std::fs::write(&cfg, everything_wrong(dir.path())).unwrap();
    let c = cfg.to_str().unwrap();
    let wants = [
        ("slack.signing_secret_env", "`ELEVATE_ST_SLACK_SIGNING` is not set in the environment"),
        ("slack.bot_token_env", "the environment variable `ELEVATE_ST_SLACK_BOT` is empty"),
        ("discord.public_key_env", "the environment variable `ELEVATE_ST_DISCORD_KEY` is empty"),
        ("discord.bot_token_file", "blank.token` is empty"),
        ("audit.signing_key_env", "`ELEVATE_ST_AUDIT_KEY` is not 64 hex digits"),
        ("providers.hook.secret_file", "webhook.secret` is shorter than 32 characters"),
        ("providers.gcloud.credentials_file", "gcp.json` is not a JSON object"),
        ("providers.proddb.url_file", "cannot read `"),
        ("database.url_env", "unknown database scheme `postgress:`"),
    ];
    for command in ["check", "serve"] {
        let o = run(&[command, "--config", c], WRONG_ENV);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{command}: {out}");
        assert!(out.contains(&format!("{} problems", wants.len())), "{command} counts them all: {out}");
        for (key, says) in wants {
            let line = out.lines().find(|l| l.trim_start().starts_with(&format!("{key}: ")));
            let line = line.unwrap_or_else(|| panic!("{command}: no line for {key} in:\n{out}"));
            assert!(line.contains(says), "{command}: {key} should say `{says}`: {line}");
        }
        for value in [SHORT_WEBHOOK_SECRET, DB_PASSWORD, "not-hex-at-all", "BEGIN PRIVATE KEY"] {
            assert!(!out.contains(value), "{command} printed a secret value `{value}`:\n{out}");
        }
    }

    // CI checks the file alone, where the secrets are absent.
    let o = run(&["check", "--config", c, "--skip-secrets"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("secrets not checked"), "{}", text(&o));
}

#[test]
fn a_secrets_file_stands_in_for_the_environment_and_its_blank_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let cfg = dir.path().join("elevate.toml");
    let hook = "[providers.hook]\ntype = \"webhook\"\nurl = \"https://receiver.invalid/x\"\nsecret_env = \"ELEVATE_ST_HOOK\"\n\
                [audit]\nsigning_key_env = \"ELEVATE_ST_AUDIT_KEY\"\n";
    std::fs::write(&cfg, quickstart(&db) + hook).unwrap();
    let c = cfg.to_str().unwrap();
    let secrets = dir.path().join("secrets.env");
    let key = "ab".repeat(32);
    let good = format!("# elevate\nELEVATE_ST_HOOK=\"{}\"\nELEVATE_ST_AUDIT_KEY={key}\n", "s".repeat(40));
    std::fs::write(&secrets, &good).unwrap();
    let file = secrets.to_str().unwrap();
    let o = run(&["check", "--config", c], &[("ELEVATE_SECRETS_FILE", file)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 secrets read and checked"), "{}", text(&o));

    // An empty variable in the environment does not hide the file's value.
    let o = run(&["check", "--config", c], &[("ELEVATE_SECRETS_FILE", file), ("ELEVATE_ST_HOOK", "")]);
    assert!(o.status.success(), "{}", text(&o));

    std::fs::write(&secrets, good.replace(&"s".repeat(40), "")).unwrap();
    let o = run(&["check", "--config", c], &[("ELEVATE_SECRETS_FILE", file)]);
    assert_eq!(o.status.code(), Some(2));
    let want = format!("providers.hook.secret_env: `ELEVATE_ST_HOOK` is empty in ELEVATE_SECRETS_FILE ({file})");
    assert!(text(&o).contains(&want), "{}", text(&o));

    let gone = dir.path().join("gone.env");
    let o = run(&["serve", "--config", c], &[("ELEVATE_SECRETS_FILE", gone.to_str().unwrap())]);
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o);
    assert!(out.contains(&format!("ELEVATE_SECRETS_FILE: cannot read `{}`", gone.display())), "{out}");
    assert!(out.contains("audit.signing_key_env: `ELEVATE_ST_AUDIT_KEY` is not set in the environment"), "{out}");
    assert!(!db.exists(), "serve opened no database");
}

#[test]
fn a_database_url_with_an_unknown_scheme_is_refused_wherever_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("elevate.toml");
    std::fs::write(&cfg, quickstart(&dir.path().join("e.db"))).unwrap();
    let c = cfg.to_str().unwrap();
    for url in ["mysql://root:hunter2-db-password@db/elevate", "http://db:5432/elevate", "postgress://db/elevate"] {
        let scheme = url.split(':').next().unwrap();
        for (args, env) in [
            (vec!["serve", "--config", c, "--database-url", url], vec![]),
            (vec!["serve", "--config", c], vec![("ELEVATE_DATABASE_URL", url)]),
            (vec!["audit", "verify", "--config", c], vec![("ELEVATE_DATABASE_URL", url)]),
            (vec!["check", "--config", c], vec![("ELEVATE_DATABASE_URL", url)]),
        ] {
            let o = run(&args, &env);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {out}");
            assert!(out.contains("--database-url / ELEVATE_DATABASE_URL"), "{out}");
            assert!(out.contains(&format!("unknown database scheme `{scheme}:`")), "{out}");
            assert!(out.contains("postgres://USER@HOST/DATABASE"), "names the accepted forms: {out}");
            assert!(!out.contains(DB_PASSWORD), "{out}");
        }
        // In the file itself.
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, quickstart(Path::new("x")).replace("url = \"x\"", &format!("url = \"{url}\""))).unwrap();
        let o = run(&["check", "--config", bad.to_str().unwrap(), "--skip-secrets"], &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o).contains(&format!("database.url: unknown database scheme `{scheme}:`")), "{}", text(&o));
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().all(|n| n.ends_with(".toml")), "no SQLite file named after a URL: {names:?}");
}
