//! `elevate serve` stopped as an orchestrator stops it: SIGTERM, then the process drains and
//! exits 0 on its own, saying in its log what it finished and what it gave back.

#![cfg(unix)]

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_elevate");

#[test]
fn sigterm_drains_and_exits_zero_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let quickstart =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml")).unwrap();
    let config = dir.path().join("elevate.toml");
    std::fs::write(
        &config,
        quickstart
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("elevate-quickstart.db", &dir.path().join("e.db").display().to_string()),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env_remove("ELEVATE_LISTEN")
        .env_remove("ELEVATE_DATABASE_URL")
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
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let t = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // Bounded so that a hang fails the test instead of blocking it.
        assert!(t.elapsed() < Duration::from_secs(60), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "a drained shutdown is a clean exit");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("draining"), "{text}");
    assert!(text.contains("drained: exiting") && text.contains("finished=0") && text.contains("released=0"), "{text}");
}
