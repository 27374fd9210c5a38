//! `list()` and drift: inline policies with elevate's prefix are found on users and roles
//! (across pages), and the listed spec is enough for `revoke` to remove them.

mod common;

use common::{create_user, spec};
use elevate_aws::{IamPrincipal, Service};
use elevate_core::ports::{GrantProvider, Overlap};
use serde_json::json;

fn windowed_doc(end: &str) -> String {
    json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:*", "Resource": "*",
        "Condition": { "DateGreaterThan": { "aws:CurrentTime": "2026-01-01T00:00:00Z" }, "DateLessThan": { "aws:CurrentTime": end } } }] })
    .to_string()
}

#[tokio::test]
async fn policies_created_behind_elevates_back_are_listed_and_revocable() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_user(c, "list-mallory").await;
    // An inline policy with elevate's prefix, but no grant behind it (a crash, a restore, or
    // a human copying elevate's naming).
    c.query(
        Service::Iam,
        "PutUserPolicy",
        &[
            ("UserName", "list-mallory"),
            ("PolicyName", "elevate-grant-elevate-901"),
            ("PolicyDocument", &windowed_doc("2026-01-01T02:00:00Z")),
        ],
    )
    .await
    .unwrap();
    // Not elevate's: never listed.
    let plain = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }] }).to_string();
    c.query(
        Service::Iam,
        "PutUserPolicy",
        &[("UserName", "list-mallory"), ("PolicyName", "team-standing"), ("PolicyDocument", &plain)],
    )
    .await
    .unwrap();

    let listed = p.list().await.unwrap();
    let found = listed.iter().find(|l| l.grant_id == "elevate-901").expect("drift listed");
    assert!(
        found.description.contains("list-mallory") && found.description.contains("2026-01-01T02:00:00"),
        "{}",
        found.description
    );
    assert!(!listed.iter().any(|l| l.description.contains("team-standing")));
    let spec = found.spec.clone().expect("a spec revoke can use");
    assert_eq!(spec.principals.get("aws_iam_user").map(String::as_str), Some("list-mallory"));
    assert_eq!(spec.expires_at.to_rfc3339(), "2026-01-01T02:00:00+00:00");
    // The listed target is itself a valid target.
    p.validate_target(&spec.target).unwrap();

    p.revoke(&spec, Overlap::Alone).await.unwrap();
    let left = c.inline_policies(&IamPrincipal::User("list-mallory".into())).await.unwrap();
    assert_eq!(left, ["team-standing"]);
    assert!(!p.list().await.unwrap().iter().any(|l| l.grant_id == "elevate-901"));
}

#[tokio::test]
async fn grants_made_by_elevate_are_listed_with_their_window() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    create_user(p.client(), "list-nina").await;
    let s = spec(
        902,
        json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"], "resources": ["*"] }),
        &[("aws_iam_user", "list-nina")],
    );
    p.grant(&s).await.unwrap();
    let listed = p.list().await.unwrap();
    let found = listed.iter().find(|l| l.grant_id == "elevate-902").expect("listed");
    let back = found.spec.as_ref().unwrap();
    assert_eq!((back.starts_at, back.expires_at), (s.starts_at, s.expires_at));
    assert_eq!(back.request, elevate_core::RequestId(902));
    assert_eq!(
        back.target["statements"],
        json!([{ "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"] }])
    );
}

#[tokio::test]
async fn roles_past_the_first_page_are_searched() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    // moto pages ListRoles at 100, like AWS: the policy sits on the 105th role.
    for i in 0..105 {
        common::create_role(c, &format!("list-role-{i:03}"), &format!("arn:aws:iam::{}:root", common::ACCOUNT)).await;
    }
    c.query(
        Service::Iam,
        "PutRolePolicy",
        &[
            ("RoleName", "list-role-104"),
            ("PolicyName", "elevate-grant-elevate-903"),
            ("PolicyDocument", &windowed_doc("2026-01-01T03:00:00Z")),
        ],
    )
    .await
    .unwrap();
    let first_page = c.query(Service::Iam, "ListRoles", &[]).await.unwrap();
    assert_eq!(first_page.find("IsTruncated").map(|n| n.text.as_str()), Some("true"), "the test needs a second page");

    let listed = p.list().await.unwrap();
    let found = listed.iter().find(|l| l.grant_id == "elevate-903").expect("found on page two");
    let spec = found.spec.clone().unwrap();
    assert_eq!(spec.principals.get("aws_iam_role").map(String::as_str), Some("list-role-104"));
    p.revoke(&spec, Overlap::Alone).await.unwrap();
    assert!(c.inline_policies(&IamPrincipal::Role("list-role-104".into())).await.unwrap().is_empty());
}
