//! Replicas that wake each other (PostgreSQL `LISTEN`/`NOTIFY`). A write that makes work due
//! soon notifies the channel in its own transaction (PostgreSQL delivers a notification at
//! commit, and only if the transaction commits); every replica listens on a connection of its
//! own and hands what it hears to its scheduler through core's `DueSignal` port. A replica
//! ignores its own notifications: its scheduler was already woken in-process.
//!
//! Notifications are hints. One sent while a listener was reconnecting is lost, and the
//! scheduler's poll interval finds that work instead.

use elevate_core::{ports::DueSignal, time::from_millis};
use sqlx::{PgPool, postgres::PgListener};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// The channel elevate's replicas notify and listen on.
pub(crate) const CHANNEL: &str = "elevate_due";

/// Work due later than this after the write is not signalled: every scheduler looks at the
/// database at least this often (its poll interval, 5 s by default, is below it), so it finds
/// that work in time by itself, and a write that schedules only far-off work (a new request's
/// pending timeout) costs no notification.
pub(crate) const SIGNAL_WITHIN_MS: i64 = 10_000;

/// The notification's payload: when the work is due (milliseconds) and who sent it.
pub(crate) fn payload(at: i64, instance: &str) -> String {
    format!("{at} {instance}")
}

/// Whether work first due at `at` is worth a signal from a write made at `now`.
pub(crate) fn worth_signal(at: i64, now: i64) -> bool {
    at <= now + SIGNAL_WITHIN_MS
}

/// An identity for this store's notifications, different in every store opened (two replicas
/// in one test process included).
pub(crate) fn instance_id() -> Arc<str> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let n = OPENED.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{nanos:x}-{n}", std::process::id()).into()
}

/// Signals heard and not yet taken: the earliest due time among them.
#[derive(Default)]
struct Heard {
    earliest: Mutex<Option<i64>>,
    notify: Notify,
}

/// `DueSignal` from PostgreSQL notifications (see the module's notes).
pub struct PgDueSignal(Arc<Heard>);

impl PgDueSignal {
    /// Starts listening on a connection of its own (on the current tokio runtime); the
    /// listener stops once this signal is dropped and the next notification arrives.
    pub(crate) fn start(pool: &PgPool, instance: Arc<str>) -> PgDueSignal {
        let heard = Arc::new(Heard::default());
        tokio::spawn(listen(pool.clone(), instance, Arc::downgrade(&heard)));
        PgDueSignal(heard)
    }
}

async fn listen(pool: PgPool, instance: Arc<str>, heard: Weak<Heard>) {
    let mut listener = loop {
        let connected = match PgListener::connect_with(&pool).await {
            Ok(mut l) => l.listen(CHANNEL).await.map(|()| l),
            Err(e) => Err(e),
        };
        match connected {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' due work; retrying (polling meanwhile)");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
        if heard.strong_count() == 0 {
            return;
        }
    };
    loop {
        // `recv` reconnects (and listens again) after a lost connection.
        match listener.recv().await {
            Ok(n) => {
                let Some(heard) = heard.upgrade() else { return };
                let mut parts = n.payload().split(' ');
                let (Some(Ok(at)), Some(from)) = (parts.next().map(str::parse::<i64>), parts.next()) else {
                    continue;
                };
                if from == &*instance {
                    continue;
                }
                let mut earliest = heard.earliest.lock().expect("signal state");
                *earliest = Some(earliest.map_or(at, |e| e.min(at)));
                drop(earliest);
                heard.notify.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection that listens for other replicas' due work; reconnecting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if heard.strong_count() == 0 {
                    return;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl DueSignal for PgDueSignal {
    async fn next(&self) -> chrono::DateTime<chrono::Utc> {
        loop {
            if let Some(at) = self.0.earliest.lock().expect("signal state").take() {
                return from_millis(at);
            }
            self.0.notify.notified().await;
        }
    }
}
