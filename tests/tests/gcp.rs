//! The Google Cloud provider through the whole engine (request → approve → grant → expire →
//! revoke) against the fake Google APIs, whose clock follows the engine's: conditional role
//! bindings, group memberships, overlap, drift, and Google's refusal shown to the requester.

#[path = "../../adapters/gcp/tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use chrono::Duration;
use common::FakeGoogle;
use common::fake::Fault;
use elevate_core::Clock;
use elevate_gcp::GcpProvider;
use elevate_tests::{TestApp, policy::sha};
use serde_json::{Value, json};
use std::sync::Arc;

const SQL: &str = r#"{ type = "iam_role", resource = "projects/prod-app-1", role = "roles/cloudsql.admin" }"#;
const ONCALL: &str = r#"{ type = "group_membership", group = "prod-oncall@example.com" }"#;

fn config() -> String {
    let role = |name: &str, target: &str, default: &str| {
        format!(
            "[roles.{name}]\nprovider = \"gcp\"\ntarget = {target}\ndefault_duration = \"{default}\"\nmax_duration = \"4h\"\nrequesters = [\"engineers\"]\napprovers = [\"approvers\"]\n\n"
        )
    };
    format!(
        r#"
[providers.gcp]
type = "gcp"
credentials_env = "ELEVATE_TEST_GCP_KEY_UNUSED"

[persons.alice.principals]
gcp_principal = "user:alice@example.com"
[persons.bob]

[groups.engineers]
members = ["alice", "bob"]
[groups.approvers]
members = ["bob"]

{sql}{sql_long}{oncall}{oncall_long}
[tokens.alice]
person = "alice"
sha256 = "{alice}"
[tokens.bob]
person = "bob"
sha256 = "{bob}"
"#,
        sql = role("sql", SQL, "1h"),
        sql_long = role("sql-long", SQL, "3h"),
        oncall = role("oncall", ONCALL, "1h"),
        oncall_long = role("oncall-long", ONCALL, "3h"),
        alice = sha("token-alice"),
        bob = sha("token-bob"),
    )
}

/// Someone's standing binding on the project, which must survive everything.
fn theirs() -> Value {
    json!({ "role": "roles/owner", "members": ["group:platform@example.com"] })
}

struct Gcp {
    app: TestApp,
    fake: FakeGoogle,
    provider: Arc<GcpProvider>,
    group: String,
}

async fn spawn() -> Gcp {
    let fake = FakeGoogle::start().await;
    fake.add_resource("projects/prod-app-1", vec![theirs()]);
    let group = fake.add_group("prod-oncall@example.com");
    let provider = Arc::new(common::provider(&fake));
    let app = TestApp::builder().config(&config()).provider("gcp", provider.clone()).spawn().await;
    // Google's clock and elevate's move together.
    provider.set_clock(app.clock.clone());
    let clock = app.clock.clone();
    fake.follow(move || clock.now());
    Gcp { app, fake, provider, group }
}

async fn active(app: &TestApp, role: &str) -> i64 {
    let id = app.alice().request(role, "", "investigating INC-7").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "active", "{:?}", app.request(id).await.note);
    id
}

fn ours(fake: &FakeGoogle) -> Vec<Value> {
    fake.bindings("projects/prod-app-1").into_iter().filter(|b| b != &theirs()).collect()
}

#[tokio::test]
async fn a_project_role_is_a_binding_that_ends_with_the_grant() {
    let g = spawn().await;
    let id = active(&g.app, "sql").await;
    let r = g.app.request(id).await;
    let bindings = ours(&g.fake);
    assert_eq!(bindings.len(), 1);
    let end = r.expires_at.unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(bindings[0]["condition"]["expression"], format!("request.time < timestamp(\"{end}\")"));
    assert_eq!(bindings[0]["condition"]["title"], format!("elevate-grant-elevate-{id}"));
    g.app.after(Duration::hours(1)).await;
    assert_eq!(g.app.state(id).await, "expired");
    assert!(ours(&g.fake).is_empty());
    assert_eq!(g.fake.bindings("projects/prod-app-1"), [theirs()]);
}

#[tokio::test]
async fn a_group_membership_carries_the_grants_end_and_goes_at_release() {
    let g = spawn().await;
    let id = active(&g.app, "oncall").await;
    let end = g.app.request(id).await.expires_at.unwrap();
    assert_eq!(g.fake.members(&g.group), [("alice@example.com".to_string(), Some(end))]);
    g.app.alice().release(id).await.ok();
    g.app.run_due().await;
    assert_eq!(g.app.state(id).await, "released");
    assert!(g.fake.members(&g.group).is_empty());
}

#[tokio::test]
async fn overlapping_grants_keep_the_access_the_other_still_gives() {
    let g = spawn().await;
    let short = active(&g.app, "sql").await;
    let long = active(&g.app, "sql-long").await;
    let m_short = active(&g.app, "oncall").await;
    let m_long = active(&g.app, "oncall-long").await;
    assert_eq!(ours(&g.fake).len(), 2, "a binding per grant");
    let long_end = g.app.request(m_long).await.expires_at.unwrap();
    assert_eq!(g.fake.members(&g.group), [("alice@example.com".to_string(), Some(long_end))]);

    g.app.after(Duration::hours(1)).await;
    assert_eq!((g.app.state(short).await, g.app.state(m_short).await), ("expired".into(), "expired".into()));
    let left = ours(&g.fake);
    assert_eq!(left.len(), 1);
    assert_eq!(elevate_gcp::target::grant_of(&left[0]), Some(TestApp::grant_id(long).as_str()));
    assert_eq!(g.fake.members(&g.group), [("alice@example.com".to_string(), Some(long_end))], "still needed");

    g.app.after(Duration::hours(2)).await;
    assert_eq!((g.app.state(long).await, g.app.state(m_long).await), ("expired".into(), "expired".into()));
    assert!(ours(&g.fake).is_empty());
    assert!(g.fake.members(&g.group).is_empty());
}

#[tokio::test]
async fn reconciliation_removes_a_binding_titled_as_elevates_that_no_grant_backs() {
    let g = spawn().await;
    // What the bot does for every role of the provider when it builds it.
    g.provider.watch(&json!({ "type": "iam_role", "resource": "projects/prod-app-1", "role": "roles/logging.viewer" }));
    let live = active(&g.app, "sql").await;
    let end = (g.app.clock.now() + Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut bindings = g.fake.bindings("projects/prod-app-1");
    bindings.push(json!({ "role": "roles/cloudsql.admin", "members": ["user:alice@example.com"], "condition": {
        "title": "elevate-grant-elevate-424242", "expression": format!("request.time < timestamp(\"{end}\")") } }));
    g.fake.add_resource("projects/prod-app-1", bindings);
    let report = g.app.app.service.reconcile().await.unwrap();
    assert_eq!(report.drift_revoked, ["elevate-424242"], "{report:?}");
    let left = ours(&g.fake);
    assert_eq!(left.len(), 1, "the live grant's binding stays");
    assert_eq!(elevate_gcp::target::grant_of(&left[0]), Some(TestApp::grant_id(live).as_str()));
    assert!(
        g.app
            .events()
            .await
            .iter()
            .any(|e| e.kind == "grant.drift_revoked" && e.details["grant_id"] == "elevate-424242")
    );
}

#[tokio::test]
async fn googles_refusal_fails_the_grant_with_googles_words() {
    let g = spawn().await;
    let id = g.app.alice().request("sql", "1h", "INC-8").await.id();
    g.app.bob().approve(id).await.ok();
    g.fake.fail_next([Fault::Denied("Policy update access denied.".into())]);
    g.app.run_due().await;
    let r = g.app.request(id).await;
    assert_eq!(r.state.as_str(), "grant_failed");
    assert_eq!(r.note.as_deref(), Some("PERMISSION_DENIED: Policy update access denied."));
    assert!(ours(&g.fake).is_empty());
}

#[tokio::test]
async fn an_extension_moves_the_end_google_enforces() {
    let g = spawn().await;
    let role = active(&g.app, "sql").await;
    let member = active(&g.app, "oncall").await;
    for id in [role, member] {
        let ext = g.app.alice().extend(id, "2h").await.ok();
        g.app.bob().approve(ext["id"].as_i64().unwrap()).await.ok();
    }
    g.app.run_due().await;
    let end = g.app.request(role).await.expires_at.unwrap();
    let bindings = ours(&g.fake);
    assert_eq!(bindings.len(), 1, "the same binding, rewritten");
    let ts = end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(bindings[0]["condition"]["expression"], format!("request.time < timestamp(\"{ts}\")"));
    let end = g.app.request(member).await.expires_at.unwrap();
    assert_eq!(g.fake.members(&g.group), [("alice@example.com".to_string(), Some(end))]);

    g.app.after(Duration::hours(1)).await;
    assert_eq!(g.app.state(role).await, "active");
    assert_eq!(ours(&g.fake).len(), 1);
    assert_eq!(g.fake.members(&g.group).len(), 1, "Google kept the membership past the first end");
    g.app.after(Duration::hours(2)).await;
    assert_eq!((g.app.state(role).await, g.app.state(member).await), ("expired".into(), "expired".into()));
    assert!(ours(&g.fake).is_empty() && g.fake.members(&g.group).is_empty());
}

#[tokio::test]
async fn reconciliation_removes_a_time_limited_membership_no_live_grant_needs() {
    let g = spawn().await;
    // What the bot does for every role of the provider when it builds it.
    g.provider.watch(&json!({ "type": "group_membership", "group": "prod-oncall@example.com" }));
    let in_two_hours = g.app.clock.now() + Duration::hours(2);
    // Alice was added with an expiry by hand (or by a grant elevate has since forgotten):
    // nothing of hers is live, so it is drift.
    g.fake.add_member(&g.group, "alice@example.com", Some(in_two_hours));
    // Standing access, and a time-limited membership of someone the policy does not know:
    // neither is elevate's to take.
    g.fake.add_member(&g.group, "carol@example.com", None);
    g.fake.add_member(&g.group, "dave@example.com", Some(in_two_hours));

    let report = g.app.app.service.reconcile().await.unwrap();
    assert_eq!(report.drift_revoked.len(), 1, "{report:?}");
    assert!(report.drift_revoked[0].starts_with(&format!("{}/memberships/", g.group)), "{report:?}");
    let left: Vec<String> = g.fake.members(&g.group).into_iter().map(|(m, _)| m).collect();
    assert_eq!(left, ["carol@example.com", "dave@example.com"]);
    assert!(g.app.events().await.iter().any(|e| e.kind == "grant.drift_revoked"
        && e.details["what"].as_str().is_some_and(|w| w.starts_with("alice@example.com in group"))));

    // While a grant of hers to the group is live, the membership is hers by right and stays.
    let live = active(&g.app, "oncall").await;
    let report = g.app.app.service.reconcile().await.unwrap();
    assert!(report.drift_revoked.is_empty(), "{report:?}");
    let end = g.app.request(live).await.expires_at.unwrap();
    assert!(g.fake.members(&g.group).contains(&("alice@example.com".to_string(), Some(end))));
}
