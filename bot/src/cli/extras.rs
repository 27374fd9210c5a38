//! What helps people use the command line itself: shell completions and a man page generated
//! from the same clap definition as `--help` (so they cannot drift from it), `whoami` and
//! `roles` (who the token is, and what they may request, for how long, approved by whom).

use super::{Cli, ServerArgs, client};
use clap::CommandFactory;
use serde_json::Value;

/// Prints a completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    clap_complete::generate(shell, &mut Cli::command(), "elevate", &mut std::io::stdout());
    0
}

/// Prints the man page (roff) to standard output: `elevate man > elevate.1`.
pub fn man() -> i32 {
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            2
        }
    }
}

pub async fn reload(server: &ServerArgs) -> i32 {
    let token = match client::token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let url = format!("{}/api/v1/admin/reload", server.server.trim_end_matches('/'));
    let resp = match reqwest::Client::new().post(&url).bearer_auth(token).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the elevate server at {}: {}", server.server, e.without_url());
            return 2;
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if server.json {
        println!("{v}");
    }
    if !status.is_success() {
        eprintln!("error: {}", v["error"]["message"].as_str().unwrap_or("the server refused without a message"));
        for p in v["error"]["problems"].as_array().into_iter().flatten() {
            eprintln!("  {}: {}", p["path"].as_str().unwrap_or("?"), p["message"].as_str().unwrap_or("?"));
        }
        return if status.is_client_error() { 1 } else { 2 };
    }
    if !server.json {
        let sha = v["config_sha256"].as_str().unwrap_or("");
        println!("reloaded (config sha256 {})", &sha[..sha.len().min(12)]);
        for (k, items) in v["changes"].as_object().into_iter().flatten() {
            let names: Vec<&str> = items.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if !names.is_empty() {
                println!("  {}: {}", k.replace('_', " "), names.join(", "));
            }
        }
        let restart: Vec<&str> =
            v["needs_restart"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if !restart.is_empty() {
            println!("  needs a restart to apply: {}", restart.join(", "));
        }
    }
    0
}

pub async fn whoami(server: &ServerArgs) -> i32 {
    match client::call(server, reqwest::Method::GET, "/api/v1/whoami", None).await {
        Ok(v) if server.json => {
            println!("{v}");
            0
        }
        Ok(v) => {
            println!(
                "{} (token `{}`){}",
                v["person"].as_str().unwrap_or("?"),
                v["token"].as_str().unwrap_or("?"),
                if v["security"] == true { ", security team" } else { "" }
            );
            0
        }
        Err(code) => code,
    }
}

pub async fn roles(server: &ServerArgs) -> i32 {
    let v = match client::call(server, reqwest::Method::GET, "/api/v1/whoami", None).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if server.json {
        println!("{}", v["roles"]);
        return 0;
    }
    let roles = v["roles"].as_array().cloned().unwrap_or_default();
    if roles.is_empty() {
        println!("There is no role you may request. Ask an elevate admin to add you to a requester group.");
        return 0;
    }
    for r in &roles {
        println!("{}", role_line(r));
    }
    0
}

/// `prod-db  default 1h, at most 4h  approved by 2 of db-approvers  — write access to …`
fn role_line(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let groups: Vec<String> =
        r["approvers"].as_array().into_iter().flatten().filter_map(|g| g.as_str().map(String::from)).collect();
    let approval = if r["auto_approve"] == true {
        "approved automatically".to_string()
    } else {
        format!("approved by {} of {}", r["approvals_required"].as_u64().unwrap_or(1), groups.join(", "))
    };
    let about = match s("description") {
        d if d.is_empty() => String::new(),
        d => format!("  — {d}"),
    };
    format!("{:<16} default {}, at most {}  {approval}{about}", s("name"), s("default_duration"), s("max_duration"))
}
