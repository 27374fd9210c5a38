//! The `postgres-roles` provider through the whole engine (request → approve → grant → expire
//! → revoke) against the real PostgreSQL server named by `ELEVATE_TEST_POSTGRES_URL`. Each test
//! makes its own database cluster roles (elevate's login with CREATEROLE and ADMIN OPTION on
//! the target roles, the target roles, people's logins) and its own database for elevate's
//! bookkeeping, all named with a random suffix, and drops them at the end.

use chrono::Duration;
use elevate_core::ports::{GrantProvider, GrantSpec, Overlap, ProviderError};
use elevate_dbroles::{PostgresRolesConfig, PostgresRolesProvider};
use elevate_tests::{TestApp, policy::sha};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use std::io::Write as _;

/// One test's corner of the server.
struct Cluster {
    admin: String,
    /// `postgres://USER:PASSWORD@HOST:PORT`, no database.
    base_host: String,
    s: String,
    db: String,
}

impl Cluster {
    async fn new() -> Option<Cluster> {
        let Ok(admin) = std::env::var("ELEVATE_TEST_POSTGRES_URL") else {
            if std::env::var("CI").is_ok() {
                panic!("CI is set but ELEVATE_TEST_POSTGRES_URL is not: the database roles suite must run in CI");
            }
            eprintln!("SKIPPED: set ELEVATE_TEST_POSTGRES_URL to run the database roles tests");
            return None;
        };
        let s = format!("{:08x}", rand::random::<u32>());
        let host = admin.split_once('@').map(|(_, h)| h).unwrap_or("127.0.0.1:5432/postgres");
        let host = host.split('/').next().unwrap_or(host).to_string();
        let c = Cluster { admin, base_host: host, db: format!("elevate_dbroles_{s}"), s: s.clone() };
        c.sql(&format!(
            "CREATE DATABASE {db}; \
             CREATE ROLE elevate_{s} LOGIN PASSWORD 'pw-elevate-{s}' CREATEROLE; \
             GRANT CREATE, CONNECT ON DATABASE {db} TO elevate_{s}; \
             GRANT pg_signal_backend TO elevate_{s}; \
             CREATE ROLE app_write_{s} NOLOGIN; \
             CREATE ROLE app_ops_{s} NOLOGIN; \
             GRANT app_write_{s}, app_ops_{s} TO elevate_{s} WITH ADMIN OPTION; \
             CREATE ROLE alice_{s} LOGIN PASSWORD 'pw-alice'; \
             CREATE ROLE carol_{s} LOGIN PASSWORD 'pw-carol';",
            db = c.db,
        ))
        .await;
        Some(c)
    }

    async fn sql(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.admin).await.expect("admin connection");
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            conn.execute(AssertSqlSafe(stmt.to_string())).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    /// elevate's own connection URL (what an operator puts in the secret).
    fn elevate_url(&self) -> String {
        format!("postgres://elevate_{s}:pw-elevate-{s}@{}/{}", self.base_host, self.db, s = self.s)
    }

    fn login_url(&self, who: &str) -> String {
        format!("postgres://{who}_{s}:pw-{who}@{}/{}", self.base_host, self.db, s = self.s)
    }

    /// Whether `login` is a direct member of `role` right now.
    async fn member(&self, role: &str, login: &str) -> bool {
        let mut conn = PgConnection::connect(&self.admin).await.unwrap();
        let (m,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles l ON l.oid = m.member WHERE r.rolname = $1 AND l.rolname = $2)",
        )
        .bind(format!("{role}_{}", self.s))
        .bind(format!("{login}_{}", self.s))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        m
    }

    /// Best effort: a leftover role with a random name harms no other test.
    async fn drop(self) {
        let s = &self.s;
        let Ok(mut conn) = PgConnection::connect(&self.admin).await else { return };
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'; \
             DROP DATABASE IF EXISTS {db} WITH (FORCE); \
             DROP ROLE IF EXISTS alice_{s}; DROP ROLE IF EXISTS carol_{s}; \
             DROP ROLE IF EXISTS app_write_{s}; DROP ROLE IF EXISTS app_ops_{s}; DROP ROLE IF EXISTS elevate_{s}",
            db = self.db
        );
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if let Err(e) = conn.execute(AssertSqlSafe(stmt.to_string())).await {
                eprintln!("cleanup: {stmt}: {e}");
            }
        }
    }

    /// The elevate config: the provider reads its URL from a file (as from a mounted secret).
    fn config(&self, url_file: &str) -> String {
        format!(
            r#"
[providers.pg]
type = "postgres-roles"
url_file = "{url_file}"

[persons.alice.principals]
postgres_login = "alice_{s}"
[persons.carol.principals]
postgres_login = "carol_{s}"
[persons.bob]

[groups.engineers]
members = ["alice", "carol"]
[groups.approvers]
members = ["bob"]

[roles.write]
provider = "pg"
target = {{ role = "app_write_{s}" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.write-long]
provider = "pg"
target = {{ role = "app_write_{s}" }}
default_duration = "3h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.ops]
provider = "pg"
target = {{ role = "app_ops_{s}", terminate_sessions = true }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.missing]
provider = "pg"
target = {{ role = "no_such_role_{s}" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[tokens.alice]
person = "alice"
sha256 = "{alice}"
[tokens.carol]
person = "carol"
sha256 = "{carol}"
[tokens.bob]
person = "bob"
sha256 = "{bob}"
"#,
            s = self.s,
            alice = sha("token-alice"),
            carol = sha("token-carol"),
            bob = sha("token-bob"),
        )
    }
}

/// The cluster, an app whose `pg` provider is built from the config (URL from a secret file),
/// and that file.
async fn spawn() -> Option<(Cluster, TestApp, tempfile::NamedTempFile)> {
    let c = Cluster::new().await?;
    let mut secret = tempfile::NamedTempFile::new().unwrap();
    writeln!(secret, "{}", c.elevate_url()).unwrap();
    let app = TestApp::builder().config(&c.config(&secret.path().display().to_string())).spawn().await;
    Some((c, app, secret))
}

async fn active(app: &TestApp, who: &str, role: &str) -> i64 {
    let id = app.person(who).request(role, "", "investigating INC-7").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "active", "{:?}", app.request(id).await.note);
    id
}

#[tokio::test]
async fn a_grant_is_a_role_membership_from_approval_to_expiry() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let id = active(&app, "alice", "write").await;
    assert!(c.member("app_write", "alice").await);
    let r = app.request(id).await;
    assert_eq!(r.grant_handle.unwrap()["by_hand"], json!(false), "elevate made this membership");
    let listed = app.app.service.providers()["pg"].list().await.unwrap();
    assert_eq!(listed.iter().map(|g| g.grant_id.as_str()).collect::<Vec<_>>(), [TestApp::grant_id(id)]);

    // Alice can use it: a session of hers switches to the role.
    let mut session = PgConnection::connect(&c.login_url("alice")).await.unwrap();
    session.execute(AssertSqlSafe(format!("SET ROLE app_write_{}", c.s))).await.unwrap();
    session.execute("RESET ROLE").await.unwrap();

    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(!c.member("app_write", "alice").await);
    assert!(app.app.service.providers()["pg"].list().await.unwrap().is_empty(), "elevate's record went with it");
    let err = session.execute(AssertSqlSafe(format!("SET ROLE app_write_{}", c.s))).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    session.close().await.ok();
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn overlapping_grants_and_a_membership_held_before_elevate_keep_the_role() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let short = active(&app, "alice", "write").await;
    let long = active(&app, "alice", "write-long").await;
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(short).await, "expired");
    assert!(c.member("app_write", "alice").await, "still given by {long}");
    app.after(Duration::hours(2)).await;
    assert_eq!(app.state(long).await, "expired");
    assert!(!c.member("app_write", "alice").await, "the last one removes it");

    // Carol was a member before anyone asked elevate: her grant comes and goes, the
    // membership stays.
    c.sql(&format!("GRANT app_write_{s} TO carol_{s}", s = c.s)).await;
    let id = active(&app, "carol", "write").await;
    assert_eq!(app.request(id).await.grant_handle.unwrap()["by_hand"], json!(true));
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(c.member("app_write", "carol").await, "not elevate's to take away");

    // Told that another live grant still needs the membership (one approved whose own grant
    // call is still in flight, so elevate holds no record of it here yet), a revoke leaves the
    // membership, and its own record, held over: once that grant is applied, the record passes
    // to it, and its revoke removes the membership at once.
    let pg = app.app.service.providers()["pg"].clone();
    let login = format!("alice_{}", c.s);
    let ending = leftover(&app, 999_999, "alice", &login, "write");
    let applying = leftover(&app, 999_998, "alice", &login, "write");
    let listed = || async { pg.list().await.unwrap().into_iter().map(|g| g.grant_id).collect::<Vec<_>>() };
    pg.grant(&ending).await.unwrap();
    pg.revoke(&ending, Overlap::StillNeeded).await.unwrap();
    assert!(c.member("app_write", "alice").await);
    assert_eq!(listed().await, [ending.grant_id.as_str()]);
    pg.grant(&applying).await.unwrap();
    assert_eq!(listed().await, [applying.grant_id.as_str()], "the held-over record has done its work");
    pg.revoke(&applying, Overlap::Alone).await.unwrap();
    assert!(!c.member("app_write", "alice").await);
    // Should that grant never be applied, the next reconciliation finds nothing needs the
    // membership (request 999999 does not exist) and removes it.
    pg.grant(&ending).await.unwrap();
    pg.revoke(&ending, Overlap::StillNeeded).await.unwrap();
    assert!(c.member("app_write", "alice").await);
    let report = app.app.service.reconcile().await.unwrap();
    assert_eq!(report.drift_revoked, [ending.grant_id.as_str()]);
    assert!(!c.member("app_write", "alice").await);
    assert!(listed().await.is_empty());
    drop(app);
    c.drop().await;
}

/// A spec for a grant elevate left behind: its request is over, the membership is not.
fn leftover(app: &TestApp, id: i64, who: &str, login: &str, role: &str) -> GrantSpec {
    let policy = app.app.service.policy();
    let r = &policy.roles[&elevate_core::RoleName::parse(role).unwrap()];
    let now = chrono::Utc::now();
    GrantSpec {
        grant_id: TestApp::grant_id(id),
        request: elevate_core::RequestId(id),
        role: r.name.clone(),
        person: elevate_core::PersonId::parse(who).unwrap(),
        principals: [("postgres_login".to_string(), login.to_string())].into(),
        target: r.target.clone(),
        starts_at: now,
        expires_at: now + Duration::hours(1),
        handle: None,
    }
}

#[tokio::test]
async fn reconciliation_removes_elevates_leftovers_and_leaves_hand_made_memberships_alone() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let s = c.s.clone();
    let pg = app.app.service.providers()["pg"].clone();
    // By hand, outside elevate.
    c.sql(&format!("GRANT app_ops_{s} TO carol_{s}")).await;
    // Leftovers of elevate's: memberships applied for requests that were then denied (as after
    // a crash between the provider call and recording it).
    let denied_carol = app.carol().request("write", "1h", "INC-9 look").await.id();
    let denied_alice = app.alice().request("write", "1h", "INC-9 look").await.id();
    for id in [denied_carol, denied_alice] {
        app.bob().deny(id, "no").await.ok();
    }
    pg.grant(&leftover(&app, denied_carol, "carol", &format!("carol_{s}"), "write")).await.unwrap();
    pg.grant(&leftover(&app, denied_alice, "alice", &format!("alice_{s}"), "write")).await.unwrap();
    // Alice also holds a live grant of the same membership.
    let live = active(&app, "alice", "write-long").await;
    assert!(c.member("app_write", "carol").await && c.member("app_write", "alice").await);

    let report = app.app.service.reconcile().await.unwrap();
    let mut removed = report.drift_revoked.clone();
    removed.sort();
    let mut want = vec![TestApp::grant_id(denied_carol), TestApp::grant_id(denied_alice)];
    want.sort();
    assert_eq!(removed, want, "{report:?}");
    assert!(!c.member("app_write", "carol").await, "carol's leftover membership is gone");
    assert!(c.member("app_write", "alice").await, "alice's live grant {live} still gives the membership");
    assert!(c.member("app_ops", "carol").await, "the hand-made membership is not elevate's");
    assert!(app.event_kinds(denied_carol).await.contains(&"grant.drift_revoked".to_string()));
    let listed: Vec<_> = pg.list().await.unwrap().into_iter().map(|g| g.grant_id).collect();
    assert_eq!(listed, [TestApp::grant_id(live)]);

    app.after(Duration::hours(3)).await;
    assert_eq!(app.state(live).await, "expired");
    assert!(!c.member("app_write", "alice").await);
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn two_revokes_of_one_membership_at_once_never_both_leave_it_to_the_other() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let pg = app.app.service.providers()["pg"].clone();
    let login = format!("alice_{}", c.s);
    for round in 0..5 {
        let a = leftover(&app, 900_000 + 2 * round, "alice", &login, "write");
        let b = leftover(&app, 900_001 + 2 * round, "alice", &login, "write");
        pg.grant(&a).await.unwrap();
        pg.grant(&b).await.unwrap();
        // Both end at once, each told (rightly, both being `revoking`) that nothing else needs it.
        let (ra, rb) = tokio::join!(pg.revoke(&a, Overlap::Alone), pg.revoke(&b, Overlap::Alone));
        ra.unwrap();
        rb.unwrap();
        assert!(!c.member("app_write", "alice").await, "round {round}: the membership was left behind");
        assert!(pg.list().await.unwrap().is_empty());
    }
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn a_revoke_ends_the_logins_sessions_when_the_target_asks_for_it() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let s = c.s.clone();
    // Without `terminate_sessions`, a session that switched to the role keeps it after the
    // revoke: the reason the option exists.
    let write = active(&app, "alice", "write").await;
    let mut kept = PgConnection::connect(&c.login_url("alice")).await.unwrap();
    kept.execute(AssertSqlSafe(format!("SET ROLE app_write_{s}"))).await.unwrap();
    app.bob().revoke(write, "done").await.ok();
    app.run_due().await;
    assert_eq!(app.state(write).await, "revoked");
    assert!(!c.member("app_write", "alice").await);
    let (who,): (String,) = sqlx::query_as("SELECT current_user::text").fetch_one(&mut kept).await.unwrap();
    assert_eq!(who, format!("app_write_{s}"), "the open session still acts as the role");
    kept.close().await.ok();

    // With it, the revoke ends her sessions.
    let ops = active(&app, "alice", "ops").await;
    let mut session = PgConnection::connect(&c.login_url("alice")).await.unwrap();
    session.execute(AssertSqlSafe(format!("SET ROLE app_ops_{s}"))).await.unwrap();
    app.bob().revoke(ops, "done").await.ok();
    app.run_due().await;
    assert_eq!(app.state(ops).await, "revoked");
    assert!(!c.member("app_ops", "alice").await);
    assert!(sqlx::query("SELECT 1").execute(&mut session).await.is_err(), "the session was ended");
    let mut admin = PgConnection::connect(&c.admin).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
        .bind(format!("alice_{s}"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(app.app.service.providers()["pg"].list().await.unwrap().is_empty());
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn a_role_that_does_not_exist_fails_the_grant_with_the_servers_message() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let id = app.alice().request("missing", "1h", "INC-3 look").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "grant_failed");
    let note = app.request(id).await.note.unwrap();
    assert_eq!(note, format!("UndefinedObject: role \"no_such_role_{}\" does not exist", c.s));
    assert!(!note.contains("pw-elevate"));
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error_that_never_shows_the_password() {
    let cfg = PostgresRolesConfig { url_env: Some("X".into()), timeout: Some("2s".into()), ..Default::default() };
    // A port nothing listens on.
    let url = "postgres://elevate:Sup3r%2Fsecret@127.0.0.1:1/app";
    let p = PostgresRolesProvider::new(cfg.settings().unwrap(), url).unwrap();
    let now = chrono::Utc::now();
    let spec = GrantSpec {
        grant_id: "elevate-1".into(),
        request: elevate_core::RequestId(1),
        role: elevate_core::RoleName::parse("write").unwrap(),
        person: elevate_core::PersonId::parse("alice").unwrap(),
        principals: [("postgres_login".to_string(), "alice".to_string())].into(),
        target: json!({ "role": "app_write" }),
        starts_at: now,
        expires_at: now + Duration::hours(1),
        handle: None,
    };
    for e in [p.grant(&spec).await.unwrap_err(), p.revoke(&spec, Overlap::Alone).await.unwrap_err()] {
        assert!(matches!(e, ProviderError::Transient { .. }), "{e:?}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("Sup3r") && !text.contains("secret"), "{text}");
    }
    let bad = PostgresRolesProvider::new(cfg.settings().unwrap(), "postgres://elevate:Sup3r@[bad").unwrap_err();
    assert!(!bad.contains("Sup3r"), "{bad}");
    // A person without a login is refused before anything is sent.
    let mut no_login = spec.clone();
    no_login.principals.clear();
    match p.grant(&no_login).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "NoLogin");
            assert!(message.contains("postgres_login"), "{message}");
        }
        e => panic!("{e:?}"),
    }
}
