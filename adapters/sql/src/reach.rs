//! Answering fast while PostgreSQL is away.
//!
//! With the server stopped, every pool acquire retries its connection until the acquire
//! timeout, so a chat command that touches the store three times would take three timeouts
//! before its answer (and Slack gives up after three seconds). Instead, the first operation that
//! finds the database unreachable marks it *down*; from then on every operation fails at once
//! with an unavailable [`StoreError`], which adapters answer with "cannot reach its database;
//! nothing was changed, try again" (HTTP 503, an ephemeral chat message). While down, one
//! caller at a time, at most every [`PROBE_EVERY`], opens a fresh connection as a probe; when
//! it succeeds the database is up again and that caller's operation goes ahead, so the server
//! recovers by itself without waiting for a timer.
//!
//! A pool that timed out with every connection open and busy is saturated, not down: that
//! caller gets the unavailable answer (it waited its turn), but nobody else is refused for it.

use elevate_core::ports::StoreError;
use sqlx::{ConnectOptions, Connection, PgPool, postgres::PgConnectOptions};
use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How long an operation waits for a pooled connection, including (re)connecting. Bounds the
/// first answer after the database goes away.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);
/// While down: how often a probe may try to connect.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(500);
/// While down: how long a probe waits for a connection (a host that drops packets rather than
/// refusing them).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The pool's size; a pool this full that still timed out is saturated, not down.
pub(crate) const MAX_CONNECTIONS: u32 = 16;

/// Whether PostgreSQL was last found reachable, and the probe that finds it back.
pub(crate) struct Reach {
    opts: PgConnectOptions,
    down: AtomicBool,
    probing: AtomicBool,
    last_probe: Mutex<Instant>,
}

impl Reach {
    pub(crate) fn new(opts: PgConnectOptions) -> Reach {
        Reach {
            opts,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_probe: Mutex::new(Instant::now()),
        }
    }

    fn unavailable() -> StoreError {
        StoreError::unavailable("PostgreSQL cannot be reached (refusing at once until a probe connects)")
    }

    /// Before an operation: go ahead, or fail at once while the database is known to be away.
    pub(crate) async fn enter(&self) -> Result<(), StoreError> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.last_probe.lock().expect("probe time").elapsed() < PROBE_EVERY
            || self.probing.swap(true, Ordering::AcqRel)
        {
            return Err(Self::unavailable());
        }
        let back = match tokio::time::timeout(PROBE_TIMEOUT, self.opts.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                true
            }
            _ => false,
        };
        *self.last_probe.lock().expect("probe time") = Instant::now();
        self.probing.store(false, Ordering::Release);
        if back {
            self.down.store(false, Ordering::Release);
            tracing::info!("PostgreSQL answers again");
            Ok(())
        } else {
            Err(Self::unavailable())
        }
    }

    /// After an operation: marks the database down when the operation could not reach it
    /// (unless the pool is merely saturated), and hands the result back.
    pub(crate) fn observe<T>(&self, pool: &PgPool, out: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &out
            && e.is_unavailable()
            && pool.size() < MAX_CONNECTIONS
        {
            *self.last_probe.lock().expect("probe time") = Instant::now();
            if !self.down.swap(true, Ordering::AcqRel) {
                tracing::warn!(error = %e, "PostgreSQL cannot be reached; answering 'unavailable' at once until it answers again");
            }
        }
        out
    }
}

/// Whether an sqlx error means the database could not be reached (as opposed to a statement
/// that failed): connection refused or reset, TLS, no connection in time, or the server saying
/// it is shutting down, starting, or out of connections.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08…: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
            // 53300: too many connections.
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
