//! The README's walkthrough runs as printed: every command of its `sh` blocks, in order, against
//! the real binary and a real server on the quickstart config (in a temporary directory, on a
//! free port), each answer checked against the comment printed under it in the README (`…`
//! stands for what varies). Starting the server and putting the binary on the PATH are done
//! by the test itself; the grant's expiry, which the README asks you to watch, is not waited for.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_elevate");
const README: &str = include_str!("../../README.md");

/// One command of the walkthrough and the answer printed under it, if any.
struct Step {
    line: String,
    expect: Vec<String>,
}

/// The commands of the walkthrough section, in order.
fn steps() -> Vec<Step> {
    let start = README.find("## A five-minute walkthrough").expect("walkthrough section");
    let end = start + README[start..].find("\n## ").expect("next section");
    let mut out: Vec<Step> = Vec::new();
    let mut in_sh = false;
    for raw in README[start..end].lines() {
        let line = raw.trim();
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh || line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            // A comment right under a command is its answer; one before a command explains it.
            if let Some(last) = out.last_mut()
                && !comment.ends_with(':')
            {
                last.expect.push(comment.to_string());
            }
            continue;
        }
        out.push(Step { line: line.to_string(), expect: Vec::new() });
    }
    out
}

/// Shell words: whitespace-separated, double quotes kept together.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `text` holds the fragments of `pattern` (split at `…`) in order.
fn matches(text: &str, pattern: &str) -> bool {
    let mut rest = text;
    for part in pattern.split('…').map(str::trim).filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_walkthrough_runs_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("quickstart.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("elevate-quickstart.db", &dir.path().join("e.db").display().to_string());
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();

    let steps = steps();
    assert!(steps.len() > 20, "the walkthrough's commands were found: {}", steps.len());
    let mut server = None;
    for step in &steps {
        let mut w = words(&step.line.replace("examples/quickstart.toml", &config));
        if w.starts_with(&["export".into()]) {
            continue;
        }
        if w.iter().any(|x| x == "serve") {
            let child = Command::new(BIN)
                .args(["serve", "--config", &config])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(t.elapsed() < Duration::from_secs(20), "server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server = Some(Server(child));
            continue;
        }
        let mut env = Vec::new();
        while let Some((k, v)) = w.first().and_then(|x| x.split_once('=')) {
            env.push((k.to_string(), v.to_string()));
            w.remove(0);
        }
        assert_eq!(w.first().map(String::as_str), Some("elevate"), "a walkthrough command: {}", step.line);
        // `status` right after an approval may run before the grant is applied: ask again.
        let t = Instant::now();
        loop {
            let o = Command::new(BIN)
                .args(&w[1..])
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("ELEVATE_SERVER", format!("http://127.0.0.1:{port}"))
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            let shown = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            let ok = step.expect.iter().all(|e| matches(&shown, e));
            if ok {
                break;
            }
            let again = w.get(1).is_some_and(|c| c == "status") && t.elapsed() < Duration::from_secs(5);
            assert!(again, "`{}` printed:\n{shown}\nthe README says:\n{}", step.line, step.expect.join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(server.is_some(), "the walkthrough starts the server");
}
