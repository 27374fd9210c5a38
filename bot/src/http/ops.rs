//! Health, readiness and metrics.

use super::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse};
use elevate_core::{State as ReqState, ports::Store};
use std::{fmt::Write, time::Duration};

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for the database: a probe must hear "not ready" well within its own
/// timeout (Kubernetes' default is one second), not time out itself.
pub const READY_PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Ready to serve: start-up finished (migrations applied) and the database answers in time.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if !st.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
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

/// Prometheus text format.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let now = st.service.now();
    match st.store.count_by_state().await {
        Ok(counts) => {
            let _ = writeln!(out, "# HELP elevate_requests Requests by state.");
            let _ = writeln!(out, "# TYPE elevate_requests gauge");
            for s in ReqState::ALL {
                let n = counts.iter().find(|(st, _)| *st == s).map(|(_, n)| *n).unwrap_or(0);
                let _ = writeln!(out, "elevate_requests{{state=\"{}\"}} {n}", s.as_str());
            }
            let active: i64 =
                counts.iter().filter(|(s, _)| matches!(s, ReqState::Active | ReqState::Revoking)).map(|(_, n)| n).sum();
            let _ = writeln!(
                out,
                "# HELP elevate_grants_active Grants that currently give access (active or being revoked)."
            );
            let _ = writeln!(out, "# TYPE elevate_grants_active gauge");
            let _ = writeln!(out, "elevate_grants_active {active}");
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count requests"),
    }
    if let Ok((due, oldest)) = st.store.overdue(now).await {
        let lag = oldest.map(|o| (now - o).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0).max(0.0);
        let _ = writeln!(out, "# HELP elevate_scheduler_due_items Due items not yet done.");
        let _ = writeln!(out, "# TYPE elevate_scheduler_due_items gauge");
        let _ = writeln!(out, "elevate_scheduler_due_items {due}");
        let _ = writeln!(out, "# HELP elevate_scheduler_lag_seconds How long the oldest due item has been waiting.");
        let _ = writeln!(out, "# TYPE elevate_scheduler_lag_seconds gauge");
        let _ = writeln!(out, "elevate_scheduler_lag_seconds {lag}");
    }
    st.metrics.render(&mut out);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
