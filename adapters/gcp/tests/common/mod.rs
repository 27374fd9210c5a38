//! Test harness: the fake Google APIs, a provider pointed at them with the TEST-ONLY
//! service-account key (whose token_uri is the fake's), and helpers to build grant specs.
#![allow(dead_code)]

pub mod fake;
mod fake_apis;

pub use fake::FakeGoogle;

use chrono::{DateTime, Duration, Utc};
use elevate_core::ports::GrantSpec;
use elevate_gcp::{Credentials, GcpConfig, GcpProvider};
use serde_json::Value;
use std::collections::BTreeMap;

/// The TEST-ONLY key (made for these tests; it grants nothing anywhere), with its token_uri
/// pointed at the fake.
pub fn key_json(fake: &FakeGoogle) -> String {
    let mut v: Value = serde_json::from_str(include_str!("TEST-ONLY-service-account-key.json")).unwrap();
    v["token_uri"] = Value::String(format!("{}/token", fake.url));
    v.to_string()
}

/// Settings that send every call to the fake, with short backoffs.
pub fn config(fake: &FakeGoogle) -> GcpConfig {
    GcpConfig {
        credentials_env: Some("ELEVATE_TEST_GCP_KEY".into()),
        resource_manager_endpoint: Some(fake.url.clone()),
        cloud_identity_endpoint: Some(fake.url.clone()),
        metadata_endpoint: Some(fake.url.clone()),
        retry_base: Some("10ms".into()),
        max_retry_wait: Some("2s".into()),
        timeout: Some("5s".into()),
        ..GcpConfig::default()
    }
}

pub fn provider(fake: &FakeGoogle) -> GcpProvider {
    GcpProvider::new(config(fake), Credentials::ServiceAccountKey(key_json(fake))).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc::now()
}

/// A grant of `target` to `member` for the hour after `start`.
pub fn spec(id: i64, member: &str, target: Value, start: DateTime<Utc>, hours: i64) -> GrantSpec {
    GrantSpec {
        grant_id: format!("elevate-{id}"),
        request: elevate_core::RequestId(id),
        role: elevate_core::RoleName::parse("prod").unwrap(),
        person: elevate_core::PersonId::parse("alice").unwrap(),
        principals: BTreeMap::from([(elevate_gcp::PRINCIPAL_KEY.to_string(), member.to_string())]),
        target,
        starts_at: start,
        expires_at: start + Duration::hours(hours),
        handle: None,
    }
}

/// The same spec with the handle its grant returned, as the engine passes it to revoke.
pub fn with_handle(mut s: GrantSpec, handle: Value) -> GrantSpec {
    s.handle = Some(handle);
    s
}
