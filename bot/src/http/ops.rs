//! Health, readiness and metrics.

use super::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse};
use elevate_core::{State as ReqState, ports::Store};
use std::time::Duration;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for the database: a probe must hear "not ready" well within its own
/// timeout (Kubernetes' default is one second), not time out itself.
pub const READY_PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Ready to serve: start-up finished (migrations applied), no shutdown begun, and the database
/// answers in time.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if !st.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting or shutting down\n".to_string());
    }
    match tokio::time::timeout(READY_PING_TIMEOUT, st.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: database not answering");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n".to_string())
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_PING_TIMEOUT, "readyz: database not answering in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n".to_string())
        }
    }
}

/// Prometheus text format. Shared state is read from the database now; a database that does
/// not answer leaves those series at their last value and says so in the log.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let now = st.service.now();
    let m = &st.metrics;
    match st.store.count_by_state().await {
        Ok(counts) => {
            let n = |s: ReqState| counts.iter().find(|(st, _)| *st == s).map(|(_, n)| *n).unwrap_or(0);
            for s in ReqState::ALL {
                m.requests.with_label_values(&[s.as_str()]).set(n(s));
                let by_outcome = if s.is_final() { &m.finished } else { &m.open };
                by_outcome.with_label_values(&[s.as_str()]).set(n(s));
            }
            m.grants_active.set(n(ReqState::Active) + n(ReqState::Revoking));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count requests"),
    }
    if let Ok((due, oldest)) = st.store.overdue(now).await {
        let lag = oldest.map(|o| (now - o).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0).max(0.0);
        m.due_items.set(due);
        m.lag.set(lag);
    }
    let mut out = String::new();
    m.render(&mut out);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
