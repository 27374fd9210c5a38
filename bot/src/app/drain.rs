//! The graceful shutdown (`App::drain`): what `serve` does between the first SIGTERM and exit.

use super::App;
use crate::feed::Mode;
use std::time::Duration;
use tracing::info;

/// How long HTTP connections may take to close after the drain.
pub(super) const HTTP_CLOSE: Duration = Duration::from_secs(3);
/// Time given to delivering chat notices after the drain, even when the items used it all.
const FLUSH_MIN: Duration = Duration::from_secs(2);

/// What a graceful shutdown did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    pub items: crate::leases::DrainReport,
    /// Chat notices and feed events not delivered in time (delivered after the next start, or
    /// by another replica).
    pub notices_left: usize,
}

impl App {
    /// A graceful shutdown's work, once a signal came: stop claiming, let the items running
    /// finish within `[scheduler] drain_timeout`, release the leases of those that did not (so
    /// another replica runs them at once), deliver the chat notices and feed events still
    /// waiting with what is left of the time, and say in one log line what became of it all.
    pub async fn drain(&mut self) -> Drained {
        let began = tokio::time::Instant::now();
        let budget = self.config.scheduler.drain_duration();
        let since = self.scheduler.finished_so_far();
        self.ready.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        // The claim loop returns at its next turn (a claim in progress finishes, and what it
        // claimed starts, and is drained with the rest).
        if let Some(l) = self.claim_loop.take() {
            let abort = l.abort_handle();
            if tokio::time::timeout(budget, l).await.is_err() {
                // Stuck in a claim (the database not answering): what it claims now would
                // start after the drain, so it claims nothing more.
                abort.abort();
            }
        }
        let items = self.scheduler.drain(budget.saturating_sub(began.elapsed()), since).await;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        // The delivery loops and a periodic job in progress end their current step.
        let rest_until = tokio::time::Instant::now() + budget.saturating_sub(began.elapsed()).max(FLUSH_MIN);
        for t in self.tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(rest_until, t).await.is_err() {
                abort.abort();
            }
        }
        let notices_left = self.flush(rest_until).await;
        let released: Vec<String> = items
            .released
            .iter()
            .map(|r| match r.request {
                Some(req) => format!("{}:{}#{}", r.kind.as_str(), req.0, r.id),
                None => format!("{}#{}", r.kind.as_str(), r.id),
            })
            .collect();
        info!(
            finished = items.finished,
            released = released.len(),
            released_items = %released.join(","),
            leases_released = items.unleased,
            notices_left,
            took_ms = began.elapsed().as_millis() as u64,
            "drained: exiting"
        );
        Drained { items, notices_left }
    }

    /// Delivers what notifiers and feed channels still hold until none is left or `until`;
    /// returns how many wait still.
    async fn flush(&self, until: tokio::time::Instant) -> usize {
        let mut waiting = 0;
        loop {
            match tokio::time::timeout_at(until, self.delivery.step(Mode::Paced)).await {
                Ok(p) => {
                    waiting = p.waiting;
                    if p.waiting == 0 {
                        return 0;
                    }
                    let Some(wake) = p.wake else { return waiting };
                    // The next message may go now (a channel without a posting rate, like the
                    // log, posts one per step) or after the channel's pause or backoff.
                    let wait = (wake - self.clock.now()).to_std().unwrap_or_default();
                    if tokio::time::Instant::now() + wait >= until {
                        return waiting;
                    }
                    if wait.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(_) => return waiting.max(1),
            }
        }
    }
}
