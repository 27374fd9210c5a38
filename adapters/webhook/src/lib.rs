//! elevate-webhook: a `GrantProvider` that hands each grant, revoke and list to an HTTP receiver
//! you run (a small service that knows how to change access in your system).
//!
//! Every call is a `POST` of JSON to the configured URL with:
//! - `X-Elevate-Timestamp`: Unix seconds when the call was signed;
//! - `X-Elevate-Signature`: `v1=` + hex HMAC-SHA256 over `"{timestamp}.{body}"` with the shared
//!   secret (receivers should reject timestamps more than 5 minutes old);
//! - `Idempotency-Key`: `{grant_id}:{action}`; calls are idempotent on the grant id anyway.
//!
//! Responses: 2xx is success (for `grant`, the JSON body is kept as the grant's handle; for
//! `list`, `{"grants": [{"grant_id": "elevate-41", "description": "…"}]}`); 404 on `revoke`
//! means already gone, which is success; 429 and 5xx are retried, honouring `Retry-After`;
//! any other 4xx is a permanent failure whose message (`error` or `message` field, or the body)
//! is shown to the requester.

use async_trait::async_trait;
use elevate_core::ports::{GrantProvider, GrantSpec, ListedGrant, Overlap, ProviderError};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;
use tracing::{debug, warn};

/// Header names, documented in the README.
pub const TIMESTAMP_HEADER: &str = "X-Elevate-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Elevate-Signature";

/// How to reach the receiver. The secret comes from the environment or a secrets file, never
/// from the config file itself.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    pub timeout: Duration,
    /// Retries within one call for 429/5xx/timeouts before handing the failure to the
    /// scheduler's own (longer) backoff.
    pub retries: u32,
    /// Longest `Retry-After` honoured inside a call; longer hints go to the scheduler.
    pub max_inline_wait: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

pub struct WebhookProvider {
    cfg: WebhookConfig,
    http: reqwest::Client,
}

/// Signs `body` at `timestamp` with `secret`: hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature as a receiver would (constant time), for receivers written in Rust and
/// for tests.
pub fn verify(secret: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hexsig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(raw) = hex::decode(hexsig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&raw).is_ok()
}

#[derive(Serialize)]
struct Call<'a> {
    action: &'a str,
    #[serde(flatten)]
    grant: Option<&'a GrantSpec>,
    /// On revoke only: whether another live grant of the same person and target still needs
    /// the same access, so that the receiver keeps what is shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    still_needed: Option<bool>,
}

#[derive(Deserialize)]
struct ListResponse {
    grants: Vec<ListedItem>,
}

#[derive(Deserialize)]
struct ListedItem {
    grant_id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    spec: Option<Value>,
}

impl WebhookProvider {
    pub fn new(cfg: WebhookConfig) -> Result<Self, String> {
        if !(cfg.url.starts_with("https://") || cfg.url.starts_with("http://")) {
            return Err(format!(
                "webhook url `{}` must start with https:// (or http:// for a local receiver)",
                cfg.url
            ));
        }
        if cfg.secret.len() < 16 {
            return Err("the webhook secret must be at least 16 characters".into());
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("elevate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WebhookProvider { cfg, http })
    }

    /// One logical call, with inline retries for transient failures.
    async fn call(
        &self,
        action: &str,
        grant: Option<&GrantSpec>,
        overlap: Option<Overlap>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        let body = serde_json::to_vec(&Call { action, grant, still_needed: overlap.map(Overlap::still_needed) })
            .map_err(|e| ProviderError::permanent("Encode", e.to_string()))?;
        let key = format!("{}:{action}", grant.map(|g| g.grant_id.as_str()).unwrap_or("all"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ts = chrono::Utc::now().timestamp();
            let res = self
                .http
                .post(&self.cfg.url)
                .header("Content-Type", "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(&self.cfg.secret, ts, &body))
                .header("Idempotency-Key", &key)
                .body(body.clone())
                .send()
                .await;
            let failure = match res {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let value: Value =
                        serde_json::from_str(&text).unwrap_or(if text.is_empty() { Value::Null } else { json!(text) });
                    if status.is_success() || (action == "revoke" && status == StatusCode::NOT_FOUND) {
                        debug!(action, status = status.as_u16(), "webhook call done");
                        return Ok((status, value));
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        ProviderError::Transient {
                            message: format!("receiver answered {} {}", status.as_u16(), short(&message_of(&value))),
                            retry_after,
                        }
                    } else {
                        return Err(ProviderError::permanent(
                            format!("HTTP {}", status.as_u16()),
                            short(&message_of(&value)),
                        ));
                    }
                }
                Err(e) if e.is_timeout() => {
                    ProviderError::transient(format!("receiver did not answer within {:?}", self.cfg.timeout))
                }
                // Without the URL: it may carry a token in its query, and this text reaches the audit feed.
                Err(e) => ProviderError::transient(format!(
                    "cannot reach the receiver: {}",
                    short(&e.without_url().to_string())
                )),
            };
            let ProviderError::Transient { retry_after, .. } = &failure else {
                return Err(failure);
            };
            let wait = retry_after.unwrap_or(Duration::from_millis(250 * (1 << attempt.min(6))));
            if attempt > self.cfg.retries || wait > self.cfg.max_inline_wait {
                warn!(action, attempt, error = %failure, "webhook call failed");
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds().max(0);
    Some(Duration::from_secs(secs as u64))
}

fn message_of(v: &Value) -> String {
    for k in ["error", "message"] {
        if let Some(s) = v.get(k).and_then(|m| m.as_str()) {
            return s.to_string();
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "no details".into(),
        other => other.to_string(),
    }
}

fn short(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(500).collect();
    s
}

#[async_trait]
impl GrantProvider for WebhookProvider {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn validate_target(&self, target: &Value) -> Result<(), String> {
        if target.is_object() || target.is_null() { Ok(()) } else { Err("a webhook target must be a table".into()) }
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        self.call("grant", Some(spec), None).await.map(|(_, v)| v)
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        self.call("revoke", Some(spec), Some(overlap)).await.map(|_| ())
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        let (_, v) = self.call("list", None, None).await?;
        let list: ListResponse = serde_json::from_value(v).map_err(|e| {
            ProviderError::permanent("BadListResponse", format!("list answer is not {{\"grants\": […]}}: {e}"))
        })?;
        Ok(list
            .grants
            .into_iter()
            .map(|g| ListedGrant {
                description: g.description.unwrap_or_else(|| g.grant_id.clone()),
                spec: g
                    .spec
                    .and_then(|s| serde_json::from_value::<SpecIn>(s).ok())
                    .and_then(|s| s.into_spec(&g.grant_id)),
                grant_id: g.grant_id,
                holder: None,
            })
            .collect())
    }
}

/// What a receiver may echo back in `list` so that a drift revoke carries the details.
#[derive(Deserialize)]
struct SpecIn {
    role: String,
    person: String,
    #[serde(default)]
    principals: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    target: Value,
}

impl SpecIn {
    fn into_spec(self, grant_id: &str) -> Option<GrantSpec> {
        let now = chrono::Utc::now();
        Some(GrantSpec {
            grant_id: grant_id.to_string(),
            request: elevate_core::RequestId::from_grant_id(grant_id)?,
            role: elevate_core::RoleName::parse(&self.role).ok()?,
            person: elevate_core::PersonId::parse(&self.person).ok()?,
            principals: self.principals,
            target: self.target,
            starts_at: now,
            expires_at: now,
            handle: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_changes() {
        let sig = sign("0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1="));
        assert!(verify("0123456789abcdef", 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify("0123456789abcdef", 1_700_000_001, b"{\"a\":1}", &sig));
        assert!(!verify("0123456789abcdef", 1_700_000_000, b"{\"a\":2}", &sig));
        assert!(!verify("another-secret-xx", 1_700_000_000, b"{\"a\":1}", &sig));
    }

    #[test]
    fn the_debug_form_hides_the_secret() {
        let cfg = WebhookConfig {
            url: "http://x".into(),
            secret: "super-secret-value".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
            max_inline_wait: Duration::from_secs(1),
        };
        assert!(!format!("{cfg:?}").contains("super-secret"));
    }
}
