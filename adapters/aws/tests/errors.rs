//! Throttling, 429 with Retry-After, 5xx and timeouts, through a fault-injecting proxy in front
//! of moto: retried inside the call, then handed to the scheduler as transient; AWS's own
//! refusals are permanent and not retried.

mod common;

use common::proxy::{Fault, Proxy};
use common::{create_user, provider_at, spec};
use elevate_aws::{AwsConfig, AwsProvider, IamPrincipal};
use elevate_core::ports::{GrantProvider, GrantSpec, Overlap, ProviderError};
use serde_json::json;
use std::time::{Duration, Instant};

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

async fn setup(m: &common::Moto, user: &str, tweak: impl FnOnce(&mut AwsConfig)) -> (Proxy, AwsProvider, GrantSpec) {
    create_user(m.admin().client(), user).await;
    let proxy = Proxy::start(&m.url).await;
    let p = provider_at(&proxy.url, m.admin_keys.clone(), tweak);
    let s = spec(401, json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY }), &[("aws_iam_user", user)]);
    (proxy, p, s)
}

async fn attached(m: &common::Moto, user: &str) -> Vec<String> {
    m.admin().client().attached_policies(&IamPrincipal::User(user.into())).await.unwrap()
}

#[tokio::test]
async fn throttling_is_retried_until_it_passes() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-throttle", |_| {}).await;
    proxy.plan(Some("AttachUserPolicy"), Fault::query_error(400, "Throttling", "Rate exceeded"));
    proxy.plan(Some("AttachUserPolicy"), Fault::query_error(400, "Throttling", "Rate exceeded"));
    p.grant(&s).await.unwrap();
    assert_eq!(proxy.count("AttachUserPolicy"), 3);
    assert_eq!(attached(m, "err-throttle").await, [READ_ONLY]);
}

#[tokio::test]
async fn throttling_that_persists_becomes_transient_after_the_configured_attempts() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-throttle-long", |c| c.max_attempts = Some(3)).await;
    for _ in 0..5 {
        proxy.plan(Some("AttachUserPolicy"), Fault::query_error(400, "Throttling", "Rate exceeded"));
    }
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Transient { message, retry_after } => {
            assert!(message.contains("Throttling: Rate exceeded") && message.contains("after 3 attempts"), "{message}");
            assert_eq!(retry_after, None);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(proxy.count("AttachUserPolicy"), 3);
    assert!(attached(m, "err-throttle-long").await.is_empty());
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_it_names() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-429", |_| {}).await;
    proxy.plan(
        Some("AttachUserPolicy"),
        Fault::query_error(429, "Throttling", "Slow down").with_header("retry-after", "1"),
    );
    let started = Instant::now();
    p.grant(&s).await.unwrap();
    // The configured backoff is 1 ms: only the Retry-After explains a second's wait.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(proxy.count("AttachUserPolicy"), 2);
    assert_eq!(attached(m, "err-429").await, [READ_ONLY]);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_inline_limit_goes_to_the_scheduler_with_the_hint() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-429-long", |_| {}).await;
    proxy.plan(
        Some("AttachUserPolicy"),
        Fault::query_error(429, "Throttling", "Slow down").with_header("retry-after", "120"),
    );
    let started = Instant::now();
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Transient { retry_after, message } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)), "{message}");
        }
        e => panic!("{e:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.count("AttachUserPolicy"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_then_transient() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-5xx", |c| c.max_attempts = Some(2)).await;
    proxy.plan(Some("AttachUserPolicy"), Fault::query_error(503, "ServiceUnavailable", "Service is unavailable"));
    p.grant(&s).await.unwrap();
    assert_eq!(proxy.count("AttachUserPolicy"), 2);

    proxy.plan(
        Some("DetachUserPolicy"),
        Fault::Reply { status: 502, headers: vec![], body: "<html>Bad Gateway</html>".into() },
    );
    proxy.plan(Some("DetachUserPolicy"), Fault::query_error(500, "InternalFailure", "oops"));
    match p.revoke(&s, Overlap::Alone).await.unwrap_err() {
        ProviderError::Transient { message, .. } => {
            assert!(message.contains("InternalFailure") && message.contains("HTTP 500"), "{message}")
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(attached(m, "err-5xx").await, [READ_ONLY], "the failed revoke changed nothing");
    // The scheduler's next attempt goes through.
    p.revoke(&s, Overlap::Alone).await.unwrap();
    assert!(attached(m, "err-5xx").await.is_empty());
}

#[tokio::test]
async fn timeouts_are_retried_and_then_transient() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-timeout", |c| {
        c.timeout = Some("200ms".into());
        c.max_attempts = Some(2);
    })
    .await;
    proxy.plan(Some("AttachUserPolicy"), Fault::Delay(Duration::from_secs(2)));
    proxy.plan(Some("AttachUserPolicy"), Fault::Delay(Duration::from_secs(2)));
    let started = Instant::now();
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Transient { message, .. } => {
            assert!(message.contains("timed out"), "{message}")
        }
        e => panic!("{e:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert_eq!(proxy.count("AttachUserPolicy"), 2);

    // One slow answer, then a normal one: success.
    proxy.plan(Some("AttachUserPolicy"), Fault::Delay(Duration::from_secs(2)));
    p.grant(&s).await.unwrap();
}

#[tokio::test]
async fn identity_center_throttling_in_the_json_protocol_is_retried() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, _) = setup(m, "err-ic", |_| {}).await;
    proxy.plan(Some("ListInstances"), Fault::json_error(400, "ThrottlingException", "Rate exceeded"));
    let v = p.client().json("ListInstances", &json!({})).await.unwrap();
    assert!(v["Instances"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(proxy.count("ListInstances"), 2);
}

#[tokio::test]
async fn refusals_are_permanent_and_not_retried() {
    let Some(m) = common::moto() else { return };
    let (proxy, p, s) = setup(m, "err-refused", |_| {}).await;
    proxy.plan(
        Some("AttachUserPolicy"),
        Fault::query_error(409, "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 10"),
    );
    match p.grant(&s).await.unwrap_err() {
        ProviderError::Permanent { code, message } => {
            assert_eq!(code, "LimitExceeded");
            assert_eq!(message, "Cannot exceed quota for PoliciesPerUser: 10");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(proxy.count("AttachUserPolicy"), 1);

    // Real refusals from moto, through the proxy: a missing user, a malformed document.
    let missing = spec(
        402,
        json!({ "type": "iam_managed_policy", "policy_arn": READ_ONLY }),
        &[("aws_iam_user", "err-no-such-user")],
    );
    assert!(
        matches!(p.grant(&missing).await.unwrap_err(), ProviderError::Permanent { code, .. } if code == "NoSuchEntity")
    );
    let malformed = spec(
        403,
        json!({ "type": "iam_inline_policy", "statements": [{ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "not-an-arn" }] }),
        &[("aws_iam_user", "err-refused")],
    );
    assert!(
        matches!(p.grant(&malformed).await.unwrap_err(), ProviderError::Permanent { code, .. } if code == "MalformedPolicyDocument")
    );
    assert_eq!(proxy.count("AttachUserPolicy"), 2);
    assert_eq!(proxy.count("PutUserPolicy"), 1);
}
