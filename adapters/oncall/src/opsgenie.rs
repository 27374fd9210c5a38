//! Opsgenie's "Get On Calls" (`GET /v2/schedules/{id}/on-calls`, Who is On Call API), one call
//! per schedule.

use crate::{Http, OnCallConfig};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use elevate_core::oncall::{OnCall, OnCallError, OnCallQuery, OnCallShift};
use serde::Deserialize;

pub struct Opsgenie {
    http: Http,
}

#[derive(Deserialize)]
struct Answer {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "_parent")]
    parent: Option<Parent>,
    /// With `flat=true`: the usernames of everyone on call, teams and escalations resolved.
    #[serde(rename = "onCallRecipients", default)]
    recipients: Vec<String>,
}

#[derive(Deserialize)]
struct Parent {
    name: Option<String>,
}

impl Opsgenie {
    pub fn new(cfg: OnCallConfig) -> Result<Self, String> {
        Ok(Opsgenie { http: Http::new(cfg, "Opsgenie")? })
    }
}

#[async_trait]
impl OnCall for Opsgenie {
    async fn on_call(&self, q: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError> {
        self.http.within(self.schedules(q, at)).await
    }
}

impl Opsgenie {
    /// Each schedule in turn.
    async fn schedules(&self, q: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError> {
        let date = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut out = Vec::new();
        for schedule in &q.schedules {
            let mut url = reqwest::Url::parse(&self.http.url("/v2/schedules"))
                .map_err(|e| OnCallError(format!("Opsgenie api_url is not a URL: {e}")))?;
            url.path_segments_mut()
                .map_err(|_| OnCallError("Opsgenie api_url cannot take a path".into()))?
                .push(schedule)
                .push("on-calls");
            let body = self
                .http
                .get_json(|| {
                    self.http
                        .client
                        .get(url.clone())
                        .query(&[("scheduleIdentifierType", "id"), ("flat", "true"), ("date", date.as_str())])
                        .header("Authorization", format!("GenieKey {}", self.http.cfg.token))
                })
                .await?;
            let answer: Answer = serde_json::from_value(body)
                .map_err(|e| OnCallError(format!("Opsgenie answered something that is not an on-call list: {e}")))?;
            let name = answer.data.parent.and_then(|p| p.name);
            out.extend(answer.data.recipients.into_iter().map(|username| OnCallShift {
                schedule: schedule.clone(),
                schedule_name: name.clone(),
                level: None,
                user_id: None,
                username: Some(username),
                email: None,
                start: None,
                end: None,
            }));
        }
        Ok(out)
    }
}
