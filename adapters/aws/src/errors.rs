//! Reading AWS's answers when they are not success: the error code and message in either
//! protocol, which codes are worth retrying, `Retry-After`, and the backoff between attempts.

use crate::xml;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Throttling and service-side error codes AWS documents as retryable.
pub(crate) fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "SlowDown"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalError"
            | "InternalServerException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "PriorRequestNotComplete"
            | "IDPCommunicationError"
    )
}

/// AWS's error code and message from an XML (`<Error><Code>`) or JSON (`__type`) error body.
pub(crate) fn error_of(text: &str, header_code: Option<&str>, status: u16) -> (String, String) {
    let clean = |c: &str| {
        let c = c.rsplit('#').next().unwrap_or(c);
        c.split(':').next().unwrap_or(c).trim().to_string()
    };
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let code = v
            .get("__type")
            .or_else(|| v.get("code"))
            .or_else(|| v.get("Code"))
            .and_then(Value::as_str)
            .map(clean)
            .or_else(|| header_code.map(clean));
        let message = v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(code) = code {
            return (code, message);
        }
    }
    if let Ok(doc) = xml::parse(text)
        && let Some(code) = doc.find("Code").map(|n| n.text.clone()).filter(|c| !c.is_empty())
    {
        let message = doc.find("Message").map(|n| n.text.clone()).unwrap_or_default();
        return (code, message);
    }
    let code = header_code.map(clean).unwrap_or_else(|| format!("HTTP{status}"));
    let snippet: String = text.chars().take(200).collect();
    (code, snippet)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds().max(0) as u64;
    Some(Duration::from_millis(secs))
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
    fn error_codes_from_both_protocols() {
        let xml = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        assert_eq!(error_of(xml, None, 404), ("NoSuchEntity".into(), "The user with name bob cannot be found.".into()));
        let json = r#"{"__type":"com.amazonaws.swbexternalservice#ConflictException","message":"busy"}"#;
        assert_eq!(error_of(json, None, 400), ("ConflictException".into(), "busy".into()));
        assert_eq!(error_of("{}", Some("ThrottlingException:http://x"), 400).0, "ThrottlingException");
        assert_eq!(error_of("<html>bad gateway</html>", None, 502).0, "HTTP502");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(100);
        assert!(backoff(b, 1) <= Duration::from_millis(100) && backoff(b, 1) >= Duration::from_millis(50));
        assert!(backoff(b, 4) >= Duration::from_millis(400));
        assert!(backoff(b, 30) <= Duration::from_secs(20));
    }

    #[test]
    fn throttling_codes_are_retryable_and_quota_is_not() {
        assert!(is_throttling("Throttling") && is_throttling("ThrottlingException"));
        assert!(!is_throttling("LimitExceeded") && !is_throttling("AccessDenied"));
    }
}
