//! Who elevate is (service-account key, metadata server, external account), token caching and
//! refresh, and how Google's failures are classed: 429 and 5xx retried, 403/404/400 permanent
//! with Google's message, secrets in no message.

mod common;

use chrono::Duration;
use common::fake::{Fault, SUBJECT_TOKEN};
use common::{FakeGoogle, config, key_json, provider, spec, t0};
use elevate_core::ports::{GrantProvider, ProviderError};
use elevate_gcp::{AuthKind, Credentials, GcpProvider};
use serde_json::{Value, json};

const ALICE: &str = "user:alice@example.com";

fn prod() -> Value {
    json!({ "type": "iam_role", "resource": "projects/prod-1", "role": "roles/logging.viewer" })
}

async fn setup() -> (FakeGoogle, GcpProvider) {
    let fake = FakeGoogle::start().await;
    fake.add_resource("projects/prod-1", vec![]);
    let p = provider(&fake);
    (fake, p)
}

#[tokio::test]
async fn the_token_is_fetched_once_with_a_signed_grant_and_again_when_google_stops_taking_it() {
    let (fake, p) = setup().await;
    for id in 1..=3 {
        p.grant(&spec(id, ALICE, prod(), t0(), 1)).await.unwrap();
    }
    assert_eq!(fake.tokens_issued(), 1, "cached across calls");
    assert!(fake.refused_grants().is_empty(), "the JWT's signature checked out: {:?}", fake.refused_grants());

    // By Google's clock the token is over (elevate's cache thought it had time left).
    fake.advance(Duration::minutes(61));
    p.grant(&spec(4, ALICE, prod(), t0() + Duration::minutes(61), 1)).await.unwrap();
    assert_eq!(fake.tokens_issued(), 2, "a new grant for a new token");
    let unauthorised = fake.calls().iter().filter(|c| c.status == 401).count();
    assert_eq!(unauthorised, 1, "one refused call, then the new token");
    assert_eq!(fake.bindings("projects/prod-1").len(), 4);
}

#[tokio::test]
async fn a_token_close_to_its_end_is_replaced_before_it_is_used() {
    let (fake, p) = setup().await;
    // 15 s left is inside the refresh margin: every call fetches a fresh token rather than
    // send one that may die in flight.
    fake.set_token_lifetime(15);
    p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap();
    p.grant(&spec(2, ALICE, prod(), t0(), 1)).await.unwrap();
    let api_calls = fake.calls().iter().filter(|c| c.path != "/token").count();
    assert_eq!(api_calls, 4, "getIamPolicy and setIamPolicy for each grant");
    assert_eq!(fake.tokens_issued(), 4, "a fresh token for each call");
    assert!(fake.calls().iter().all(|c| c.status != 401), "no call went out with a dying token");
    // An ordinary hour-long token is reused.
    fake.set_token_lifetime(3600);
    p.grant(&spec(3, ALICE, prod(), t0(), 1)).await.unwrap();
    p.grant(&spec(4, ALICE, prod(), t0(), 1)).await.unwrap();
    assert_eq!(fake.tokens_issued(), 5, "one more, for both grants");
}

#[tokio::test]
async fn a_key_google_does_not_accept_fails_without_showing_the_key() {
    let fake = FakeGoogle::start().await;
    fake.add_resource("projects/prod-1", vec![]);
    let mut key: Value = serde_json::from_str(&key_json(&fake)).unwrap();
    key["client_email"] = json!("someone-else@elevate-test.iam.gserviceaccount.com");
    let p = GcpProvider::new(config(&fake), Credentials::ServiceAccountKey(key.to_string())).unwrap();
    let e = p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap_err();
    assert!(matches!(e, ProviderError::Transient { .. }), "{e:?}");
    assert!(e.to_string().contains("access token"), "{e}");
    assert!(!fake.refused_grants().is_empty());
    assert!(fake.calls().iter().all(|c| c.path == "/token"), "no API call without a token");
    for shown in [e.to_string(), format!("{p:?}"), format!("{:?}", Credentials::ServiceAccountKey(key.to_string()))] {
        assert!(!shown.contains("PRIVATE KEY") && !shown.contains("MII"), "{shown}");
    }
}

#[tokio::test]
async fn a_malformed_key_is_refused_when_the_provider_is_built() {
    let fake = FakeGoogle::start().await;
    let e = GcpProvider::new(config(&fake), Credentials::ServiceAccountKey("{not json".into())).unwrap_err();
    assert!(e.contains("not JSON") && !e.contains("{not"), "{e}");
    let e =
        GcpProvider::new(config(&fake), Credentials::ServiceAccountKey(json!({"type": "service_account"}).to_string()))
            .unwrap_err();
    assert!(e.contains("client_email"), "{e}");
}

#[tokio::test]
async fn on_google_cloud_the_metadata_server_gives_the_token() {
    let fake = FakeGoogle::start().await;
    fake.add_resource("projects/prod-1", vec![]);
    let mut cfg = config(&fake);
    cfg.auth = Some(AuthKind::MetadataServer);
    cfg.credentials_env = None;
    let p = GcpProvider::new(cfg, Credentials::MetadataServer).unwrap();
    p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap();
    assert!(fake.metadata_tokens() >= 1);
    assert_eq!(fake.tokens_issued(), 0, "no key involved");
    assert_eq!(fake.bindings("projects/prod-1").len(), 1);
}

#[tokio::test]
async fn an_external_account_exchanges_its_subject_token_at_the_security_token_service() {
    let fake = FakeGoogle::start().await;
    fake.add_resource("projects/prod-1", vec![]);
    let token_file = std::env::temp_dir().join(format!("elevate-gcp-subject-{}", std::process::id()));
    std::fs::write(&token_file, SUBJECT_TOKEN).unwrap();
    let external = json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/gh",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", fake.url),
        "credential_source": { "file": token_file.to_string_lossy() },
    });
    let mut cfg = config(&fake);
    cfg.auth = Some(AuthKind::ExternalAccount);
    let p = GcpProvider::new(cfg, Credentials::ExternalAccount(external.to_string())).unwrap();
    let r = p.grant(&spec(1, ALICE, prod(), t0(), 1)).await;
    std::fs::remove_file(&token_file).ok();
    r.unwrap();
    assert_eq!(fake.sts_exchanges(), 1);
    assert_eq!(fake.bindings("projects/prod-1").len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_5xx_are_retried() {
    let (fake, p) = setup().await;
    fake.fail_next([Fault::Status(429, Some(1)), Fault::Status(503, None), Fault::Status(500, None)]);
    p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap();
    assert_eq!(fake.statuses("projects/prod-1:getIamPolicy"), [429, 503, 500, 200]);
    assert_eq!(fake.bindings("projects/prod-1").len(), 1);
}

#[tokio::test]
async fn failures_that_outlast_the_attempts_or_ask_for_a_long_wait_go_back_to_the_scheduler() {
    let (fake, p) = setup().await;
    fake.fail_next(std::iter::repeat_n(Fault::Status(503, None), 4));
    let e = p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap_err();
    assert!(matches!(&e, ProviderError::Transient { message, .. } if message.contains("after 4 attempts")), "{e:?}");

    fake.fail_next([Fault::Status(429, Some(120))]);
    let e = p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap_err();
    match e {
        ProviderError::Transient { retry_after, .. } => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(120)))
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.bindings("projects/prod-1").is_empty());
    p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.expect("the scheduler's next attempt");
}

#[tokio::test]
async fn permission_denied_and_missing_resources_are_permanent_with_googles_message() {
    let (fake, p) = setup().await;
    let msg = "Policy update access denied.";
    fake.fail_next([Fault::Denied(msg.into())]);
    let e = p.grant(&spec(1, ALICE, prod(), t0(), 1)).await.unwrap_err();
    assert_eq!(e, ProviderError::permanent("PERMISSION_DENIED", msg));
    assert_eq!(e.to_string(), format!("PERMISSION_DENIED: {msg}"), "what the requester reads");

    let gone = json!({ "type": "iam_role", "resource": "projects/deleted-1", "role": "roles/logging.viewer" });
    let e = p.grant(&spec(2, ALICE, gone, t0(), 1)).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Permanent { code, message } if code == "PERMISSION_DENIED" && message.contains("projects/deleted-1")),
        "{e:?}"
    );

    let bad = json!({ "type": "iam_role", "resource": "projects/prod-1", "role": "roles/viewer" });
    let e = p.grant(&spec(3, ALICE, bad, t0(), 1)).await.unwrap_err();
    assert!(matches!(&e, ProviderError::Permanent { code, .. } if code == "InvalidTarget"), "{e:?}");
    let mut nobody = spec(4, ALICE, prod(), t0(), 1);
    nobody.principals.clear();
    let e = p.grant(&nobody).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Permanent { code, message } if code == "NoPrincipal" && message.contains("gcp_principal")),
        "{e:?}"
    );
    assert!(fake.bindings("projects/prod-1").is_empty());
}
