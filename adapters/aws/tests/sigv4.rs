//! Signing and credentials against moto with signature checking on.

mod common;

use common::proxy::Fault;
use common::{ACCOUNT, create_role, create_user, provider_at, spec};
use elevate_aws::{IamPrincipal, Service, StaticCredentials};
use elevate_core::ports::{GrantProvider, ProviderError};
use serde_json::json;

fn inline_target() -> serde_json::Value {
    json!({ "type": "iam_inline_policy", "principal": "user", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::logs/*"] })
}

#[tokio::test]
async fn correctly_signed_calls_succeed_and_a_wrong_secret_is_refused() {
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "sig-alice").await;

    let good = m.provider();
    good.grant(&spec(101, inline_target(), &[("aws_iam_user", "sig-alice")])).await.expect("signed grant");

    let wrong =
        provider_at(&m.url, StaticCredentials::new(m.admin_keys.access_key_id(), "not-the-secret", None), |_| {});
    let err = wrong.grant(&spec(102, inline_target(), &[("aws_iam_user", "sig-alice")])).await.unwrap_err();
    match &err {
        ProviderError::Permanent { code, .. } => assert_eq!(code, "SignatureDoesNotMatch", "{err}"),
        other => panic!("expected a permanent signature error, got {other:?}"),
    }
    assert!(!err.to_string().contains("not-the-secret"));
    // Only the correctly signed grant landed.
    let names = admin.client().inline_policies(&IamPrincipal::User("sig-alice".into())).await.unwrap();
    assert_eq!(names, ["elevate-grant-elevate-101"]);
}

#[tokio::test]
async fn an_unknown_access_key_is_refused() {
    let Some(m) = common::moto() else { return };
    let p = provider_at(&m.url, StaticCredentials::new("AKIANOSUCHKEY0000000", "whatever", None), |_| {});
    let err = p.client().query(Service::Iam, "ListUsers", &[]).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Permanent { code, .. } if code == "InvalidClientTokenId"), "{err:?}");
}

#[tokio::test]
async fn a_key_without_permission_gets_access_denied_with_awss_message() {
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "sig-nobody").await;
    create_user(admin.client(), "sig-target").await;
    let key = admin.client().query(Service::Iam, "CreateAccessKey", &[("UserName", "sig-nobody")]).await.unwrap();
    let keys = StaticCredentials::new(
        key.find("AccessKeyId").unwrap().text.clone(),
        key.find("SecretAccessKey").unwrap().text.clone(),
        None,
    );
    let p = provider_at(&m.url, keys, |_| {});
    let err = p.grant(&spec(103, inline_target(), &[("aws_iam_user", "sig-target")])).await.unwrap_err();
    match err {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "AccessDenied");
            assert!(message.contains("iam:PutUserPolicy"), "{message}");
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn an_assumed_role_is_used_and_its_keys_are_reused_while_fresh() {
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "sig-bob").await;
    create_role(admin.client(), "sig-elevate", &format!("arn:aws:iam::{ACCOUNT}:user/elevate-admin")).await;
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
    admin
        .client()
        .query(
            Service::Iam,
            "PutRolePolicy",
            &[("RoleName", "sig-elevate"), ("PolicyName", "all"), ("PolicyDocument", &all)],
        )
        .await
        .unwrap();

    let proxy = common::proxy::Proxy::start(&m.url).await;
    let p = provider_at(&proxy.url, m.admin_keys.clone(), |c| {
        c.assume_role_arn = Some(format!("arn:aws:iam::{ACCOUNT}:role/sig-elevate"));
        c.assume_role_session_name = Some("elevate-test".into());
    });
    p.grant(&spec(104, inline_target(), &[("aws_iam_user", "sig-bob")])).await.expect("grant as the assumed role");
    p.grant(&spec(105, inline_target(), &[("aws_iam_user", "sig-bob")])).await.expect("second grant");
    assert_eq!(proxy.count("AssumeRole"), 1, "{:?}", proxy.seen());
    assert_eq!(proxy.count("PutUserPolicy"), 2);

    // The policies were written by the assumed role's session: moto checked its token and
    // signature. A role that does not trust elevate cannot be assumed.
    create_role(admin.client(), "sig-untrusting", &format!("arn:aws:iam::{ACCOUNT}:user/someone-else")).await;
    let p = provider_at(&m.url, m.admin_keys.clone(), |c| {
        c.assume_role_arn = Some(format!("arn:aws:iam::{ACCOUNT}:role/sig-untrusting"))
    });
    let err = p.grant(&spec(106, inline_target(), &[("aws_iam_user", "sig-bob")])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Permanent { code, .. } if code == "AccessDenied"), "{err:?}");
}

#[tokio::test]
async fn an_assumed_role_refresh_that_fails_keeps_the_keys_that_have_not_expired() {
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "sig-carl").await;
    create_role(admin.client(), "sig-flaky", &format!("arn:aws:iam::{ACCOUNT}:user/elevate-admin")).await;
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
    admin
        .client()
        .query(
            Service::Iam,
            "PutRolePolicy",
            &[("RoleName", "sig-flaky"), ("PolicyName", "all"), ("PolicyDocument", &all)],
        )
        .await
        .unwrap();
    let proxy = common::proxy::Proxy::start(&m.url).await;
    let p = provider_at(&proxy.url, m.admin_keys.clone(), |c| {
        c.assume_role_arn = Some(format!("arn:aws:iam::{ACCOUNT}:role/sig-flaky"));
        c.max_attempts = Some(1);
    });
    // STS says the session ends in four minutes: inside the refresh margin, so the next call
    // asks again, and STS is down then.
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(4)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rewrite = move |body: &str| {
        let (head, rest) = body.split_once("<Expiration>").unwrap();
        let (_, tail) = rest.split_once("</Expiration>").unwrap();
        format!("{head}<Expiration>{soon}</Expiration>{tail}")
    };
    proxy.plan(Some("AssumeRole"), Fault::Rewrite(Box::new(rewrite)));
    p.grant(&spec(107, inline_target(), &[("aws_iam_user", "sig-carl")])).await.expect("grant");
    proxy.plan(Some("AssumeRole"), Fault::query_error(503, "ServiceUnavailable", "try later"));
    p.revoke(&spec(107, inline_target(), &[("aws_iam_user", "sig-carl")]), elevate_core::ports::Overlap::Alone)
        .await
        .expect("revoke on the current keys");
    assert_eq!(proxy.count("AssumeRole"), 2, "{:?}", proxy.seen());
    assert!(admin.client().inline_policies(&IamPrincipal::User("sig-carl".into())).await.unwrap().is_empty());
}

#[tokio::test]
async fn debug_output_never_shows_the_secret() {
    let keys = StaticCredentials::new("AKIAEXAMPLE123456789", "very-secret-value", Some("session-token-value".into()));
    let p = provider_at("http://127.0.0.1:1", keys, |_| {});
    let shown = format!("{p:?}");
    assert!(!shown.contains("very-secret-value") && !shown.contains("session-token-value"), "{shown}");
}
