//! Signed calls to AWS: SigV4 (aws-sigv4), the query protocol (IAM, STS) and the JSON protocol
//! (Identity Center), with retries for throttling, 429, 5xx and timeouts inside each call.
//!
//! Errors carry AWS's own code and message and nothing else: no request body, no header, so no
//! key or token can leak through an error into a chat message or a log.

use crate::chain::Chain;
use crate::config::{AssumeRoleSettings, Endpoint, Settings};
use crate::credentials::{CredentialSource, Leased, StaticCredentials};
use crate::errors::{backoff, error_of, is_throttling, retry_after};
use crate::xml::{self, Node};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use elevate_core::ports::ProviderError;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tracing::{debug, warn};

/// Which AWS API a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Iam,
    Sts,
    /// IAM Identity Center's admin API (`sso-admin`, signed as `sso`).
    IdentityCenter,
}

const IAM_VERSION: &str = "2010-05-08";
const STS_VERSION: &str = "2011-06-15";
const SSO_TARGET_PREFIX: &str = "SWBExternalService";

/// A signed AWS client for the few APIs elevate uses. Public so that tests and tools can set
/// up and inspect the same account elevate changes, with the same signing.
pub struct AwsClient {
    http: reqwest::Client,
    settings: Settings,
    base: Base,
    leased: Mutex<Option<Leased>>,
}

/// elevate's identity before the optional assume-role.
#[derive(Debug)]
enum Base {
    Static(StaticCredentials),
    Chain(Chain),
}

impl std::fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsClient").field("settings", &self.settings).field("credentials", &self.base).finish()
    }
}

/// A failed attempt, before deciding whether to try again.
enum Failure {
    Retry { message: String, retry_after: Option<Duration> },
    Stop(ProviderError),
}

impl AwsClient {
    pub(crate) fn new(settings: Settings, source: CredentialSource) -> Result<Self, String> {
        // reqwest is built without a TLS crypto provider (see docs/design.md): use ring unless the
        // process already chose one. An error here only means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("elevate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("aws provider: cannot build the HTTP client: {e}"))?;
        let base = match source {
            CredentialSource::Static(keys) => Base::Static(keys),
            CredentialSource::DefaultChain => Base::Chain(Chain::new(&settings.sts.signing_region)),
        };
        Ok(AwsClient { http, settings, base, leased: Mutex::new(None) })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A query-protocol call (IAM, STS): `Action=…&Version=…&params`, answered in XML.
    pub async fn query(&self, service: Service, action: &str, params: &[(&str, &str)]) -> Result<Node, ProviderError> {
        let creds = self.credentials().await?;
        self.query_as(&creds, service, action, params).await
    }

    async fn query_as(
        &self,
        creds: &StaticCredentials,
        service: Service,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<Node, ProviderError> {
        let version = if service == Service::Sts { STS_VERSION } else { IAM_VERSION };
        let mut pairs = vec![("Action", action), ("Version", version)];
        pairs.extend_from_slice(params);
        let body = form_body(&pairs).into_bytes();
        let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8".to_string())];
        let text = self.send(creds, service, action, &headers, body).await?;
        xml::parse(&text).map_err(|e| ProviderError::transient(format!("{action}: {e}")))
    }

    /// A JSON-protocol call to Identity Center (`X-Amz-Target: SWBExternalService.{action}`).
    pub async fn json(&self, action: &str, body: &Value) -> Result<Value, ProviderError> {
        let creds = self.credentials().await?;
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", format!("{SSO_TARGET_PREFIX}.{action}")),
        ];
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::permanent("Encode", e.to_string()))?;
        let text = self.send(&creds, Service::IdentityCenter, action, &headers, bytes).await?;
        if text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&text)
            .map_err(|e| ProviderError::transient(format!("{action}: unreadable JSON answer: {e}")))
    }

    /// The keys to sign with now: the base identity's, or the assumed role's; temporary ones
    /// are refreshed ahead of their expiry.
    async fn credentials(&self) -> Result<StaticCredentials, ProviderError> {
        let Some(role) = &self.settings.assume_role else {
            return self.base_credentials().await;
        };
        let mut leased = self.leased.lock().await;
        if let Some(l) = leased.as_ref().filter(|l| l.fresh_at(SystemTime::now())) {
            return Ok(l.creds.clone());
        }
        let refreshed = match self.base_credentials().await {
            Ok(base) => self.assume_role(&base, role).await,
            Err(e) => Err(e),
        };
        match refreshed {
            Ok(fresh) => {
                let creds = fresh.creds.clone();
                *leased = Some(fresh);
                Ok(creds)
            }
            // The role's keys inside the refresh margin still work: STS briefly failing must
            // not stop a revoke while they do.
            Err(e) => match leased.as_ref().filter(|l| l.expires_at > SystemTime::now()) {
                Some(l) => {
                    warn!(role = %role.role_arn, error = %e, "cannot refresh the assumed role's keys; using the current ones until they expire");
                    Ok(l.creds.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn base_credentials(&self) -> Result<StaticCredentials, ProviderError> {
        match &self.base {
            Base::Static(keys) => Ok(keys.clone()),
            Base::Chain(chain) => chain.credentials().await,
        }
    }

    async fn assume_role(&self, base: &StaticCredentials, role: &AssumeRoleSettings) -> Result<Leased, ProviderError> {
        let secs = role.duration.as_secs().to_string();
        let mut params = vec![
            ("RoleArn", role.role_arn.as_str()),
            ("RoleSessionName", role.session_name.as_str()),
            ("DurationSeconds", secs.as_str()),
        ];
        if let Some(ext) = &role.external_id {
            params.push(("ExternalId", ext.as_str()));
        }
        let doc = self.query_as(base, Service::Sts, "AssumeRole", &params).await?;
        let c = doc
            .path(&["AssumeRoleResult", "Credentials"])
            .ok_or_else(|| ProviderError::transient("AssumeRole: answer without Credentials"))?;
        let field = |n: &str| c.text_at(&[n]).filter(|s| !s.is_empty()).map(str::to_string);
        let (Some(id), Some(secret), Some(token)) =
            (field("AccessKeyId"), field("SecretAccessKey"), field("SessionToken"))
        else {
            return Err(ProviderError::transient("AssumeRole: answer without keys"));
        };
        let expires_at = field("Expiration")
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
            .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
            .unwrap_or_else(|| SystemTime::now() + role.duration);
        debug!(role = %role.role_arn, "assumed role");
        Ok(Leased { creds: StaticCredentials::new(id, secret, Some(token)), expires_at })
    }

    fn endpoint(&self, service: Service) -> &Endpoint {
        match service {
            Service::Iam => &self.settings.iam,
            Service::Sts => &self.settings.sts,
            Service::IdentityCenter => &self.settings.sso,
        }
    }

    /// One logical call: sign, send, and retry what is worth retrying.
    async fn send(
        &self,
        creds: &StaticCredentials,
        service: Service,
        action: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<String, ProviderError> {
        let ep = self.endpoint(service);
        let url = format!("{}/", ep.url);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let failure = match self.attempt(creds, ep, &url, headers, &body).await {
                Ok(text) => return Ok(text),
                Err(f) => f,
            };
            let (message, retry_after) = match failure {
                Failure::Stop(e) => return Err(e),
                Failure::Retry { message, retry_after } => (message, retry_after),
            };
            let give_up =
                |why: &str| ProviderError::Transient { message: format!("{action}: {message}{why}"), retry_after };
            if attempt >= self.settings.max_attempts {
                warn!(action, attempt, error = %message, "AWS call still failing; handing over to the scheduler");
                return Err(give_up(&format!(" (after {attempt} attempts)")));
            }
            let wait = match retry_after {
                Some(hint) if hint > self.settings.max_retry_wait => {
                    return Err(give_up(&format!(" (AWS asked to wait {}s)", hint.as_secs())));
                }
                Some(hint) => hint,
                None => backoff(self.settings.retry_base, attempt),
            };
            debug!(action, attempt, ?wait, error = %message, "retrying AWS call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        creds: &StaticCredentials,
        ep: &Endpoint,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<String, Failure> {
        let identity = creds.to_identity();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&ep.signing_region)
            .name(ep.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::Stop(ProviderError::permanent("SigningError", e.to_string())))?
            .into();
        let signable =
            SignableRequest::new("POST", url, headers.iter().map(|(k, v)| (*k, v.as_str())), SignableBody::Bytes(body))
                .map_err(|e| Failure::Stop(ProviderError::permanent("SigningError", e.to_string())))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Failure::Stop(ProviderError::permanent("SigningError", e.to_string())))?
            .into_parts();
        let mut req = self.http.post(url).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            Failure::Retry { message: format!("{what} ({})", ep.url), retry_after: None }
        })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let header_code = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.text().await.map_err(|e| Failure::Retry {
            message: if e.is_timeout() { "timed out reading the answer".into() } else { "answer cut off".into() },
            retry_after: None,
        })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let (code, message) = error_of(&text, header_code.as_deref(), status);
        if status == 429 || status >= 500 || is_throttling(&code) {
            return Err(Failure::Retry { message: format!("{code}: {message} (HTTP {status})"), retry_after });
        }
        Err(Failure::Stop(ProviderError::Permanent { code, message }))
    }
}

/// Characters left as they are in a form body: RFC 3986's unreserved set.
const FORM: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `application/x-www-form-urlencoded` exactly as botocore writes it (unreserved characters
/// kept, space as `+`, everything else `%XX`). AWS accepts any valid encoding; emulators that
/// re-encode the parsed form to check the signature (moto) need this one.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, FORM).to_string().replace("%20", "+");
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_encoded_like_botocore() {
        let body = form_body(&[("PolicyDocument", r#"{"Resource":"arn:aws:s3:::logs/*","x":"a b~"}"#)]);
        assert_eq!(
            body,
            "PolicyDocument=%7B%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Alogs%2F%2A%22%2C%22x%22%3A%22a+b~%22%7D"
        );
    }
}
