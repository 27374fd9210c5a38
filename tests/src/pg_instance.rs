//! A PostgreSQL server of a test's own, which the test may stop and start: the shared server
//! of `ELEVATE_TEST_POSTGRES_URL` must never be stopped (other suites run on it).
//!
//! `initdb` into a temporary directory, `pg_ctl start` on a free loopback port with its socket
//! in that directory. PostgreSQL refuses to run as root, so as root the directory is handed to
//! the `postgres` user and the tools run as that user (`runuser`), as `scripts/postgres.sh`
//! runs the system cluster's tools through the `postgres` account.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A private server; stopped (immediately) and removed when dropped.
pub struct PgInstance {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    pub port: u16,
    /// An admin URL (trust authentication, loopback only).
    pub url: String,
}

impl PgInstance {
    /// Starts a new server, or None (a skip, printed) when PostgreSQL's tools are not
    /// installed; under CI their absence is a failure.
    pub fn start() -> Option<PgInstance> {
        let Some(bin) = find_bin() else {
            if std::env::var("CI").is_ok() {
                panic!("CI is set but PostgreSQL's initdb/pg_ctl are not installed");
            }
            eprintln!("SKIPPED (PostgreSQL): no /usr/lib/postgresql/*/bin/initdb to start a private server");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), "chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let pg = PgInstance { bin, dir, as_postgres, port, url };
        let data = pg.data();
        pg.tool("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's tools, as the `postgres` user when we are root.
    fn tool(&self, name: &str, args: &[&str]) {
        let exe = self.bin.join(name);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        run(c.args(args).current_dir(self.dir.path()), name);
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.tool("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "30", "start"]);
    }

    /// Stops the server the way an operator would (`-m fast`: sessions are ended, no new ones).
    pub fn stop(&self) {
        self.tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = c.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

fn run(c: &mut Command, what: &str) {
    let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest installed PostgreSQL's `bin` directory.
fn find_bin() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
