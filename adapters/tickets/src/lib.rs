//! elevate-tickets: the [`TicketSystem`] port over
//! - Jira Cloud: `GET {base_url}/rest/api/3/issue/{key}?fields=status,project,assignee` with basic
//!   auth (the account's email and an API token);
//! - Jira Data Center / Server: `GET {base_url}/rest/api/2/issue/{key}?fields=…` with a personal
//!   access token as `Authorization: Bearer …`;
//! - a generic HTTP check: `GET` of a URL template (`{ticket}` replaced, URL-encoded), optionally
//!   with a bearer token, answering `404` for a missing ticket or `200` with
//!   `{"key", "project", "status", "status_category": "new"|"indeterminate"|"done",
//!   "assignee": {"id", "email", "name"} | null, "url"}`.
//!
//! `404` is "no such ticket". `429` and `5xx` are retried a few times within the call, waiting
//! `Retry-After` when it is short; anything else (401, 403, a timeout after retries, an answer of
//! the wrong shape) is a [`TicketError`] naming the system and the status, never the token.

use async_trait::async_trait;
use elevate_core::tickets::{Assignee, StatusCategory, Ticket, TicketError, TicketSystem};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tracing::{debug, warn};

/// Which API, and how to authenticate to it.
#[derive(Clone)]
pub enum TicketApi {
    JiraCloud { base_url: String, email: String, api_token: String },
    JiraDataCenter { base_url: String, token: String },
    Http { url_template: String, token: Option<String> },
}

impl std::fmt::Debug for TicketApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TicketApi::JiraCloud { base_url, email, .. } => {
                write!(f, "JiraCloud {{ base_url: {base_url:?}, email: {email:?}, api_token: *** }}")
            }
            TicketApi::JiraDataCenter { base_url, .. } => {
                write!(f, "JiraDataCenter {{ base_url: {base_url:?}, token: *** }}")
            }
            TicketApi::Http { url_template, .. } => write!(f, "Http {{ url_template: {url_template:?} }}"),
        }
    }
}

pub struct TicketClient {
    api: TicketApi,
    client: reqwest::Client,
    timeout: Duration,
    retries: u32,
}

impl TicketClient {
    pub fn new(api: TicketApi, timeout: Duration, retries: u32) -> Result<Self, String> {
        let url = match &api {
            TicketApi::JiraCloud { base_url, .. } | TicketApi::JiraDataCenter { base_url, .. } => base_url,
            TicketApi::Http { url_template, .. } => url_template,
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("`{url}` must start with https://"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("elevate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TicketClient { api, client, timeout, retries })
    }

    fn request(&self, key: &str) -> reqwest::RequestBuilder {
        let fields = [("fields", "status,project,assignee")];
        match &self.api {
            TicketApi::JiraCloud { base_url, email, api_token } => self
                .client
                .get(format!("{}/rest/api/3/issue/{}", base_url.trim_end_matches('/'), encode(key)))
                .query(&fields)
                .basic_auth(email, Some(api_token))
                .header("Accept", "application/json"),
            TicketApi::JiraDataCenter { base_url, token } => self
                .client
                .get(format!("{}/rest/api/2/issue/{}", base_url.trim_end_matches('/'), encode(key)))
                .query(&fields)
                .bearer_auth(token)
                .header("Accept", "application/json"),
            TicketApi::Http { url_template, token } => {
                let r = self
                    .client
                    .get(url_template.replace("{ticket}", &encode(key)))
                    .header("Accept", "application/json");
                match token {
                    Some(t) => r.bearer_auth(t),
                    None => r,
                }
            }
        }
    }

    /// The answer's JSON, `None` for 404; retries 429, 5xx and timeouts.
    async fn fetch(&self, key: &str) -> Result<Option<Value>, TicketError> {
        let name = self.name();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (error, hint) = match self.request(key).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let hint = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        debug!(system = name, attempt, "ticket read");
                        return Ok(Some(body));
                    }
                    if status == StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    let error = TicketError(format!("{name} answered HTTP {}{}", status.as_u16(), detail(&body)));
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(error);
                    }
                    (error, hint)
                }
                Err(e) if e.is_timeout() => {
                    (TicketError(format!("{name} did not answer within {:?}", self.timeout)), None)
                }
                Err(e) => (TicketError(format!("cannot reach {name}: {}", e.without_url())), None),
            };
            let wait = hint.unwrap_or(Duration::from_millis(200 * (1 << attempt.min(5))));
            if attempt > self.retries || wait > self.timeout {
                warn!(system = name, attempt, error = %error, "ticket lookup failed");
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn browse_url(&self, key: &str) -> String {
        match &self.api {
            TicketApi::JiraCloud { base_url, .. } | TicketApi::JiraDataCenter { base_url, .. } => {
                format!("{}/browse/{key}", base_url.trim_end_matches('/'))
            }
            TicketApi::Http { .. } => String::new(),
        }
    }
}

/// Jira's own words about a failure (`errorMessages`), or the generic check's `error`/`message`.
fn detail(body: &Value) -> String {
    let msg = body["errorMessages"][0].as_str().or(body["error"].as_str()).or(body["message"].as_str()).unwrap_or("");
    let msg: String = msg.chars().filter(|c| !c.is_control()).take(200).collect();
    if msg.is_empty() { String::new() } else { format!(": {msg}") }
}

/// A path segment: the key is checked by core, but a generic check gets whatever a person typed.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct JiraIssue {
    key: String,
    fields: JiraFields,
}

#[derive(Deserialize)]
struct JiraFields {
    status: JiraStatus,
    project: JiraProject,
    assignee: Option<JiraUser>,
}

#[derive(Deserialize)]
struct JiraStatus {
    name: String,
    #[serde(rename = "statusCategory")]
    category: Option<JiraCategory>,
}

#[derive(Deserialize)]
struct JiraCategory {
    key: String,
}

#[derive(Deserialize)]
struct JiraProject {
    key: String,
}

/// Cloud: `accountId`; Data Center: `name` (the username).
#[derive(Deserialize)]
struct JiraUser {
    #[serde(rename = "accountId")]
    account_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "emailAddress")]
    email: Option<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct GenericTicket {
    key: String,
    project: String,
    status: String,
    status_category: Option<String>,
    assignee: Option<GenericAssignee>,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct GenericAssignee {
    id: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

#[async_trait]
impl TicketSystem for TicketClient {
    fn name(&self) -> &str {
        match self.api {
            TicketApi::JiraCloud { .. } | TicketApi::JiraDataCenter { .. } => "Jira",
            TicketApi::Http { .. } => "the ticket check",
        }
    }

    async fn ticket(&self, key: &str) -> Result<Option<Ticket>, TicketError> {
        // The whole lookup, retries included, within `timeout`: a chat command waits for it.
        let fetched = tokio::time::timeout(self.timeout, self.fetch(key)).await.unwrap_or_else(|_| {
            warn!(system = self.name(), "ticket lookup took too long");
            Err(TicketError(format!("{} did not answer within {:?}", self.name(), self.timeout)))
        });
        let Some(body) = fetched? else { return Ok(None) };
        let shape =
            |e: serde_json::Error| TicketError(format!("{} answered something that is not a ticket: {e}", self.name()));
        match &self.api {
            TicketApi::Http { .. } => {
                let t: GenericTicket = serde_json::from_value(body).map_err(shape)?;
                Ok(Some(Ticket {
                    key: t.key,
                    project: t.project,
                    status: t.status,
                    category: t.status_category.as_deref().and_then(StatusCategory::parse),
                    assignee: t.assignee.map(|a| Assignee { id: a.id, email: a.email, display_name: a.name }),
                    url: t.url,
                }))
            }
            _ => {
                let i: JiraIssue = serde_json::from_value(body).map_err(shape)?;
                Ok(Some(Ticket {
                    url: self.browse_url(&i.key),
                    key: i.key,
                    project: i.fields.project.key,
                    status: i.fields.status.name,
                    category: i.fields.status.category.and_then(|c| StatusCategory::parse(&c.key)),
                    assignee: i.fields.assignee.map(|u| Assignee {
                        id: u.account_id.or(u.name),
                        email: u.email,
                        display_name: u.display_name,
                    }),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_and_tokens_hidden() {
        assert_eq!(encode("INC-42"), "INC-42");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        let api =
            TicketApi::JiraCloud { base_url: "https://x".into(), email: "e@x".into(), api_token: "tok-secret".into() };
        assert!(!format!("{api:?}").contains("tok-secret"));
    }
}
