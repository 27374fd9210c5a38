//! Conditional role bindings against the fake Resource Manager: the lifecycle on each kind of
//! resource, someone else's change between elevate's read and write, overlap, drift and the
//! purge of bindings whose window is over.

mod common;

use chrono::Duration;
use common::{FakeGoogle, provider, spec, t0, with_handle};
use elevate_core::ports::{GrantProvider, Overlap};
use serde_json::{Value, json};

const ALICE: &str = "user:alice@example.com";

fn role_on(resource: &str) -> Value {
    json!({ "type": "iam_role", "resource": resource, "role": "roles/cloudsql.admin" })
}

/// Someone's standing binding, and a condition of their own: neither may change.
fn theirs() -> Vec<Value> {
    vec![
        json!({ "role": "roles/owner", "members": ["user:boss@example.com", "group:admins@example.com"] }),
        json!({ "role": "roles/storage.objectViewer", "members": ["group:eng@example.com"], "condition": {
            "title": "business hours", "description": "weekdays only",
            "expression": "request.time.getDayOfWeek(\"Europe/Berlin\") < 5" } }),
    ]
}

#[tokio::test]
async fn a_role_on_a_project_folder_or_organization_is_a_binding_that_ends_itself() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    for (i, resource) in ["projects/prod-1", "folders/123456", "organizations/987654"].into_iter().enumerate() {
        fake.add_resource(resource, theirs());
        let s = spec(40 + i as i64, ALICE, role_on(resource), t0(), 1);
        let handle = p.grant(&s).await.unwrap();
        assert_eq!(handle["kind"], "iam_binding");

        let bindings = fake.bindings(resource);
        assert_eq!(bindings[..2], theirs()[..], "other bindings and conditions kept verbatim");
        let ours = &bindings[2];
        assert_eq!(ours["role"], "roles/cloudsql.admin");
        assert_eq!(ours["members"], json!([ALICE]));
        assert_eq!(ours["condition"]["title"], format!("elevate-grant-elevate-{}", 40 + i));
        let end = s.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(ours["condition"]["expression"], format!("request.time < timestamp(\"{end}\")"));
        assert!(ours["condition"]["description"].as_str().unwrap().contains(&s.grant_id));

        // Idempotent: a retried grant writes nothing.
        let writes = fake.statuses(&format!("{resource}:setIamPolicy")).len();
        p.grant(&s).await.unwrap();
        assert_eq!(fake.statuses(&format!("{resource}:setIamPolicy")).len(), writes);
        assert_eq!(fake.bindings(resource).len(), 3);

        let s = with_handle(s, handle);
        p.revoke(&s, Overlap::Alone).await.unwrap();
        assert_eq!(fake.bindings(resource), theirs(), "only elevate's binding went");
        p.revoke(&s, Overlap::Alone).await.expect("revoking what is gone is success");
    }
}

#[tokio::test]
async fn an_extension_moves_the_window_of_the_same_binding() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    fake.add_resource("projects/prod-1", vec![]);
    let s = spec(7, ALICE, role_on("projects/prod-1"), t0(), 1);
    p.grant(&s).await.unwrap();
    let mut longer = s.clone();
    longer.expires_at = s.expires_at + Duration::hours(2);
    p.grant(&longer).await.unwrap();
    let bindings = fake.bindings("projects/prod-1");
    assert_eq!(bindings.len(), 1);
    let end = longer.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(bindings[0]["condition"]["expression"].as_str().unwrap().contains(&end));
}

#[tokio::test]
async fn a_change_made_between_elevates_read_and_write_is_kept() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    fake.add_resource("projects/prod-1", theirs());
    let outside = json!({ "role": "roles/storage.admin", "members": ["user:carol@example.com"] });
    fake.change_before_next_write("projects/prod-1", outside.clone());
    let s = spec(8, ALICE, role_on("projects/prod-1"), t0(), 1);
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(fake.statuses("projects/prod-1:setIamPolicy"), [409, 200], "stale etag refused, then redone");
    let bindings = fake.bindings("projects/prod-1");
    assert!(bindings.contains(&outside), "{bindings:?}");
    assert_eq!(bindings.len(), 4);

    // And on the way out too.
    let other = json!({ "role": "roles/logging.viewer", "members": ["user:dave@example.com"] });
    fake.change_before_next_write("projects/prod-1", other.clone());
    p.revoke(&with_handle(s, handle), Overlap::Alone).await.unwrap();
    let bindings = fake.bindings("projects/prod-1");
    assert!(bindings.contains(&outside) && bindings.contains(&other), "{bindings:?}");
    assert!(bindings.iter().all(|b| elevate_gcp::target::grant_of(b).is_none()));
}

#[tokio::test]
async fn overlapping_grants_have_a_binding_each_and_revoking_one_leaves_the_other() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    fake.add_resource("projects/prod-1", vec![]);
    let short = spec(1, ALICE, role_on("projects/prod-1"), t0(), 1);
    let long = spec(2, ALICE, role_on("projects/prod-1"), t0(), 3);
    let hs = p.grant(&short).await.unwrap();
    let hl = p.grant(&long).await.unwrap();
    assert_eq!(fake.bindings("projects/prod-1").len(), 2);
    let long = with_handle(long, hl);
    p.revoke(&with_handle(short, hs), Overlap::StillNeeded).await.unwrap();
    let left = fake.bindings("projects/prod-1");
    assert_eq!(left.len(), 1);
    assert_eq!(elevate_gcp::target::grant_of(&left[0]), Some("elevate-2"), "the long grant still gives the role");
    p.revoke(&long, Overlap::Alone).await.unwrap();
    assert!(fake.bindings("projects/prod-1").is_empty());
}

#[tokio::test]
async fn list_finds_elevates_bindings_and_a_drifted_one_can_be_removed_from_its_listing() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let end = (t0() + Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let drifted = json!({ "role": "roles/cloudsql.admin", "members": [ALICE], "condition": {
        "title": "elevate-grant-elevate-424242", "expression": format!("request.time < timestamp(\"{end}\")") } });
    let mut bindings = theirs();
    bindings.push(drifted);
    fake.add_resource("projects/prod-2", bindings);
    p.watch(&role_on("projects/prod-2"));
    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].grant_id, "elevate-424242");
    assert!(listed[0].description.contains("roles/cloudsql.admin on projects/prod-2"), "{}", listed[0].description);
    p.revoke(listed[0].spec.as_ref().unwrap(), Overlap::Alone).await.unwrap();
    assert_eq!(fake.bindings("projects/prod-2"), theirs());
    assert!(p.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_bindings_left_in_the_policy_are_purged_and_not_listed() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let past = (t0() - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let future = (t0() + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let b = |title: &str, end: &str| {
        json!({ "role": "roles/bigquery.admin", "members": [ALICE], "condition": {
            "title": title, "expression": format!("request.time < timestamp(\"{end}\")") } })
    };
    let someone_elses_expired = b("temporary access for the audit", &past);
    fake.add_resource(
        "folders/42",
        vec![b("elevate-grant-elevate-5", &past), b("elevate-grant-elevate-6", &future), someone_elses_expired.clone()],
    );
    p.watch(&json!({ "type": "iam_role", "resource": "folders/42", "role": "roles/bigquery.admin" }));
    let listed = p.list().await.unwrap();
    assert_eq!(listed.iter().map(|l| l.grant_id.as_str()).collect::<Vec<_>>(), ["elevate-6"]);
    let left = fake.bindings("folders/42");
    assert_eq!(
        left,
        vec![b("elevate-grant-elevate-6", &future), someone_elses_expired],
        "only elevate's expired binding purged"
    );

    // A grant's write purges too, in the same setIamPolicy.
    fake.add_resource("projects/p3", vec![b("elevate-grant-elevate-9", &past)]);
    p.grant(&spec(10, ALICE, role_on("projects/p3"), t0(), 1)).await.unwrap();
    let left = fake.bindings("projects/p3");
    assert_eq!(left.len(), 1);
    assert_eq!(elevate_gcp::target::grant_of(&left[0]), Some("elevate-10"));
}

#[tokio::test]
async fn a_policy_that_keeps_changing_is_a_transient_failure_that_overwrote_nothing() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    fake.add_resource("projects/busy", vec![]);
    // Every one of elevate's five rounds meets a fresh outside change.
    for n in 0..5 {
        fake.change_before_next_write(
            "projects/busy",
            json!({ "role": "roles/logging.viewer", "members": [format!("user:u{n}@example.com")] }),
        );
    }
    let s = spec(11, ALICE, role_on("projects/busy"), t0(), 1);
    let e = p.grant(&s).await.unwrap_err();
    assert!(matches!(e, elevate_core::ports::ProviderError::Transient { .. }), "{e:?}");
    assert!(e.to_string().contains("kept changing"), "{e}");
    assert_eq!(fake.statuses("projects/busy:setIamPolicy"), [409; 5]);
    let bindings = fake.bindings("projects/busy");
    assert_eq!(bindings.len(), 5, "every outside change kept: {bindings:?}");
    assert!(bindings.iter().all(|b| b["role"] == "roles/logging.viewer"));
    // The scheduler's next attempt goes through.
    p.grant(&s).await.unwrap();
    assert_eq!(fake.bindings("projects/busy").len(), 6);
}
