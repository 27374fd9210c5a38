//! Google group memberships against the fake Cloud Identity API: expiry set by elevate and
//! honoured by Google, overlap through one shared membership, and memberships that are not
//! elevate's left alone.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{FakeGoogle, provider, spec, t0, with_handle};
use elevate_core::ports::{GrantProvider, Overlap, ProviderError};
use serde_json::{Value, json};

const ALICE: &str = "user:alice@example.com";

fn oncall() -> Value {
    json!({ "type": "group_membership", "group": "oncall@example.com" })
}

/// Cloud Identity keeps expiry times to the second.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

#[tokio::test]
async fn a_membership_is_added_with_the_grants_end_as_its_expiry_and_removed_at_revoke() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let group = fake.add_group("oncall@example.com");
    fake.add_member(&group, "bob@example.com", None);
    let s = spec(1, ALICE, oncall(), t0(), 1);
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(
        handle,
        json!({ "kind": "group_membership", "group": group, "member": "alice@example.com", "pre_existing": false })
    );
    let members = fake.members(&group);
    assert!(members.contains(&("alice@example.com".to_string(), Some(secs(s.expires_at)))), "{members:?}");
    assert_eq!(p.members("oncall@example.com").await.unwrap(), members, "the provider reads what the fake holds");

    p.grant(&s).await.unwrap();
    assert_eq!(fake.members(&group).len(), 2, "a retried grant adds nothing");

    let s = with_handle(s, handle);
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert_eq!(fake.members(&group), [("bob@example.com".to_string(), None)]);
    p.revoke(&s, Overlap::Alone).await.expect("revoking what is gone is success");
}

#[tokio::test]
async fn google_removes_the_membership_at_its_expiry_even_if_elevate_never_comes() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let group = fake.add_group("oncall@example.com");
    let s = spec(2, ALICE, json!({ "type": "group_membership", "group": group }), t0(), 1);
    let handle = p.grant(&s).await.unwrap();
    fake.advance(Duration::minutes(59));
    assert_eq!(fake.members(&group).len(), 1);
    fake.advance(Duration::minutes(2));
    assert!(fake.members(&group).is_empty(), "gone by Google's clock");
    p.revoke(&with_handle(s, handle), Overlap::Alone).await.expect("already gone is success");
}

#[tokio::test]
async fn overlapping_grants_share_the_membership_which_goes_with_the_last_of_them() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let group = fake.add_group("oncall@example.com");
    let short = spec(1, ALICE, oncall(), t0(), 1);
    let long = spec(2, ALICE, oncall(), t0(), 3);
    let hs = p.grant(&short).await.unwrap();
    let hl = p.grant(&long).await.unwrap();
    assert_eq!(fake.members(&group), [("alice@example.com".to_string(), Some(secs(long.expires_at)))]);
    // A shorter grant arriving later never shortens it.
    p.grant(&short).await.unwrap();
    assert_eq!(fake.members(&group)[0].1, Some(secs(long.expires_at)));

    // The long one is revoked early: the short one still needs the membership, which stays
    // as it is; the short one's revoke, the last, removes it although its expiry is the long
    // one's (a later expiry does not make it someone else's).
    let (short, long) = (with_handle(short, hs), with_handle(long, hl));
    p.revoke(&long, Overlap::StillNeeded).await.unwrap();
    assert_eq!(fake.members(&group), [("alice@example.com".to_string(), Some(secs(long.expires_at)))]);
    p.revoke(&short, Overlap::Alone).await.unwrap();
    assert!(fake.members(&group).is_empty());
}

#[tokio::test]
async fn a_standing_membership_is_not_elevates_and_stays() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let group = fake.add_group("oncall@example.com");
    fake.add_member(&group, "alice@example.com", None);
    let s = spec(3, ALICE, oncall(), t0(), 1);
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(handle["pre_existing"], true);
    assert_eq!(fake.members(&group), [("alice@example.com".to_string(), None)], "no expiry added to standing access");
    p.revoke(&with_handle(s.clone(), handle), Overlap::Alone).await.unwrap();
    // Even without the handle (a reconciled or lost one), a membership without expiry stays.
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert_eq!(fake.members(&group), [("alice@example.com".to_string(), None)]);
}

#[tokio::test]
async fn a_time_limited_membership_found_at_grant_time_is_taken_over_and_removed_at_the_end() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let group = fake.add_group("oncall@example.com");
    let theirs = secs(t0() + Duration::days(7));
    fake.add_member(&group, "alice@example.com", Some(theirs));
    let s = spec(4, ALICE, oncall(), t0(), 1);
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(fake.members(&group), [("alice@example.com".to_string(), Some(theirs))], "never shortened");
    p.revoke(&with_handle(s, handle), Overlap::Alone).await.unwrap();
    assert!(fake.members(&group).is_empty(), "standing access is a membership without an expiry");
}

#[tokio::test]
async fn an_unknown_group_is_a_permanent_error_with_googles_message() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    let e =
        p.grant(&spec(5, ALICE, json!({ "type": "group_membership", "group": "nobody@example.com" }), t0(), 1)).await;
    assert_eq!(e.unwrap_err(), ProviderError::permanent("NOT_FOUND", "Error(2028): Group not found."));
    let e = p.grant(&spec(6, "principal://iam.googleapis.com/x", oncall(), t0(), 1)).await.unwrap_err();
    assert!(matches!(&e, ProviderError::Permanent { code, .. } if code == "InvalidPrincipal"), "{e:?}");
}

#[tokio::test]
async fn an_expiry_google_refuses_is_a_permanent_error_with_its_message() {
    let fake = FakeGoogle::start().await;
    let p = provider(&fake);
    fake.add_group("oncall@example.com");
    // A window that ended already (a grant applied long after its approval, say).
    let late = spec(7, ALICE, oncall(), t0() - Duration::hours(2), 1);
    let e = p.grant(&late).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::permanent("INVALID_ARGUMENT", "Error(3005): Membership expiry time must be in the future.")
    );
}
