//! elevate-oncall: the [`OnCall`] port over PagerDuty's and Opsgenie's public REST APIs.
//!
//! - PagerDuty: `GET {api_url}/oncalls` with `schedule_ids[]`, optional `escalation_policy_ids[]`
//!   and `user_ids[]`, `since`/`until` around the moment asked about, `include[]=users` when
//!   emails are needed; classic `offset`/`limit` pagination followed while `more` is true;
//!   `Authorization: Token token=…`. A read-only REST API key is enough.
//! - Opsgenie: `GET {api_url}/v2/schedules/{id}/on-calls?flat=true&date=…` per schedule, with
//!   `Authorization: GenieKey …`; `flat` resolves teams and escalations to usernames. An API
//!   integration key with read access is enough.
//!
//! Both: `429` and `5xx` are retried a few times within the call, waiting `Retry-After` (PagerDuty
//! also sends `ratelimit-reset`) when it is short, else a short backoff; anything else, or a
//! service still failing, is an [`OnCallError`] whose text names the service and the status but
//! never the token. The caller (core) then does not auto-approve, and says why.

mod opsgenie;
mod pagerduty;

pub use opsgenie::Opsgenie;
pub use pagerduty::PagerDuty;

use elevate_core::oncall::OnCallError;
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use serde_json::Value;
use std::time::Duration;
use tracing::{debug, warn};

/// How to reach one service. The token comes from the environment or a secrets file.
#[derive(Clone)]
pub struct OnCallConfig {
    pub api_url: String,
    pub token: String,
    /// The longest one lookup may take, pages and retries included.
    pub timeout: Duration,
    /// Retries within one lookup for 429/5xx/timeouts.
    pub retries: u32,
    /// Longest `Retry-After` waited for within a lookup; a longer one fails the lookup (the
    /// request then waits for a human rather than for the rate limit).
    pub max_wait: Duration,
}

impl std::fmt::Debug for OnCallConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnCallConfig")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The HTTP side both adapters share: the client, retries and error classification.
struct Http {
    client: reqwest::Client,
    cfg: OnCallConfig,
    service: &'static str,
}

impl Http {
    fn new(cfg: OnCallConfig, service: &'static str) -> Result<Self, String> {
        if !(cfg.api_url.starts_with("https://") || cfg.api_url.starts_with("http://")) {
            return Err(format!("{service} api_url `{}` must start with https://", cfg.api_url));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("elevate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Http { client, cfg, service })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_url.trim_end_matches('/'))
    }

    /// Runs a whole lookup (every page, every retry) within `timeout`: it happens while a chat
    /// command waits for its answer, which Slack wants within 3 seconds.
    async fn within<T>(
        &self,
        lookup: impl std::future::Future<Output = Result<T, OnCallError>>,
    ) -> Result<T, OnCallError> {
        match tokio::time::timeout(self.cfg.timeout, lookup).await {
            Ok(r) => r,
            Err(_) => {
                warn!(service = self.service, "on-call lookup took too long");
                Err(OnCallError(format!("{} did not answer within {:?}", self.service, self.cfg.timeout)))
            }
        }
    }

    /// Sends the request `make` builds, retrying 429, 5xx and timeouts; returns the JSON body of
    /// a 2xx answer.
    async fn get_json(&self, make: impl Fn() -> RequestBuilder) -> Result<Value, OnCallError> {
        let service = self.service;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (error, wait) = match make().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let hint = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status.is_success() {
                        debug!(service, attempt, "on-call lookup answered");
                        return Ok(body);
                    }
                    let error = OnCallError(format!("{service} answered HTTP {}{}", status.as_u16(), detail(&body)));
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(error);
                    }
                    (error, hint)
                }
                Err(e) if e.is_timeout() => {
                    (OnCallError(format!("{service} did not answer within {:?}", self.cfg.timeout)), None)
                }
                // Without the URL: it holds schedule ids only, but keep errors uniform and short.
                Err(e) => (OnCallError(format!("cannot reach {service}: {}", e.without_url())), None),
            };
            let wait = wait.unwrap_or(Duration::from_millis(200 * (1 << attempt.min(5))));
            if attempt > self.cfg.retries || wait > self.cfg.max_wait {
                warn!(service, attempt, error = %error, "on-call lookup failed");
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` (seconds or an HTTP date), else PagerDuty's `ratelimit-reset` (seconds).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(&v) {
            let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds().max(0);
            return Some(Duration::from_secs(secs as u64));
        }
    }
    header("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
}

/// The service's own words about a failure: PagerDuty `{"error": {"message"}}`, Opsgenie
/// `{"message"}`; at most 200 characters.
fn detail(body: &Value) -> String {
    let msg = body["error"]["message"].as_str().or(body["message"].as_str()).unwrap_or("");
    let msg: String = msg.chars().filter(|c| !c.is_control()).take(200).collect();
    if msg.is_empty() { String::new() } else { format!(": {msg}") }
}

/// A timestamp parsed from the service's JSON (`null` or absent: none).
fn time(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_are_read_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_debug_form_hides_the_token() {
        let cfg = OnCallConfig {
            api_url: "http://x".into(),
            token: "u+secret-token-value".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
            max_wait: Duration::from_secs(1),
        };
        assert!(!format!("{cfg:?}").contains("secret-token"));
    }

    #[test]
    fn failure_details_come_from_either_shape() {
        assert_eq!(
            detail(&serde_json::json!({"error": {"message": "Invalid Input Provided", "code": 2001}})),
            ": Invalid Input Provided"
        );
        assert_eq!(
            detail(&serde_json::json!({"message": "No schedule exists with id [x]", "took": 0.1})),
            ": No schedule exists with id [x]"
        );
        assert_eq!(detail(&Value::Null), "");
    }
}
