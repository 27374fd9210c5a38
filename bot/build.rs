//! Puts the git commit into `elevate --version`, so a running binary says what it was built
//! from. Outside a git checkout (a source tarball, a container build without `.git`) it says
//! `unknown`; `ELEVATE_GIT_COMMIT` set at build time wins (for builds that know it otherwise).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ELEVATE_GIT_COMMIT");
    let commit = std::env::var("ELEVATE_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let c = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !c.is_empty()).then_some(c)
    });
    // Rebuild when HEAD moves: HEAD itself, and the branch file it points at.
    if let Ok(dir) = Command::new("git").args(["rev-parse", "--git-dir"]).output()
        && let Ok(dir) = String::from_utf8(dir.stdout)
    {
        let dir = dir.trim();
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Ok(head) = std::fs::read_to_string(format!("{dir}/HEAD"))
            && let Some(r) = head.strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed={dir}/{}", r.trim());
        }
    }
    println!("cargo:rustc-env=ELEVATE_GIT_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
