//! Identity Center account assignments against moto. moto answers every create and delete with
//! `SUCCEEDED` at once and does not refuse duplicates, so status polling (IN_PROGRESS, FAILED)
//! and conflicts are driven through the fault proxy, which rewrites moto's real answers.

mod common;

use common::proxy::{Fault, Proxy};
use common::{ACCOUNT, provider_at, spec};
use elevate_aws::{AwsClient, AwsProvider};
use elevate_core::ports::{GrantProvider, GrantSpec, Overlap, ProviderError};
use serde_json::{Value, json};

struct Ic {
    instance: String,
    permission_set: String,
}

async fn setup(c: &AwsClient, name: &str) -> Ic {
    let instances = c.json("ListInstances", &json!({})).await.unwrap();
    let instance = instances["Instances"][0]["InstanceArn"].as_str().expect("moto has an instance").to_string();
    let ps = c.json("CreatePermissionSet", &json!({ "InstanceArn": instance, "Name": name })).await.unwrap();
    let permission_set = ps["PermissionSet"]["PermissionSetArn"].as_str().unwrap().to_string();
    Ic { instance, permission_set }
}

fn target(ic: &Ic, principal: &str) -> Value {
    json!({ "type": "identity_center", "instance_arn": ic.instance, "permission_set_arn": ic.permission_set, "account_id": ACCOUNT, "principal": principal })
}

/// The assignments of the permission set in the account, as `(type, id)`.
async fn assignments(c: &AwsClient, ic: &Ic) -> Vec<(String, String)> {
    let v = c
        .json(
            "ListAccountAssignments",
            &json!({ "InstanceArn": ic.instance, "AccountId": ACCOUNT, "PermissionSetArn": ic.permission_set }),
        )
        .await
        .unwrap();
    v["AccountAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["PrincipalType"].as_str().unwrap().to_string(), a["PrincipalId"].as_str().unwrap().to_string()))
        .collect()
}

fn user_spec(request: i64, ic: &Ic, user: &str) -> GrantSpec {
    spec(request, target(ic, "user"), &[("aws_identity_center_user", user)])
}

/// Rewrites the status object under `key` in moto's JSON answer.
fn set_status(key: &'static str, status: &'static str, reason: Option<&'static str>) -> Fault {
    Fault::Rewrite(Box::new(move |body: &str| {
        let mut v: Value = serde_json::from_str(body).unwrap();
        v[key]["Status"] = json!(status);
        if let Some(r) = reason {
            v[key]["FailureReason"] = json!(r);
        }
        v.to_string()
    }))
}

async fn proxied(m: &common::Moto, tweak: impl FnOnce(&mut elevate_aws::AwsConfig)) -> (Proxy, AwsProvider) {
    let proxy = Proxy::start(&m.url).await;
    let p = provider_at(&proxy.url, m.admin_keys.clone(), tweak);
    (proxy, p)
}

#[tokio::test]
async fn an_assignment_is_created_once_and_deleted_on_revoke() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    let ic = setup(c, "ic-admin").await;
    let s = user_spec(301, &ic, "ic-user-alice");
    let handle = p.grant(&s).await.unwrap();
    assert_eq!(handle["kind"], "identity_center");
    assert_eq!(handle["principal_type"], "USER");
    assert_eq!(assignments(c, &ic).await, [("USER".to_string(), "ic-user-alice".to_string())]);

    // Retried after a timeout: still one assignment (moto itself would store a duplicate).
    p.grant(&s).await.unwrap();
    assert_eq!(assignments(c, &ic).await.len(), 1);

    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert!(assignments(c, &ic).await.is_empty());
    // Already gone (deleted by hand, or revoked twice): success.
    p.revoke(&s, Overlap::Alone).await.unwrap();
}

#[tokio::test]
async fn an_overlapping_grant_keeps_the_assignment() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    let ic = setup(c, "ic-overlap").await;
    let first = user_spec(302, &ic, "ic-user-bob");
    let second = user_spec(303, &ic, "ic-user-bob");
    p.grant(&first).await.unwrap();
    p.grant(&second).await.unwrap();
    assert_eq!(assignments(c, &ic).await.len(), 1);
    p.revoke(&first, Overlap::StillNeeded).await.unwrap();
    assert_eq!(assignments(c, &ic).await.len(), 1);
    p.revoke(&second, Overlap::Alone).await.unwrap();
    assert!(assignments(c, &ic).await.is_empty());
}

#[tokio::test]
async fn a_group_principal_comes_from_the_persons_group_key() {
    let Some(m) = common::moto() else { return };
    let p = m.provider();
    let c = p.client();
    let ic = setup(c, "ic-group").await;
    let s = spec(
        304,
        target(&ic, "group"),
        &[("aws_identity_center_group", "ic-group-sre"), ("aws_identity_center_user", "u")],
    );
    p.grant(&s).await.unwrap();
    assert_eq!(assignments(c, &ic).await, [("GROUP".to_string(), "ic-group-sre".to_string())]);
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert!(assignments(c, &ic).await.is_empty());

    let missing = spec(305, target(&ic, "user"), &[("aws_iam_user", "carol")]);
    assert!(
        matches!(p.grant(&missing).await.unwrap_err(), ProviderError::Permanent { code, message } if code == "MissingPrincipal" && message.contains("aws_identity_center_user"))
    );
}

#[tokio::test]
async fn in_progress_requests_are_polled_until_they_succeed() {
    let Some(m) = common::moto() else { return };
    let (proxy, p) = proxied(m, |_| {}).await;
    let ic = setup(p.client(), "ic-poll").await;
    let s = user_spec(306, &ic, "ic-user-dan");
    proxy.plan(Some("CreateAccountAssignment"), set_status("AccountAssignmentCreationStatus", "IN_PROGRESS", None));
    proxy.plan(
        Some("DescribeAccountAssignmentCreationStatus"),
        set_status("AccountAssignmentCreationStatus", "IN_PROGRESS", None),
    );
    p.grant(&s).await.unwrap();
    // One poll saw IN_PROGRESS (rewritten), the next moto's real SUCCEEDED.
    assert_eq!(proxy.count("DescribeAccountAssignmentCreationStatus"), 2, "{:?}", proxy.seen());

    proxy.plan(Some("DeleteAccountAssignment"), set_status("AccountAssignmentDeletionStatus", "IN_PROGRESS", None));
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert_eq!(proxy.count("DescribeAccountAssignmentDeletionStatus"), 1);
    assert!(assignments(p.client(), &ic).await.is_empty());
}

#[tokio::test]
async fn a_failed_assignment_is_a_permanent_error_with_awss_reason() {
    let Some(m) = common::moto() else { return };
    let (proxy, p) = proxied(m, |_| {}).await;
    let ic = setup(p.client(), "ic-fail").await;
    proxy.plan(Some("CreateAccountAssignment"), set_status("AccountAssignmentCreationStatus", "IN_PROGRESS", None));
    proxy.plan(
        Some("DescribeAccountAssignmentCreationStatus"),
        set_status("AccountAssignmentCreationStatus", "FAILED", Some("Received a 404 status error: No such principal")),
    );
    match p.grant(&user_spec(307, &ic, "ic-user-eve")).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "AssignmentFailed");
            assert_eq!(message, "Received a 404 status error: No such principal");
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn a_request_still_in_progress_at_the_poll_timeout_is_transient_and_the_retry_finds_it() {
    let Some(m) = common::moto() else { return };
    let (proxy, p) = proxied(m, |c| c.poll_timeout = Some("30ms".into())).await;
    let ic = setup(p.client(), "ic-slow").await;
    let s = user_spec(308, &ic, "ic-user-fay");
    proxy.plan(Some("CreateAccountAssignment"), set_status("AccountAssignmentCreationStatus", "IN_PROGRESS", None));
    for _ in 0..20 {
        proxy.plan(
            Some("DescribeAccountAssignmentCreationStatus"),
            set_status("AccountAssignmentCreationStatus", "IN_PROGRESS", None),
        );
    }
    let err = p.grant(&s).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { message, .. } if message.contains("still in progress")),
        "{err:?}"
    );
    // The scheduler's retry finds the finished assignment and creates no second one.
    p.grant(&s).await.unwrap();
    assert_eq!(proxy.count("CreateAccountAssignment"), 1);
    assert_eq!(assignments(p.client(), &ic).await.len(), 1);
}

#[tokio::test]
async fn a_conflict_is_success_once_the_assignment_exists_and_transient_before() {
    let Some(m) = common::moto() else { return };
    let (proxy, p) = proxied(m, |_| {}).await;
    let ic = setup(p.client(), "ic-conflict").await;
    let s = user_spec(309, &ic, "ic-user-gus");
    proxy.plan(
        Some("CreateAccountAssignment"),
        Fault::json_error(409, "ConflictException", "An operation on this assignment is in progress"),
    );
    let err = p.grant(&s).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { message, .. } if message.starts_with("ConflictException")),
        "{err:?}"
    );

    // The other operation landed meanwhile (created here behind elevate's back); the conflict
    // then means "already there".
    p.client()
        .json(
            "CreateAccountAssignment",
            &json!({ "InstanceArn": ic.instance, "TargetId": ACCOUNT, "TargetType": "AWS_ACCOUNT", "PermissionSetArn": ic.permission_set, "PrincipalType": "USER", "PrincipalId": "ic-user-gus" }),
        )
        .await
        .unwrap();
    p.grant(&s).await.unwrap();
    assert_eq!(assignments(p.client(), &ic).await.len(), 1);
}
