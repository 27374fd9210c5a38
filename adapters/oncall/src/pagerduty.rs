//! PagerDuty's "List all of the on-calls" (`GET /oncalls`, REST API v2).

use crate::{Http, OnCallConfig, time};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use elevate_core::oncall::{OnCall, OnCallError, OnCallQuery, OnCallShift};
use serde::Deserialize;
use serde_json::Value;

/// PagerDuty's largest page.
const PAGE: usize = 100;
/// PagerDuty refuses offsets past 10,000 (classic pagination); a query that big is a mistake.
const MAX_OFFSET: usize = 10_000;

pub struct PagerDuty {
    http: Http,
}

#[derive(Deserialize)]
struct Page {
    oncalls: Vec<Entry>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct Entry {
    escalation_level: Option<u32>,
    /// `null` when the user is on call directly through the escalation policy, not a schedule.
    schedule: Option<Reference>,
    user: Option<Reference>,
    #[serde(default)]
    start: Value,
    #[serde(default)]
    end: Value,
}

/// A reference (`{id, type, summary}`) or, with `include[]=users`, the full user (with `email`).
#[derive(Deserialize)]
struct Reference {
    id: String,
    summary: Option<String>,
    email: Option<String>,
}

impl PagerDuty {
    pub fn new(cfg: OnCallConfig) -> Result<Self, String> {
        Ok(PagerDuty { http: Http::new(cfg, "PagerDuty")? })
    }

    fn params(q: &OnCallQuery, at: DateTime<Utc>, offset: usize) -> Vec<(&'static str, String)> {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut p = vec![
            ("time_zone", "UTC".to_string()),
            ("since", t(at)),
            ("until", t(at + chrono::Duration::seconds(1))),
            ("limit", PAGE.to_string()),
            ("offset", offset.to_string()),
        ];
        p.extend(q.schedules.iter().map(|s| ("schedule_ids[]", s.clone())));
        p.extend(q.escalation_policies.iter().map(|s| ("escalation_policy_ids[]", s.clone())));
        p.extend(q.user.iter().map(|u| ("user_ids[]", u.clone())));
        if q.emails {
            p.push(("include[]", "users".to_string()));
        }
        p
    }
}

#[async_trait]
impl OnCall for PagerDuty {
    async fn on_call(&self, q: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError> {
        self.http.within(self.pages(q, at)).await
    }
}

impl PagerDuty {
    /// Every page of the answer.
    async fn pages(&self, q: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let params = Self::params(q, at, offset);
            let body = self
                .http
                .get_json(|| {
                    self.http
                        .client
                        .get(self.http.url("/oncalls"))
                        .query(&params)
                        .header("Authorization", format!("Token token={}", self.http.cfg.token))
                        .header("Accept", "application/vnd.pagerduty+json;version=2")
                })
                .await?;
            let page: Page = serde_json::from_value(body).map_err(|e| {
                OnCallError(format!("PagerDuty answered something that is not a list of on-calls: {e}"))
            })?;
            let n = page.oncalls.len();
            out.extend(page.oncalls.into_iter().filter_map(|e| {
                let schedule = e.schedule?;
                let user = e.user?;
                Some(OnCallShift {
                    schedule: schedule.id,
                    schedule_name: schedule.summary,
                    level: e.escalation_level,
                    user_id: Some(user.id),
                    username: None,
                    email: user.email,
                    start: time(&e.start),
                    end: time(&e.end),
                })
            }));
            offset += n;
            if !page.more || n == 0 {
                return Ok(out);
            }
            if offset >= MAX_OFFSET {
                return Err(OnCallError(format!(
                    "PagerDuty lists more than {MAX_OFFSET} on-calls for these schedules"
                )));
            }
        }
    }
}
