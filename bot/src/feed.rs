//! The audit feed: every notifier (the log, Slack, Discord) reads the audit log in `seq` order
//! from its own cursor in the store. A crash or a chat outage delays lines but loses none;
//! delivery is at least once.

use elevate_core::{
    Request, RequestId,
    ports::{Notifier, RequestQuery, Store},
    render::feed_line,
};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

/// Attempts at one event before a notifier skips it, so one unrenderable event cannot block a
/// channel forever. Skips are logged as errors.
const MAX_ATTEMPTS: u32 = 8;

/// Writes each event as one log line: the audit feed when no chat platform is configured.
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &str {
        "log"
    }

    async fn deliver(
        &self,
        event: &elevate_core::audit::AuditEvent,
        request: Option<&elevate_core::Request>,
    ) -> Result<(), String> {
        info!(target: "elevate::audit_feed", seq = event.seq, kind = %event.kind, "{}", feed_line(event, request));
        Ok(())
    }
}

/// Delivers new events to one notifier, forever.
pub async fn run_feed(
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    poke: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cursor_name = format!("feed:{}", notifier.name());
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let delivered = deliver_batch(store.as_ref(), notifier.as_ref(), &cursor_name, &mut failures).await;
        let wait = match delivered {
            Ok(n) if n > 0 => continue,
            Ok(_) => Duration::from_millis(500),
            Err(e) => {
                warn!(notifier = notifier.name(), error = %e, "audit feed delivery failed; retrying");
                Duration::from_millis(500 * u64::from(failures.min(8)).max(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = poke.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Delivers up to one page of events after the notifier's cursor; returns how many. The cursor
/// is written once per page (and before a failure is returned), not per event: one write per
/// event per notifier was most of the database's write load under a burst of commands. After a
/// crash at most one page is delivered again, which delivery already allows (at least once;
/// cards are re-rendered in place, so only a DM can repeat).
pub async fn deliver_batch(
    store: &dyn Store,
    notifier: &dyn Notifier,
    cursor_name: &str,
    failures: &mut u32,
) -> Result<usize, String> {
    let after = store.cursor(cursor_name).await.map_err(|e| e.to_string())?;
    let events = store.events(after, 100).await.map_err(|e| e.to_string())?;
    // The page's requests in one read, not one per event: under load every notifier reads
    // every event, and per-event reads were a large share of the database's work.
    let mut ids: Vec<RequestId> = events.iter().filter_map(|e| e.subject.map(RequestId)).collect();
    ids.sort();
    ids.dedup();
    let requests: HashMap<RequestId, Request> = if ids.is_empty() {
        HashMap::new()
    } else {
        let q = RequestQuery { limit: Some(ids.len() as u32), ids, ..RequestQuery::default() };
        store.list_requests(&q).await.map_err(|e| e.to_string())?.into_iter().map(|r| (r.id, r)).collect()
    };
    let mut delivered = after;
    let mut n = 0;
    let mut result = Ok(());
    for ev in &events {
        let req = ev.subject.and_then(|id| requests.get(&RequestId(id)));
        if let Err(e) = notifier.deliver(ev, req).await {
            *failures += 1;
            if *failures < MAX_ATTEMPTS {
                result = Err(e);
                break;
            }
            error!(notifier = notifier.name(), seq = ev.seq, error = %e, "giving up on delivering this event");
        }
        *failures = 0;
        delivered = ev.seq;
        n += 1;
    }
    if delivered > after {
        store.set_cursor(cursor_name, delivered).await.map_err(|e| e.to_string())?;
    }
    result.map(|()| n)
}
