//! Who is on call now: the [`OnCall`] port (implemented over PagerDuty's and Opsgenie's REST APIs
//! by `elevate-oncall`) and a short-lived cache in front of it, so that a burst of requests does
//! not become a burst of calls, and so that the cache's age is measured on the [`Clock`] tests
//! move.
//!
//! [`Clock`]: crate::time::Clock

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Which on-call service a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCallService {
    PagerDuty,
    Opsgenie,
}

impl OnCallService {
    pub const ALL: [OnCallService; 2] = [OnCallService::PagerDuty, OnCallService::Opsgenie];

    /// The config name: `pagerduty`, `opsgenie`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnCallService::PagerDuty => "pagerduty",
            OnCallService::Opsgenie => "opsgenie",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for OnCallService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnCallService::PagerDuty => "PagerDuty",
            OnCallService::Opsgenie => "Opsgenie",
        })
    }
}

/// What to ask the service: who is on call in these schedules (PagerDuty: optionally only under
/// these escalation policies, optionally only this user).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OnCallQuery {
    pub schedules: Vec<String>,
    pub escalation_policies: Vec<String>,
    /// PagerDuty user id to filter on (`user_ids[]`), when the rule matches by it.
    pub user: Option<String>,
    /// Ask for the users' email addresses too (PagerDuty `include[]=users`).
    pub emails: bool,
}

/// One person on call in one schedule (at one escalation level, for PagerDuty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCallShift {
    /// The schedule id, as the rule names it.
    pub schedule: String,
    pub schedule_name: Option<String>,
    /// PagerDuty's escalation level (1 is first); Opsgenie schedules have none.
    pub level: Option<u32>,
    /// PagerDuty user id.
    pub user_id: Option<String>,
    /// Opsgenie username (an email address).
    pub username: Option<String>,
    pub email: Option<String>,
    /// `None`: on call since forever / until further notice.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl OnCallShift {
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at < e)
    }
}

/// The service could not answer. The message is for logs, cards and audit events: it names the
/// service and what went wrong (HTTP status, timeout), never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OnCallError(pub String);

/// An on-call service.
#[async_trait]
pub trait OnCall: Send + Sync {
    /// Everyone on call at `at` in the query's schedules; pages are followed by the adapter.
    async fn on_call(&self, query: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError>;
}

struct Source {
    port: Arc<dyn OnCall>,
    ttl: Duration,
}

type Cached = (DateTime<Utc>, Arc<Vec<OnCallShift>>);

/// The configured on-call services, each with its cache. Failures are not cached: the next
/// request asks again.
#[derive(Default)]
pub struct OnCallSources {
    sources: BTreeMap<OnCallService, Source>,
    cache: Mutex<BTreeMap<(OnCallService, OnCallQuery), Cached>>,
}

impl OnCallSources {
    pub fn add(&mut self, service: OnCallService, port: Arc<dyn OnCall>, ttl: Duration) {
        self.sources.insert(service, Source { port, ttl });
    }

    pub fn configured(&self, service: OnCallService) -> bool {
        self.sources.contains_key(&service)
    }

    /// Who is on call at `now`, from the cache while it is younger than the service's TTL.
    pub async fn lookup(
        &self,
        service: OnCallService,
        query: &OnCallQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<OnCallShift>, OnCallError> {
        let Some(src) = self.sources.get(&service) else {
            return Err(OnCallError(format!("{service} is not configured")));
        };
        let key = (service, query.clone());
        let ttl = chrono::Duration::from_std(src.ttl).unwrap_or_default();
        let hit = self.cache.lock().expect("on-call cache").get(&key).filter(|(at, _)| now < *at + ttl).cloned();
        let shifts = match hit {
            Some((_, shifts)) => shifts,
            None => {
                let fresh = Arc::new(src.port.on_call(query, now).await?);
                let mut cache = self.cache.lock().expect("on-call cache");
                cache.retain(|_, (at, _)| now < *at + ttl);
                cache.insert(key, (now, fresh.clone()));
                fresh
            }
        };
        Ok(shifts.iter().filter(|s| s.covers(now)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait]
    impl OnCall for Counting {
        async fn on_call(&self, q: &OnCallQuery, at: DateTime<Utc>) -> Result<Vec<OnCallShift>, OnCallError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![OnCallShift {
                schedule: q.schedules[0].clone(),
                schedule_name: None,
                level: Some(1),
                user_id: Some("PALICE1".into()),
                username: None,
                email: None,
                start: Some(at),
                end: Some(at + chrono::Duration::seconds(90)),
            }])
        }
    }

    #[tokio::test]
    async fn answers_are_cached_for_the_ttl_and_shifts_that_ended_drop_out() {
        let port = Arc::new(Counting(AtomicUsize::new(0)));
        let mut sources = OnCallSources::default();
        sources.add(OnCallService::PagerDuty, port.clone(), Duration::from_secs(120));
        let q = OnCallQuery { schedules: vec!["PS1".into()], escalation_policies: vec![], user: None, emails: false };
        let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 2, 9, 0, 0).unwrap();
        assert_eq!(sources.lookup(OnCallService::PagerDuty, &q, t0).await.unwrap().len(), 1);
        let later = t0 + chrono::Duration::seconds(100);
        assert!(sources.lookup(OnCallService::PagerDuty, &q, later).await.unwrap().is_empty(), "shift ended");
        assert_eq!(port.0.load(Ordering::SeqCst), 1, "second lookup came from the cache");
        sources.lookup(OnCallService::PagerDuty, &q, t0 + chrono::Duration::seconds(121)).await.unwrap();
        assert_eq!(port.0.load(Ordering::SeqCst), 2, "the TTL is over: asked again");
        let err = sources.lookup(OnCallService::Opsgenie, &q, t0).await.unwrap_err();
        assert!(err.0.contains("Opsgenie is not configured"));
    }
}
