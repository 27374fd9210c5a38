//! Test harness: one moto server per test binary with SigV4 checking switched on, an admin key
//! for setting up and inspecting the emulated account, and helpers to build grant specs.
#![allow(dead_code)]

pub mod proxy;

use chrono::{DateTime, Duration, TimeZone, Utc};
use elevate_aws::{AwsClient, AwsConfig, AwsProvider, Service, StaticCredentials};
use elevate_core::ports::GrantSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A running moto server, shared by the tests of one binary (each test uses its own names).
pub struct Moto {
    pub url: String,
    /// Keys of `elevate-admin`, a user with an allow-all policy, created while moto still
    /// accepted unauthenticated calls.
    pub admin_keys: StaticCredentials,
    /// The shell that runs moto and ends it when this process is gone.
    _watchdog: std::process::Child,
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ELEVATE_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    // The venv sits at the workspace root; this file is also compiled into the end-to-end
    // tests crate, one level less deep, so look upwards.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|d| d.join(".moto-venv/bin/moto_server"))
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join("../../.moto-venv/bin/moto_server"))
}

/// The shared moto server, or `None` (with a loud notice) when moto is not installed and the
/// run does not require it. With `CI` or `ELEVATE_REQUIRE_MOTO` set, a missing moto fails.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| match std::thread::spawn(start).join() {
        Ok(m) => m,
        Err(panic) => std::panic::resume_unwind(panic),
    })
    .as_ref()
}

fn start() -> Option<Moto> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = moto_binary();
    if !bin.exists() {
        let required = std::env::var_os("CI").is_some() || std::env::var_os("ELEVATE_REQUIRE_MOTO").is_some();
        let msg = format!(
            "moto_server not found at {} (run `bash scripts/moto.sh`, or set ELEVATE_MOTO_SERVER)",
            bin.display()
        );
        if required {
            panic!("{msg}; CI/ELEVATE_REQUIRE_MOTO is set, so the AWS tests cannot be skipped");
        }
        // Straight to the file descriptor: the test harness captures `eprintln!`.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n!!!!!!!!!! SKIPPING THE AWS EMULATOR TESTS: {msg} !!!!!!!!!!\n");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The shell outlives nothing: it kills moto as soon as this test process is gone.
    let script = r#"MOTO_IAM_LOAD_MANAGED_POLICIES=true "$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!
while kill -0 "$2" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 1; done
kill "$m" 2>/dev/null"#;
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin_keys = rt.block_on(setup(&url));
    Some(Moto { url, admin_keys, _watchdog: watchdog })
}

async fn setup(url: &str) -> StaticCredentials {
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "moto_server did not answer on {url} within 30s");
    // From here on moto checks signatures and IAM permissions, after 3 free calls.
    let r = http
        .post(format!("{url}/moto-api/reset-auth"))
        .header("Content-Type", "text/plain")
        .body("3")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "reset-auth: {}", r.status());
    let boot = provider_at(url, StaticCredentials::new("AKIDBOOTSTRAP", "bootstrap-secret", None), |_| {});
    let c = boot.client();
    c.query(Service::Iam, "CreateUser", &[("UserName", "elevate-admin")]).await.expect("CreateUser");
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
    c.query(
        Service::Iam,
        "PutUserPolicy",
        &[("UserName", "elevate-admin"), ("PolicyName", "all"), ("PolicyDocument", &all)],
    )
    .await
    .expect("PutUserPolicy");
    let key =
        c.query(Service::Iam, "CreateAccessKey", &[("UserName", "elevate-admin")]).await.expect("CreateAccessKey");
    let id = key.find("AccessKeyId").unwrap().text.clone();
    let secret = key.find("SecretAccessKey").unwrap().text.clone();
    StaticCredentials::new(id, secret, None)
}

/// A provider against `url` with short backoffs and polls, so no test waits long.
pub fn provider_at(url: &str, keys: StaticCredentials, tweak: impl FnOnce(&mut AwsConfig)) -> AwsProvider {
    let mut cfg = AwsConfig {
        kind: Some("aws".into()),
        region: REGION.into(),
        endpoint: Some(url.into()),
        timeout: Some("5s".into()),
        retry_base: Some("1ms".into()),
        poll_interval: Some("10ms".into()),
        ..AwsConfig::default()
    };
    tweak(&mut cfg);
    AwsProvider::new(cfg, keys).expect("provider")
}

/// Installs the TLS crypto provider reqwest needs even for plain http (see docs/design.md).
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Moto {
    /// A provider signing as elevate-admin.
    pub fn provider(&self) -> AwsProvider {
        provider_at(&self.url, self.admin_keys.clone(), |_| {})
    }

    pub fn admin(&self) -> AwsProvider {
        self.provider()
    }
}

pub async fn create_user(c: &AwsClient, name: &str) {
    c.query(Service::Iam, "CreateUser", &[("UserName", name)]).await.expect("CreateUser");
}

pub async fn create_group(c: &AwsClient, name: &str) {
    c.query(Service::Iam, "CreateGroup", &[("GroupName", name)]).await.expect("CreateGroup");
}

/// A role that `trusted` (an ARN) may assume.
pub async fn create_role(c: &AwsClient, name: &str, trusted: &str) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]});
    c.query(Service::Iam, "CreateRole", &[("RoleName", name), ("AssumeRolePolicyDocument", &trust.to_string())])
        .await
        .expect("CreateRole");
}

/// A fixed grant window, so that condition texts can be compared exactly.
pub fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 24, 13, 5, 0).unwrap();
    (start, start + Duration::hours(2))
}

pub fn spec(request: i64, target: Value, principals: &[(&str, &str)]) -> GrantSpec {
    let (starts_at, expires_at) = window();
    GrantSpec {
        grant_id: format!("elevate-{request}"),
        request: elevate_core::RequestId(request),
        role: elevate_core::RoleName::parse("test-role").unwrap(),
        person: elevate_core::PersonId::parse("alice").unwrap(),
        principals: principals.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        target,
        starts_at,
        expires_at,
        handle: None,
    }
}
