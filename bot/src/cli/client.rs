//! The action verbs: thin clients of the REST API.

use super::ServerArgs;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};

pub(super) fn token() -> Result<String, String> {
    std::env::var("ELEVATE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| "ELEVATE_TOKEN is not set: export the API token the server's policy knows you by".to_string())
}

/// Sends one call; prints the error the server named, or the connection problem.
pub(super) async fn call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, i32> {
    let token = token().map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let mut req = reqwest::Client::new().request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| {
        eprintln!("error: cannot reach the elevate server at {}: {e}", server.server);
        eprintln!("hint: start it with `elevate serve --config …`, or set --server / ELEVATE_SERVER");
        2
    })?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        let msg = v["error"]["message"].as_str().unwrap_or("the server refused without a message");
        eprintln!("error: {msg}");
        Err(if status.is_client_error() { 1 } else { 2 })
    }
}

/// One line about a request, as people read it.
pub fn describe(v: &Value) -> String {
    let id = v["id"].as_i64().unwrap_or(0);
    let state = v["state"].as_str().unwrap_or("?");
    let mut line = format!(
        "#{id} {} {} for {} — {state}",
        v["requester"].as_str().unwrap_or("?"),
        v["role"].as_str().unwrap_or("?"),
        v["duration"].as_str().unwrap_or("?"),
    );
    if let Some(p) = v["extends"].as_i64() {
        line.push_str(&format!(" (extension of #{p})"));
    }
    if state == "pending" {
        // People's approvals plus the one an on-call rule credited, out of the request's threshold.
        let n = v["approvals"].as_array().map(|a| a.len()).unwrap_or(0) as i64
            + v["approvals_credited"].as_i64().unwrap_or(0);
        line.push_str(&format!(", {n} of {} approvals", v["approvals_required"].as_i64().unwrap_or(1)));
    }
    if let Some(exp) = v["expires_at"].as_str()
        && matches!(state, "active" | "revoking")
    {
        line.push_str(&format!(", until {exp}"));
    }
    if let Some(note) = v["note"].as_str() {
        line.push_str(&format!(" ({note})"));
    }
    if v["dry_run"].as_bool() == Some(true) {
        line.push_str(" [dry run: nothing applied]");
    }
    line
}

pub(super) fn print(server: &ServerArgs, v: &Value) {
    if server.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", describe(v));
    }
}

/// `start` is `(--at, --in)`: scheduled access, passed on as the API's `starts_at`/`starts_in`.
pub async fn request(
    server: &ServerArgs,
    role: &str,
    words: &[String],
    ticket: Option<String>,
    wait: bool,
    start: (Option<String>, Option<String>),
) -> i32 {
    // The same rule as in chat: a word that starts like a number is the duration, and must be one.
    let words: Vec<&str> = words.iter().flat_map(|w| w.split_whitespace()).collect();
    let (duration, reason) = match elevate_core::chat::duration_and_rest(&words) {
        Ok(split) => split,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return 1;
        }
    };
    let mut body = json!({ "role": role, "duration": duration, "reason": reason, "ticket": ticket });
    if let Some(at) = start.0 {
        body["starts_at"] = json!(at);
    }
    if let Some(d) = start.1 {
        body["starts_in"] = json!(d);
    }
    match call(server, reqwest::Method::POST, "/api/v1/requests", Some(body)).await {
        Ok(v) if wait => super::wait::until_decided(server, &v).await,
        Ok(v) => {
            print(server, &v);
            0
        }
        Err(code) => code,
    }
}

pub async fn act(server: &ServerArgs, id: &str, action: &str, body: Value) -> i32 {
    let id = id.trim_start_matches('#');
    match call(server, reqwest::Method::POST, &format!("/api/v1/requests/{id}/{action}"), Some(body)).await {
        Ok(v) => {
            print(server, &v);
            0
        }
        Err(code) => code,
    }
}

pub async fn revoke(server: &ServerArgs, id: &str, reason: &str, yes: bool) -> i32 {
    if !yes {
        let shown = id.trim_start_matches('#');
        let summary = match call(server, reqwest::Method::GET, &format!("/api/v1/requests/{shown}"), None).await {
            Ok(v) => describe(&v),
            Err(code) => return code,
        };
        if let Err(code) = confirm(&format!("Revoke {summary}?"), false) {
            return code;
        }
    }
    act(server, id, "revoke", json!({ "reason": reason })).await
}

pub async fn status(server: &ServerArgs, id: Option<&str>, all: bool) -> i32 {
    if let Some(id) = id {
        let id = id.trim_start_matches('#');
        return match call(server, reqwest::Method::GET, &format!("/api/v1/requests/{id}"), None).await {
            Ok(v) => {
                print(server, &v);
                0
            }
            Err(code) => code,
        };
    }
    let path =
        format!("/api/v1/requests?state=pending,approved,active,revoking{}", if all { "" } else { "&mine=true" });
    match call(server, reqwest::Method::GET, &path, None).await {
        Ok(v) => {
            let list = v["requests"].as_array().cloned().unwrap_or_default();
            if server.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if list.is_empty() {
                println!("No pending requests or active grants.");
            } else {
                for r in &list {
                    println!("{}", describe(r));
                }
            }
            0
        }
        Err(code) => code,
    }
}

pub async fn breakglass(server: &ServerArgs, role: &str, duration: &str, justification: &str) -> i32 {
    let body = json!({ "role": role, "duration": duration, "justification": justification });
    match call(server, reqwest::Method::POST, "/api/v1/breakglass", Some(body)).await {
        Ok(v) => {
            print(server, &v);
            if !server.json {
                println!("Break-glass recorded; the security team has been alerted and will review it.");
            }
            0
        }
        Err(code) => code,
    }
}

/// Asks "really?" at a terminal; refuses without one unless `yes`.
fn confirm(question: &str, yes: bool) -> Result<(), i32> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!("error: this takes access away at once; confirm with --yes when not at a terminal");
        return Err(2);
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        eprintln!("nothing done");
        Err(1)
    }
}

pub async fn lockdown(server: &ServerArgs, scope: &str, reason: &str, block_breakglass: bool, yes: bool) -> i32 {
    let what = if scope == "all" { "every role".to_string() } else { format!("`{scope}`") };
    if let Err(code) = confirm(&format!("Lock down {what}: refuse new requests and revoke every grant of it now?"), yes)
    {
        return code;
    }
    let body = json!({ "scope": scope, "reason": reason, "blocks_breakglass": block_breakglass });
    match call(server, reqwest::Method::POST, "/api/v1/lockdowns", Some(body)).await {
        Ok(v) => {
            if server.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let n = |k: &str| v[k].as_array().map(|a| a.len()).unwrap_or(0);
                println!(
                    "Locked down {what}: {} grant(s) being revoked, {} pending request(s) denied.",
                    n("revoked"),
                    n("denied")
                );
                for f in v["failed"].as_array().into_iter().flatten() {
                    println!("  could not end #{}: {}", f[0], f[1].as_str().unwrap_or(""));
                }
            }
            0
        }
        Err(code) => code,
    }
}

pub async fn unlock(server: &ServerArgs, scope: &str) -> i32 {
    match call(server, reqwest::Method::DELETE, &format!("/api/v1/lockdowns/{scope}"), None).await {
        Ok(_) => {
            println!("Unlocked {scope}.");
            0
        }
        Err(code) => code,
    }
}

pub async fn lockdowns(server: &ServerArgs) -> i32 {
    match call(server, reqwest::Method::GET, "/api/v1/lockdowns", None).await {
        Ok(v) => {
            let list = v["lockdowns"].as_array().cloned().unwrap_or_default();
            if server.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if list.is_empty() {
                println!("No lockdowns.");
            } else {
                for l in list {
                    let scope = if l["scope"] == "*" {
                        "all".to_string()
                    } else {
                        l["scope"].as_str().unwrap_or("?").to_string()
                    };
                    println!(
                        "{scope}: by {} since {}: {}{}",
                        l["locked_by"].as_str().unwrap_or("?"),
                        l["locked_at"].as_str().unwrap_or("?"),
                        l["reason"].as_str().unwrap_or(""),
                        if l["blocks_breakglass"] == true { " (break-glass blocked)" } else { "" }
                    );
                }
            }
            0
        }
        Err(code) => code,
    }
}

/// Starts a drill, follows it to the end, prints each step's timing and whether the provider
/// really stopped listing the access. Exit 0 only when removal was verified.
pub async fn drill(server: &ServerArgs, role: &str, hold: &str) -> i32 {
    let started = match call(
        server,
        reqwest::Method::POST,
        "/api/v1/drills",
        Some(json!({ "role": role, "hold": hold })),
    )
    .await
    {
        Ok(v) => v,
        Err(code) => return code,
    };
    let id = started["id"].as_i64().unwrap_or(0);
    let hold_secs = elevate_core::GrantDuration::parse(hold).map(|d| d.secs()).unwrap_or(60) as u64;
    println!("Drill #{id} of `{role}` started; it holds access for {hold} and then revokes itself.");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(hold_secs + 180);
    let mut listed_while_active = None;
    // Each step is printed as it happens, so a long hold shows where the drill is.
    let mut shown = 0;
    if !server.json {
        println!("{:>9}  step", "seconds");
    }
    let report = loop {
        let r = match call(server, reqwest::Method::GET, &format!("/api/v1/drills/{id}"), None).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        if r["state"] == "active" && listed_while_active.is_none() {
            listed_while_active = r["listed_now"].as_bool();
        }
        let steps = r["steps"].as_array().cloned().unwrap_or_default();
        if !server.json {
            for s in steps.iter().skip(shown) {
                println!("{:>9.1}  {}", s["after_secs"].as_f64().unwrap_or(0.0), s["step"].as_str().unwrap_or(""));
            }
            let _ = std::io::stdout().flush();
        }
        shown = shown.max(steps.len());
        let over = !matches!(r["state"].as_str(), Some("pending" | "approved" | "active" | "revoking"));
        if over || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    if server.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        let yn = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown (the provider cannot list this kind of grant)",
        };
        println!("visible in the provider's list while active: {}", yn(listed_while_active));
        println!("final state: {}", report["state"].as_str().unwrap_or("?"));
        println!("access really removed (provider no longer lists it): {}", yn(report["removed"].as_bool()));
    }
    match report["removed"].as_bool() {
        Some(true) => 0,
        _ => {
            eprintln!("error: the drill could not verify that access was removed");
            1
        }
    }
}

/// Asks `/healthz` once, with a short timeout, and says what it found.
pub async fn healthcheck(url: Option<&str>) -> i32 {
    let url = url.map(str::to_string).unwrap_or_else(|| health_url(std::env::var("ELEVATE_LISTEN").ok().as_deref()));
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build an HTTP client: {e}");
            return 2;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("ok: {url}");
            0
        }
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            1
        }
        Err(e) => {
            eprintln!("unhealthy: cannot reach {url}: {e}");
            1
        }
    }
}

/// `/healthz` where a server started with this listen address answers: a wildcard address
/// (`0.0.0.0`, `::`) is reached over loopback.
fn health_url(listen: Option<&str>) -> String {
    let Some(addr) = listen.and_then(|l| l.parse::<std::net::SocketAddr>().ok()) else {
        return "http://127.0.0.1:8080/healthz".into();
    };
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_string(),
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/healthz", addr.port())
}

#[cfg(test)]
mod tests {
    use super::health_url;

    #[test]
    fn the_health_url_follows_the_listen_address() {
        assert_eq!(health_url(None), "http://127.0.0.1:8080/healthz");
        assert_eq!(health_url(Some("0.0.0.0:9000")), "http://127.0.0.1:9000/healthz");
        assert_eq!(health_url(Some("[::]:9000")), "http://[::1]:9000/healthz");
        assert_eq!(health_url(Some("10.0.0.5:8081")), "http://10.0.0.5:8081/healthz");
        assert_eq!(health_url(Some("not an address")), "http://127.0.0.1:8080/healthz");
    }
}
