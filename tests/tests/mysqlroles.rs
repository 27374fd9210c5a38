//! The `mysql-roles` provider through the whole engine (request → approve → grant → expire →
//! revoke) against the real MariaDB (or MySQL) server named by `ELEVATE_TEST_MYSQL_URL`. Each
//! test makes its own accounts (elevate's login with ADMIN OPTION on the target roles, the
//! roles, people's accounts) and its own bookkeeping database, named with a random suffix, and
//! drops them at the end.

use chrono::Duration;
use elevate_core::ports::{GrantProvider, GrantSpec, Overlap, ProviderError};
use elevate_dbroles::mysql::{MysqlRolesConfig, MysqlRolesProvider};
use elevate_tests::{TestApp, policy::sha};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};
use std::io::Write as _;

/// One test's corner of the server.
struct Server {
    admin: String,
    /// `HOST:PORT`.
    host: String,
    s: String,
}

impl Server {
    async fn new() -> Option<Server> {
        let Ok(admin) = std::env::var("ELEVATE_TEST_MYSQL_URL") else {
            if std::env::var("CI").is_ok() {
                panic!("CI is set but ELEVATE_TEST_MYSQL_URL is not: the MariaDB roles suite must run in CI");
            }
            eprintln!("SKIPPED: set ELEVATE_TEST_MYSQL_URL to run the MariaDB/MySQL roles tests");
            return None;
        };
        let s = format!("{:08x}", rand::random::<u32>());
        let host = admin.rsplit_once('@').map(|(_, h)| h).unwrap_or("127.0.0.1:3306");
        let host = host.split('/').next().unwrap_or(host).to_string();
        let c = Server { admin, host, s: s.clone() };
        c.sql(&format!(
            "CREATE USER 'elevate_{s}'@'%' IDENTIFIED BY 'pw-elevate-{s}'; \
             GRANT ALL ON `elevate_{s}`.* TO 'elevate_{s}'@'%'; \
             GRANT SELECT ON mysql.roles_mapping TO 'elevate_{s}'@'%'; \
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'elevate_{s}'@'%'; \
             CREATE ROLE app_write_{s}; \
             CREATE ROLE app_ops_{s}; \
             GRANT SELECT ON `elevate_{s}`.* TO app_ops_{s}; \
             GRANT app_write_{s} TO 'elevate_{s}'@'%' WITH ADMIN OPTION; \
             GRANT app_ops_{s} TO 'elevate_{s}'@'%' WITH ADMIN OPTION; \
             CREATE USER 'alice_{s}'@'%' IDENTIFIED BY 'pw-alice'; \
             CREATE USER 'carol_{s}'@'%' IDENTIFIED BY 'pw-carol'"
        ))
        .await;
        Some(c)
    }

    async fn sql(&self, sql: &str) {
        let mut conn = MySqlConnection::connect(&self.admin).await.expect("admin connection");
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            conn.execute(AssertSqlSafe(stmt.to_string())).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    fn elevate_url(&self) -> String {
        format!("mysql://elevate_{s}:pw-elevate-{s}@{}/", self.host, s = self.s)
    }

    fn login_url(&self, who: &str) -> String {
        format!("mysql://{who}_{s}:pw-{who}@{}/", self.host, s = self.s)
    }

    /// Whether `who`'s account holds `role` right now.
    async fn member(&self, role: &str, who: &str) -> bool {
        let mut conn = MySqlConnection::connect(&self.admin).await.unwrap();
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM mysql.roles_mapping WHERE Role = ? AND User = ? AND Host = '%'")
                .bind(format!("{role}_{}", self.s))
                .bind(format!("{who}_{}", self.s))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        n > 0
    }

    /// Best effort: leftovers with a random name harm no other test.
    async fn drop(self) {
        let s = &self.s;
        let Ok(mut conn) = MySqlConnection::connect(&self.admin).await else { return };
        let sql = format!(
            "DROP DATABASE IF EXISTS `elevate_{s}`; DROP USER IF EXISTS 'alice_{s}'@'%'; \
             DROP USER IF EXISTS 'carol_{s}'@'%'; DROP USER IF EXISTS 'elevate_{s}'@'%'; \
             DROP ROLE IF EXISTS app_write_{s}; DROP ROLE IF EXISTS app_ops_{s}"
        );
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if let Err(e) = conn.execute(AssertSqlSafe(stmt.to_string())).await {
                eprintln!("cleanup: {stmt}: {e}");
            }
        }
    }

    /// The elevate config: the provider reads its URL from a file (as from a mounted secret).
    fn config(&self, url_file: &str) -> String {
        let role = |name: &str, target: &str, default: &str| {
            format!(
                "[roles.{name}]\nprovider = \"db\"\ntarget = {target}\ndefault_duration = \"{default}\"\nmax_duration = \"4h\"\nrequesters = [\"engineers\"]\napprovers = [\"approvers\"]\n\n"
            )
        };
        let s = &self.s;
        format!(
            r#"
[providers.db]
type = "mysql-roles"
url_file = "{url_file}"
database = "elevate_{s}"

[persons.alice.principals]
mysql_login = "alice_{s}"
[persons.carol.principals]
mysql_login = "carol_{s}@%"
[persons.bob]

[groups.engineers]
members = ["alice", "carol"]
[groups.approvers]
members = ["bob"]

{write}{write_long}{ops}{missing}
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
            write = role("write", &format!("{{ role = \"app_write_{s}\" }}"), "1h"),
            write_long = role("write-long", &format!("{{ role = \"app_write_{s}\" }}"), "3h"),
            ops = role("ops", &format!("{{ role = \"app_ops_{s}\", terminate_sessions = true }}"), "1h"),
            missing = role("missing", &format!("{{ role = \"no_such_role_{s}\" }}"), "1h"),
            alice = sha("token-alice"),
            carol = sha("token-carol"),
            bob = sha("token-bob"),
        )
    }
}

async fn spawn() -> Option<(Server, TestApp, tempfile::NamedTempFile)> {
    let c = Server::new().await?;
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
        principals: [("mysql_login".to_string(), login.to_string())].into(),
        target: r.target.clone(),
        starts_at: now,
        expires_at: now + Duration::hours(1),
        handle: None,
    }
}

#[tokio::test]
async fn a_grant_is_a_role_of_the_account_from_approval_to_expiry() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let id = active(&app, "alice", "write").await;
    assert!(c.member("app_write", "alice").await);
    assert_eq!(app.request(id).await.grant_handle.unwrap()["by_hand"], json!(false));
    let listed = app.app.service.providers()["db"].list().await.unwrap();
    assert_eq!(listed.iter().map(|g| g.grant_id.as_str()).collect::<Vec<_>>(), [TestApp::grant_id(id)]);

    // Alice can use it: a session of hers switches to the role.
    let mut session = MySqlConnection::connect(&c.login_url("alice")).await.unwrap();
    session.execute(AssertSqlSafe(format!("SET ROLE app_write_{}", c.s))).await.unwrap();
    session.execute("SET ROLE NONE").await.unwrap();

    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(!c.member("app_write", "alice").await);
    assert!(app.app.service.providers()["db"].list().await.unwrap().is_empty(), "elevate's record went with it");
    let err = session.execute(AssertSqlSafe(format!("SET ROLE app_write_{}", c.s))).await.unwrap_err();
    // MariaDB says either, depending on what the session last knew of its roles.
    let refused = err.to_string();
    assert!(refused.contains("Access denied") || refused.contains("Invalid role specification"), "{refused}");
    session.close().await.ok();
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn overlapping_grants_and_a_role_held_before_elevate_keep_the_role() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let short = active(&app, "alice", "write").await;
    let long = active(&app, "alice", "write-long").await;
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(short).await, "expired");
    assert!(c.member("app_write", "alice").await, "still given by {long}");
    app.after(Duration::hours(2)).await;
    assert_eq!(app.state(long).await, "expired");
    assert!(!c.member("app_write", "alice").await, "the last one removes it");

    // Carol held the role before anyone asked elevate: her grant comes and goes, the role stays.
    c.sql(&format!("GRANT app_write_{s} TO 'carol_{s}'@'%'", s = c.s)).await;
    let id = active(&app, "carol", "write").await;
    assert_eq!(app.request(id).await.grant_handle.unwrap()["by_hand"], json!(true));
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(c.member("app_write", "carol").await, "not elevate's to take away");

    // Told that a grant being applied still needs it, a revoke keeps the role and its record
    // (held over) until that grant has its own; reconciliation removes it should it never.
    let db = app.app.service.providers()["db"].clone();
    let login = format!("alice_{}", c.s);
    let ending = leftover(&app, 999_999, "alice", &login, "write");
    let applying = leftover(&app, 999_998, "alice", &login, "write");
    let listed = || async { db.list().await.unwrap().into_iter().map(|g| g.grant_id).collect::<Vec<_>>() };
    db.grant(&ending).await.unwrap();
    db.revoke(&ending, Overlap::StillNeeded).await.unwrap();
    assert!(c.member("app_write", "alice").await);
    assert_eq!(listed().await, [ending.grant_id.as_str()]);
    db.grant(&applying).await.unwrap();
    assert_eq!(listed().await, [applying.grant_id.as_str()], "the held-over record has done its work");
    db.revoke(&applying, Overlap::Alone).await.unwrap();
    assert!(!c.member("app_write", "alice").await);
    db.grant(&ending).await.unwrap();
    db.revoke(&ending, Overlap::StillNeeded).await.unwrap();
    let report = app.app.service.reconcile().await.unwrap();
    assert_eq!(report.drift_revoked, [ending.grant_id.as_str()]);
    assert!(!c.member("app_write", "alice").await);
    assert!(listed().await.is_empty());
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn reconciliation_removes_elevates_leftovers_and_leaves_hand_made_roles_alone() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let s = c.s.clone();
    let db = app.app.service.providers()["db"].clone();
    c.sql(&format!("GRANT app_ops_{s} TO 'carol_{s}'@'%'")).await;
    // Leftovers: roles applied for requests that were then denied (as after a crash between
    // the provider call and recording it).
    let denied = app.carol().request("write", "1h", "INC-9 look").await.id();
    app.bob().deny(denied, "no").await.ok();
    db.grant(&leftover(&app, denied, "carol", &format!("carol_{s}"), "write")).await.unwrap();
    let live = active(&app, "alice", "write-long").await;

    let report = app.app.service.reconcile().await.unwrap();
    assert_eq!(report.drift_revoked, [TestApp::grant_id(denied)], "{report:?}");
    assert!(!c.member("app_write", "carol").await, "carol's leftover role is gone");
    assert!(c.member("app_write", "alice").await, "alice's live grant {live} still gives it");
    assert!(c.member("app_ops", "carol").await, "the hand-made role is not elevate's");
    assert!(app.event_kinds(denied).await.contains(&"grant.drift_revoked".to_string()));
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn two_revokes_of_one_role_at_once_never_both_leave_it_to_the_other() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let db = app.app.service.providers()["db"].clone();
    let login = format!("alice_{}", c.s);
    for round in 0..5 {
        let a = leftover(&app, 900_000 + 2 * round, "alice", &login, "write");
        let b = leftover(&app, 900_001 + 2 * round, "alice", &login, "write");
        db.grant(&a).await.unwrap();
        db.grant(&b).await.unwrap();
        let (ra, rb) = tokio::join!(db.revoke(&a, Overlap::Alone), db.revoke(&b, Overlap::Alone));
        ra.unwrap();
        rb.unwrap();
        assert!(!c.member("app_write", "alice").await, "round {round}: the role was left behind");
        assert!(db.list().await.unwrap().is_empty());
    }
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn a_revoke_ends_the_accounts_connections_when_the_target_asks_for_it() {
    let Some((c, app, _secret)) = spawn().await else { return };
    let s = c.s.clone();
    let ops = active(&app, "alice", "ops").await;
    let mut session = MySqlConnection::connect(&c.login_url("alice")).await.unwrap();
    session.execute(AssertSqlSafe(format!("SET ROLE app_ops_{s}"))).await.unwrap();
    app.bob().revoke(ops, "done").await.ok();
    app.run_due().await;
    assert_eq!(app.state(ops).await, "revoked", "{:?}", app.request(ops).await.note);
    assert!(!c.member("app_ops", "alice").await);
    assert!(sqlx::query("SELECT 1").execute(&mut session).await.is_err(), "the connection was ended");
    let mut admin = MySqlConnection::connect(&c.admin).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?")
        .bind(format!("alice_{s}"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(app.app.service.providers()["db"].list().await.unwrap().is_empty());
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
    assert_eq!(note, format!("InvalidRole: Invalid role specification `no_such_role_{}`", c.s));
    assert!(!note.contains("pw-elevate"));
    assert!(app.app.service.providers()["db"].list().await.unwrap().is_empty(), "no record of a refused grant");
    drop(app);
    c.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error_that_never_shows_the_password() {
    let cfg = MysqlRolesConfig { url_env: Some("X".into()), timeout: Some("2s".into()), ..Default::default() };
    let url = "mysql://elevate:Sup3r%2Fsecret@127.0.0.1:1/";
    let p = MysqlRolesProvider::new(cfg.settings().unwrap(), url).unwrap();
    let now = chrono::Utc::now();
    let spec = GrantSpec {
        grant_id: "elevate-1".into(),
        request: elevate_core::RequestId(1),
        role: elevate_core::RoleName::parse("write").unwrap(),
        person: elevate_core::PersonId::parse("alice").unwrap(),
        principals: [("mysql_login".to_string(), "alice".to_string())].into(),
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
    let mut no_login = spec.clone();
    no_login.principals.clear();
    match p.grant(&no_login).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "NoLogin");
            assert!(message.contains("mysql_login"), "{message}");
        }
        e => panic!("{e:?}"),
    }
}
