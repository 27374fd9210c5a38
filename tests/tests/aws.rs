//! The AWS provider through the whole engine (request → approve → grant → expire → revoke)
//! against the moto emulator with SigV4 checking on. moto does not evaluate policy conditions:
//! the inline policy's window is checked as text against the grant's times, nothing more.

#[path = "../../adapters/aws/tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use chrono::Duration;
use common::{create_group, create_user};
use elevate_aws::{AwsClient, AwsProvider, IamPrincipal};
use elevate_tests::{TestApp, policy::sha};
use serde_json::{Value, json};
use std::sync::Arc;

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

struct Ic {
    instance: String,
    permission_set: String,
}

async fn identity_center(c: &AwsClient, name: &str) -> Ic {
    let instances = c.json("ListInstances", &json!({})).await.unwrap();
    let instance = instances["Instances"][0]["InstanceArn"].as_str().expect("moto has an instance").to_string();
    let ps = c.json("CreatePermissionSet", &json!({ "InstanceArn": instance, "Name": name })).await.unwrap();
    Ic { instance, permission_set: ps["PermissionSet"]["PermissionSetArn"].as_str().unwrap().to_string() }
}

fn config(moto: &str, s: &str, ic: &Ic) -> String {
    format!(
        r#"
[providers.aws]
type = "aws"
region = "us-east-1"
endpoint = "{moto}"

[persons.alice.principals]
aws_iam_user = "alice-{s}"
aws_identity_center_user = "idc-alice-{s}"
[persons.bob]

[groups.engineers]
members = ["alice", "bob"]
[groups.approvers]
members = ["bob"]

[roles.inline]
provider = "aws"
target = {{ type = "iam_inline_policy", principal = "user", actions = ["s3:GetObject"], resources = ["arn:aws:s3:::logs/*"] }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]
breakglass_groups = ["engineers"]

[roles.readonly]
provider = "aws"
target = {{ type = "iam_managed_policy", principal = "user", policy_arn = "{READ_ONLY}" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.readonly-long]
provider = "aws"
target = {{ type = "iam_managed_policy", principal = "user", policy_arn = "{READ_ONLY}" }}
default_duration = "3h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.ops]
provider = "aws"
target = {{ type = "iam_group", group = "ops-{s}" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.sso]
provider = "aws"
target = {{ type = "identity_center", instance_arn = "{instance}", permission_set_arn = "{ps}", account_id = "{account}", principal = "user" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[tokens.alice]
person = "alice"
sha256 = "{alice}"
[tokens.bob]
person = "bob"
sha256 = "{bob}"
"#,
        instance = ic.instance,
        ps = ic.permission_set,
        account = common::ACCOUNT,
        alice = sha("token-alice"),
        bob = sha("token-bob"),
    )
}

/// A test app whose `aws` provider talks to moto with elevate's (emulated) keys, and a client
/// for looking at the emulated account.
async fn spawn() -> Option<(TestApp, AwsProvider, String)> {
    let m = common::moto()?;
    let s = format!("{:08x}", rand::random::<u32>());
    let admin = m.provider();
    let c = admin.client();
    create_user(c, &format!("alice-{s}")).await;
    create_group(c, &format!("ops-{s}")).await;
    let ic = identity_center(c, &format!("ps-{s}")).await;
    let app = TestApp::builder().config(&config(&m.url, &s, &ic)).provider("aws", Arc::new(m.provider())).spawn().await;
    Some((app, admin, s))
}

/// The instance and permission set the `sso` role names.
fn identity_center_of(app: &TestApp) -> Ic {
    let role = &app.app.service.policy().roles[&elevate_core::RoleName::parse("sso").unwrap()];
    let t = &role.target;
    Ic {
        instance: t["instance_arn"].as_str().unwrap().to_string(),
        permission_set: t["permission_set_arn"].as_str().unwrap().to_string(),
    }
}

async fn active(app: &TestApp, role: &str) -> i64 {
    let id = app.alice().request(role, "", "investigating INC-7").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "active", "{:?}", app.request(id).await.note);
    id
}

#[tokio::test]
async fn an_inline_policy_carries_the_grant_window_and_goes_at_expiry() {
    let Some((app, admin, s)) = spawn().await else { return };
    let id = active(&app, "inline").await;
    let r = app.request(id).await;
    let user = IamPrincipal::User(format!("alice-{s}"));
    let name = format!("elevate-grant-elevate-{id}");
    let doc = admin.client().get_inline_policy(&user, &name).await.unwrap().expect("policy applied");
    let cond = &doc["Statement"][0]["Condition"];
    let fmt = |t: chrono::DateTime<chrono::Utc>| Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    assert_eq!(cond["DateGreaterThan"]["aws:CurrentTime"], fmt(r.granted_at.unwrap()));
    assert_eq!(cond["DateLessThan"]["aws:CurrentTime"], fmt(r.expires_at.unwrap()));
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    assert_eq!(admin.client().get_inline_policy(&user, &name).await.unwrap(), None);
}

#[tokio::test]
async fn a_managed_policy_stays_attached_while_an_overlapping_grant_needs_it() {
    let Some((app, admin, s)) = spawn().await else { return };
    let user = IamPrincipal::User(format!("alice-{s}"));
    let short = active(&app, "readonly").await;
    let long = active(&app, "readonly-long").await;
    assert_eq!(admin.client().attached_policies(&user).await.unwrap(), [READ_ONLY]);
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(short).await, "expired");
    assert_eq!(admin.client().attached_policies(&user).await.unwrap(), [READ_ONLY], "still needed by {long}");
    app.after(Duration::hours(2)).await;
    assert_eq!(app.state(long).await, "expired");
    assert!(admin.client().attached_policies(&user).await.unwrap().is_empty());
}

#[tokio::test]
async fn group_membership_is_added_and_removed() {
    let Some((app, admin, s)) = spawn().await else { return };
    let id = active(&app, "ops").await;
    assert_eq!(admin.client().group_members(&format!("ops-{s}")).await.unwrap(), [format!("alice-{s}")]);
    app.alice().release(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "released");
    assert!(admin.client().group_members(&format!("ops-{s}")).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_identity_center_assignment_is_created_and_deleted() {
    let Some((app, admin, s)) = spawn().await else { return };
    let id = active(&app, "sso").await;
    let ic = identity_center_of(&app);
    let a = elevate_aws::Assignment {
        instance_arn: ic.instance,
        permission_set_arn: ic.permission_set,
        account_id: common::ACCOUNT.into(),
        principal_type: "USER".into(),
        principal_id: format!("idc-alice-{s}"),
    };
    assert!(admin.client().assignment_exists(&a).await.unwrap());
    app.bob().revoke(id, "incident over").await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "revoked");
    assert!(!admin.client().assignment_exists(&a).await.unwrap());
}

#[tokio::test]
async fn a_missing_iam_user_fails_the_grant_with_awss_words() {
    let Some((app, admin, s)) = spawn().await else { return };
    admin
        .client()
        .query(elevate_aws::Service::Iam, "DeleteUser", &[("UserName", &format!("alice-{s}"))])
        .await
        .unwrap();
    let id = app.alice().request("inline", "1h", "INC-8").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "grant_failed");
    assert!(r.note.as_deref().unwrap_or("").starts_with("NoSuchEntity"), "{:?}", r.note);
}

#[tokio::test]
async fn reconciliation_removes_an_elevate_policy_made_behind_elevates_back() {
    let Some((app, admin, s)) = spawn().await else { return };
    let user = IamPrincipal::User(format!("alice-{s}"));
    let doc =
        json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*" }] });
    admin.client().put_inline_policy(&user, "elevate-grant-elevate-424242", &doc).await.unwrap();
    let report = app.app.service.reconcile().await.unwrap();
    assert!(report.drift_revoked.contains(&"elevate-424242".to_string()), "{report:?}");
    assert_eq!(admin.client().get_inline_policy(&user, "elevate-grant-elevate-424242").await.unwrap(), None);
    assert!(
        app.events().await.iter().any(|e| e.kind == "grant.drift_revoked" && e.details["grant_id"] == "elevate-424242")
    );
}

#[tokio::test]
async fn a_drill_against_aws_revokes_itself_and_the_policy_is_gone() {
    let Some((app, admin, s)) = spawn().await else { return };
    let id = app
        .alice()
        .call(reqwest::Method::POST, "/api/v1/drills", Some(json!({ "role": "inline", "hold": "1m" })))
        .await
        .id();
    app.run_due().await;
    let user = IamPrincipal::User(format!("alice-{s}"));
    let name = format!("elevate-grant-elevate-{id}");
    assert!(admin.client().get_inline_policy(&user, &name).await.unwrap().is_some());
    let during = app.alice().call(reqwest::Method::GET, &format!("/api/v1/drills/{id}"), None).await.ok();
    assert_eq!(during["listed_now"], true, "AWS lists elevate's inline policies");
    app.after(Duration::minutes(1)).await;
    let after = app.alice().call(reqwest::Method::GET, &format!("/api/v1/drills/{id}"), None).await.ok();
    assert_eq!((after["state"].as_str(), after["removed"].as_bool()), (Some("expired"), Some(true)));
    assert_eq!(admin.client().get_inline_policy(&user, &name).await.unwrap(), None);
}
