//! IAM targets against moto: inline policies with the grant window, managed policies and group
//! membership, overlapping grants, retried grants and hand-deleted grants. moto does not
//! evaluate policy conditions: these tests check the condition text and window, nothing more.

mod common;

use common::{create_group, create_user, spec, window};
use elevate_aws::{IamPrincipal, Service};
use elevate_core::ports::{GrantProvider, Overlap, ProviderError};
use serde_json::json;

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

async fn create_role(c: &elevate_aws::AwsClient, name: &str) {
    common::create_role(c, name, &format!("arn:aws:iam::{}:root", common::ACCOUNT)).await;
}

#[tokio::test]
async fn inline_policy_carries_the_grant_window_and_is_deleted_on_revoke() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_user(c, "iam-alice").await;
    let target = json!({ "type": "iam_inline_policy", "principal": "user", "actions": ["s3:GetObject", "s3:ListBucket"], "resources": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"] });
    let s = spec(201, target, &[("aws_iam_user", "iam-alice"), ("aws_iam_role", "ignored")]);
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(
        handle,
        json!({ "kind": "inline_policy", "principal": { "user": "iam-alice" }, "policy_name": "elevate-grant-elevate-201" })
    );

    let alice = IamPrincipal::User("iam-alice".into());
    let doc = c.get_inline_policy(&alice, "elevate-grant-elevate-201").await.unwrap().expect("policy exists");
    let (start, end) = window();
    assert_eq!(start.to_rfc3339(), "2026-11-24T13:05:00+00:00");
    assert_eq!(
        doc,
        json!({ "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"],
            "Condition": {
                "DateGreaterThan": { "aws:CurrentTime": "2026-11-24T13:05:00Z" },
                "DateLessThan": { "aws:CurrentTime": "2026-11-24T15:05:00Z" }
            }
        }]})
    );
    assert_eq!(end - start, chrono::Duration::hours(2));

    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert_eq!(c.get_inline_policy(&alice, "elevate-grant-elevate-201").await.unwrap(), None);
}

#[tokio::test]
async fn every_statement_of_a_full_policy_gets_the_window_on_a_role() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_role(c, "iam-oncall").await;
    let target = json!({ "type": "iam_inline_policy", "principal": "role", "statements": [
        { "Effect": "Allow", "Action": "ec2:RebootInstances", "Resource": "*", "Condition": { "StringEquals": { "aws:RequestedRegion": "eu-west-1" } } },
        { "Action": ["rds:RebootDBInstance"], "Resource": "arn:aws:rds:eu-west-1:123456789012:db:prod" }
    ]});
    let s = spec(202, target, &[("aws_iam_role", "iam-oncall")]);
    p.grant(&s).await.unwrap();
    let role = IamPrincipal::Role("iam-oncall".into());
    let doc = c.get_inline_policy(&role, "elevate-grant-elevate-202").await.unwrap().unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    for st in statements {
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Condition"]["DateGreaterThan"]["aws:CurrentTime"], "2026-11-24T13:05:00Z");
        assert_eq!(st["Condition"]["DateLessThan"]["aws:CurrentTime"], "2026-11-24T15:05:00Z");
    }
    // The role's own condition is kept beside the window.
    assert_eq!(statements[0]["Condition"]["StringEquals"]["aws:RequestedRegion"], "eu-west-1");

    // A refresh after an extension re-puts the same policy with the new end: still one policy.
    let mut extended = s.clone();
    extended.expires_at += chrono::Duration::hours(1);
    p.grant(&extended).await.unwrap();
    assert_eq!(c.inline_policies(&role).await.unwrap(), ["elevate-grant-elevate-202"]);
    let doc = c.get_inline_policy(&role, "elevate-grant-elevate-202").await.unwrap().unwrap();
    assert_eq!(doc["Statement"][1]["Condition"]["DateLessThan"]["aws:CurrentTime"], "2026-11-24T16:05:00Z");
    p.revoke(&extended, Overlap::Alone).await.unwrap();
    assert!(c.inline_policies(&role).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_retried_inline_grant_leaves_one_policy() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    create_user(p.client(), "iam-retry").await;
    let target = json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"], "resources": ["*"] });
    let s = spec(203, target, &[("aws_iam_user", "iam-retry")]);
    p.grant(&s).await.unwrap();
    p.grant(&s).await.unwrap();
    let names = p.client().inline_policies(&IamPrincipal::User("iam-retry".into())).await.unwrap();
    assert_eq!(names, ["elevate-grant-elevate-203"]);
}

#[tokio::test]
async fn managed_policy_is_attached_once_and_kept_while_an_overlapping_grant_needs_it() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_user(c, "iam-bob").await;
    let target = json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY, "principal": "user" });
    let first = spec(204, target.clone(), &[("aws_iam_user", "iam-bob")]);
    let second = spec(205, target, &[("aws_iam_user", "iam-bob")]);
    let bob = IamPrincipal::User("iam-bob".into());

    p.grant(&first).await.unwrap();
    p.grant(&first).await.unwrap(); // retried after a timeout
    p.grant(&second).await.unwrap();
    assert_eq!(c.attached_policies(&bob).await.unwrap(), [READ_ONLY]);

    // The first expires while the second is active: the attachment stays.
    p.revoke(&first, Overlap::StillNeeded).await.unwrap();
    assert_eq!(c.attached_policies(&bob).await.unwrap(), [READ_ONLY]);
    // The second expires alone: detached.
    p.revoke(&second, Overlap::Alone).await.unwrap();
    assert!(c.attached_policies(&bob).await.unwrap().is_empty());
    // Detached by hand already, or revoked twice: success.
    p.revoke(&second, Overlap::Alone).await.unwrap();
}

#[tokio::test]
async fn managed_policy_on_a_role_uses_the_handle_on_revoke() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_role(c, "iam-deploy").await;
    let target = json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY, "principal": "role" });
    let mut s = spec(206, target, &[("aws_iam_role", "iam-deploy")]);
    s.handle = Some(p.grant(&s).await.unwrap());
    let role = IamPrincipal::Role("iam-deploy".into());
    assert_eq!(c.attached_policies(&role).await.unwrap(), [READ_ONLY]);
    // The person's principals changed in the policy file since: revoke still detaches from
    // the role the grant went to.
    s.principals.clear();
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert!(c.attached_policies(&role).await.unwrap().is_empty());
}

#[tokio::test]
async fn group_membership_is_added_once_and_kept_for_overlapping_grants() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_user(c, "iam-carol").await;
    create_group(c, "iam-breakglass").await;
    let target = json!({ "type": "iam_group", "group": "iam-breakglass" });
    let first = spec(207, target.clone(), &[("aws_iam_user", "iam-carol")]);
    let second = spec(208, target, &[("aws_iam_user", "iam-carol")]);
    p.grant(&first).await.unwrap();
    p.grant(&first).await.unwrap();
    p.grant(&second).await.unwrap();
    assert_eq!(c.group_members("iam-breakglass").await.unwrap(), ["iam-carol"]);
    p.revoke(&second, Overlap::StillNeeded).await.unwrap();
    assert_eq!(c.group_members("iam-breakglass").await.unwrap(), ["iam-carol"]);
    p.revoke(&first, Overlap::Alone).await.unwrap();
    assert!(c.group_members("iam-breakglass").await.unwrap().is_empty());
    p.revoke(&first, Overlap::Alone).await.unwrap();
}

#[tokio::test]
async fn revoking_what_was_removed_by_hand_succeeds() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    create_user(c, "iam-dave").await;
    let inline = spec(
        209,
        json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"], "resources": ["*"] }),
        &[("aws_iam_user", "iam-dave")],
    );
    let managed =
        spec(210, json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY }), &[("aws_iam_user", "iam-dave")]);
    p.grant(&inline).await.unwrap();
    p.grant(&managed).await.unwrap();
    c.query(Service::Iam, "DeleteUserPolicy", &[("UserName", "iam-dave"), ("PolicyName", "elevate-grant-elevate-209")])
        .await
        .unwrap();
    c.query(Service::Iam, "DetachUserPolicy", &[("UserName", "iam-dave"), ("PolicyArn", READ_ONLY)]).await.unwrap();
    p.revoke(&inline, Overlap::Alone).await.unwrap();
    p.revoke(&managed, Overlap::Alone).await.unwrap();
    // Even the user itself gone.
    c.query(Service::Iam, "DeleteUser", &[("UserName", "iam-dave")]).await.unwrap();
    p.revoke(&inline, Overlap::Alone).await.unwrap();
    p.revoke(&managed, Overlap::Alone).await.unwrap();
}

#[tokio::test]
async fn grant_errors_are_permanent_with_awss_code_and_message() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    create_user(p.client(), "iam-erin").await;

    // The person's IAM user does not exist.
    let s =
        spec(211, json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY }), &[("aws_iam_user", "iam-nobody")]);
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "NoSuchEntity");
            assert!(message.contains("iam-nobody"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    let s = spec(
        212,
        json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"], "resources": ["*"] }),
        &[("aws_iam_user", "iam-nobody")],
    );
    assert!(matches!(p.grant(&s).await.unwrap_err(), ProviderError::Permanent { code, .. } if code == "NoSuchEntity"));

    // A policy document AWS refuses.
    let bad = json!({ "type": "iam_inline_policy", "statements": [{ "Effect": "Allow", "Action": "s3GetObject", "Resource": "*" }] });
    match p.grant(&spec(213, bad, &[("aws_iam_user", "iam-erin")])).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "MalformedPolicyDocument");
            assert!(!message.is_empty());
        }
        e => panic!("{e:?}"),
    }

    // A managed policy that does not exist.
    let s = spec(
        214,
        json!({ "type": "iam_managed_policy", "policy_arn": "arn:aws:iam::aws:policy/NoSuchPolicy" }),
        &[("aws_iam_user", "iam-erin")],
    );
    assert!(matches!(p.grant(&s).await.unwrap_err(), ProviderError::Permanent { code, .. } if code == "NoSuchEntity"));

    // The person has no principal of the kind the role asks for.
    let s = spec(
        215,
        json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY, "principal": "role" }),
        &[("aws_iam_user", "iam-erin")],
    );
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "MissingPrincipal");
            assert!(message.contains("aws_iam_role") && message.contains("alice"), "{message}");
        }
        e => panic!("{e:?}"),
    }
}
