//! On-call services for the tests: fakes of PagerDuty and Opsgenie, and the test policy with
//! on-call identities (`alice`: PagerDuty `PALICE1`, Opsgenie `alice@example.com`; `erin`:
//! `PERIN01`) and `[oncall.*]` sections pointing at the fakes.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::{fake_opsgenie::FakeOpsgenie, fake_pagerduty::FakePagerDuty, policy};

pub const PD_TOKEN: &str = "pd-test-token-0123456789";
pub const OG_KEY: &str = "0c7f4a3e-1111-4222-8333-944455556666";

/// Both fakes, with their schedules empty.
pub struct OnCallFakes {
    pub pd: FakePagerDuty,
    pub og: FakeOpsgenie,
}

pub async fn start() -> OnCallFakes {
    let pd = FakePagerDuty::start(PD_TOKEN).await;
    pd.add_user("PALICE1", "Alice", "alice@example.com");
    pd.add_user("PERIN01", "Erin", "erin@example.com");
    let og = FakeOpsgenie::start(OG_KEY).await;
    OnCallFakes { pd, og }
}

/// The test policy (`{WEBHOOK_URL}` left to fill), on-call identities, both services and
/// `rules`. `cache_ttl` is the services' cache.
pub fn config(f: &OnCallFakes, cache_ttl: &str, rules: &str) -> String {
    // SAFETY of set_var: the same values every time, before any reader starts.
    unsafe {
        std::env::set_var("ELEVATE_TEST_PD_TOKEN", PD_TOKEN);
        std::env::set_var("ELEVATE_TEST_OG_KEY", OG_KEY);
    }
    let text = policy::config("{WEBHOOK_URL}")
        .replacen(
            "[persons.alice]\n",
            "[persons.alice]\npagerduty_user = \"PALICE1\"\nopsgenie_user = \"alice@example.com\"\n",
            1,
        )
        .replacen("[persons.erin]\n", "[persons.erin]\npagerduty_user = \"PERIN01\"\n", 1);
    format!(
        "{text}\n[oncall.pagerduty]\napi_url = \"{}\"\ntoken_env = \"ELEVATE_TEST_PD_TOKEN\"\ncache_ttl = \"{cache_ttl}\"\n\
         timeout = \"2s\"\nretries = 2\n\n[oncall.opsgenie]\napi_url = \"{}\"\ntoken_env = \"ELEVATE_TEST_OG_KEY\"\n\
         cache_ttl = \"{cache_ttl}\"\ntimeout = \"2s\"\nretries = 2\n{rules}",
        f.pd.url, f.og.url
    )
}

/// 2026-03-02 (the test clock's first day) at `h`:00 UTC.
pub fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap()
}

/// PagerDuty: `PSCHED1` (primary) is level 1 and `PSCHED2` (secondary) level 2 of `PEP1`;
/// `POTHER` is level 1 of `PEP2`.
pub fn pagerduty_schedules(f: &OnCallFakes) {
    for (id, name) in [("PSCHED1", "Primary"), ("PSCHED2", "Secondary"), ("POTHER", "Other team")] {
        f.pd.add_schedule(id, name);
    }
    f.pd.add_policy("PEP1", &[(1, &["PSCHED1"]), (2, &["PSCHED2"])]);
    f.pd.add_policy("PEP2", &[(1, &["POTHER"])]);
}

/// The detail lines on-call rules left on a request, as the API shows them.
pub fn notes(body: &Value) -> Vec<String> {
    body["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}: {}",
                r["rule"].as_str().unwrap(),
                r["effect"].as_str().unwrap(),
                r["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}
