//! Authorised JSON calls to Google's REST APIs, with retries for 429, 5xx and timeouts inside
//! each call, and Google's own error (`error.status`, `error.message`) kept for the requester.
//!
//! Errors carry Google's status and message and nothing else: no request body, no header, so no
//! token can leak through an error into a chat message or a log.

use crate::auth::Auth;
use crate::config::Settings;
use elevate_core::ports::ProviderError;
use reqwest::{Method, header::HeaderMap};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};

/// An answer from Google that retrying the same request will not change: 400, 403, 404, 409,
/// 412 (and a 401 that a fresh token did not cure).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoogleError {
    pub http: u16,
    /// `PERMISSION_DENIED`, `NOT_FOUND`, `ABORTED`, … (or `HTTP{n}` when the body had none).
    pub status: String,
    pub message: String,
}

impl GoogleError {
    /// A concurrent change of an IAM policy: read it again and redo the change.
    pub fn is_conflict(&self) -> bool {
        self.http == 412 || (self.http == 409 && self.status != "ALREADY_EXISTS")
    }
    pub fn is_not_found(&self) -> bool {
        self.http == 404
    }
}

/// Why a call failed.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    Google(GoogleError),
    /// Transient failures that outlasted the attempts, or a token that could not be had.
    Provider(ProviderError),
}

impl From<CallError> for ProviderError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Google(g) => ProviderError::Permanent { code: g.status, message: g.message },
            CallError::Provider(p) => p,
        }
    }
}

impl From<ProviderError> for CallError {
    fn from(e: ProviderError) -> Self {
        CallError::Provider(e)
    }
}

/// A failed attempt, before deciding whether to try again.
enum Failure {
    Retry { message: String, retry_after: Option<Duration> },
    Unauthenticated(GoogleError),
    Stop(GoogleError),
}

pub(crate) struct Client {
    http: reqwest::Client,
    pub settings: Settings,
    pub auth: Auth,
}

impl Client {
    pub fn new(settings: Settings, auth: Auth) -> Result<Self, String> {
        // reqwest is built without a TLS crypto provider: use ring unless the process already
        // chose one. An error here only means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("elevate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("gcp provider: cannot build the HTTP client: {e}"))?;
        Ok(Client { http, settings, auth })
    }

    /// One logical call: authorise, send, and retry what is worth retrying. `what` names the
    /// call in messages (`getIamPolicy projects/p`).
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>, what: &str) -> Result<Value, CallError> {
        let mut attempt = 0u32;
        let mut reauthorised = false;
        loop {
            attempt += 1;
            let token = self.auth.token().await?;
            let (message, retry_after) = match self.attempt(&token, method.clone(), url, body).await {
                Ok(v) => return Ok(v),
                Err(Failure::Stop(g)) => return Err(CallError::Google(g)),
                // A token Google no longer takes (revoked, or expired early by its clock):
                // start again with a new one, once.
                Err(Failure::Unauthenticated(_)) if !reauthorised => {
                    debug!(what, "token refused; fetching a new one");
                    self.auth.reset().await;
                    reauthorised = true;
                    attempt -= 1;
                    continue;
                }
                Err(Failure::Unauthenticated(g)) => return Err(CallError::Google(g)),
                Err(Failure::Retry { message, retry_after }) => (message, retry_after),
            };
            let give_up = |why: &str| {
                CallError::Provider(ProviderError::Transient {
                    message: format!("{what}: {message}{why}"),
                    retry_after,
                })
            };
            if attempt >= self.settings.max_attempts {
                warn!(what, attempt, error = %message, "Google call still failing; handing over to the scheduler");
                return Err(give_up(&format!(" (after {attempt} attempts)")));
            }
            let wait = match retry_after {
                Some(hint) if hint > self.settings.max_retry_wait => {
                    return Err(give_up(&format!(" (Google asked to wait {}s)", hint.as_secs())));
                }
                Some(hint) => hint,
                None => backoff(self.settings.retry_base, attempt),
            };
            debug!(what, attempt, ?wait, error = %message, "retrying Google call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, token: &str, method: Method, url: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            Failure::Retry { message: format!("{what} ({})", host_of(url)), retry_after: None }
        })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| Failure::Retry {
            message: if e.is_timeout() { "timed out reading the answer".into() } else { "answer cut off".into() },
            retry_after: None,
        })?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            return serde_json::from_str(&text)
                .map_err(|e| Failure::Retry { message: format!("unreadable JSON answer: {e}"), retry_after: None });
        }
        let g = error_of(&text, status);
        if status == 429 || status >= 500 {
            return Err(Failure::Retry {
                message: format!("{}: {} (HTTP {status})", g.status, g.message),
                retry_after,
            });
        }
        if status == 401 {
            return Err(Failure::Unauthenticated(g));
        }
        Err(Failure::Stop(g))
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Google's JSON error body: `{"error": {"code": 403, "message": "…", "status": "PERMISSION_DENIED"}}`.
pub(crate) fn error_of(text: &str, http: u16) -> GoogleError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let e = &v["error"];
    let status =
        e["status"].as_str().filter(|s| !s.is_empty()).map(str::to_string).unwrap_or_else(|| format!("HTTP{http}"));
    let message = match e["message"].as_str() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => text.chars().take(200).collect(),
    };
    GoogleError { http, status, message }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds().max(0) as u64;
    Some(Duration::from_millis(ms))
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, between half and all of it, capped
/// at 20 s.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1 << attempt.saturating_sub(1).min(10)).min(Duration::from_secs(20));
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = full.mul_f64(f64::from(nanos % 1000) / 2000.0);
    full / 2 + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn googles_error_body_gives_the_status_and_message() {
        let body =
            r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#;
        let g = error_of(body, 403);
        assert_eq!(
            (g.status.as_str(), g.message.as_str()),
            ("PERMISSION_DENIED", "The caller does not have permission")
        );
        let g = error_of("<html>Bad Gateway</html>", 502);
        assert_eq!(g.status, "HTTP502");
        assert!(g.message.contains("Bad Gateway"));
    }

    #[test]
    fn conflicts_are_aborted_or_failed_precondition_but_not_already_exists() {
        let e = |http, status: &str| GoogleError { http, status: status.into(), message: String::new() };
        assert!(e(409, "ABORTED").is_conflict());
        assert!(e(412, "FAILED_PRECONDITION").is_conflict());
        assert!(!e(409, "ALREADY_EXISTS").is_conflict());
        assert!(!e(403, "PERMISSION_DENIED").is_conflict());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(100);
        assert!(backoff(b, 1) <= Duration::from_millis(100) && backoff(b, 1) >= Duration::from_millis(50));
        assert!(backoff(b, 4) >= Duration::from_millis(400));
        assert!(backoff(b, 30) <= Duration::from_secs(20));
    }
}
