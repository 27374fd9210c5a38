//! The HTTP server: the REST API, health and metrics. Chat platforms' endpoints are merged in by
//! their adapters.

pub mod access;
mod api;
mod controls;
mod error;
pub mod limits;
mod ops;

pub use error::ApiError;

use crate::metrics::Metrics;
use axum::{
    Router,
    http::{HeaderMap, request::Parts},
    routing::{get, post},
};
use elevate_core::{Service, UserError, policy::Caller};
use elevate_sql::SqlStore;
use sha2::{Digest, Sha256};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub store: SqlStore,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub reloader: Arc<crate::reload::Reloader>,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/api/v1/requests", post(api::create).get(api::list))
        .route("/api/v1/requests/{id}", get(api::show))
        .route("/api/v1/requests/{id}/{action}", post(api::act))
        .route("/api/v1/grants", get(api::grants))
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/admin/reload", post(controls::reload))
        .route("/api/v1/breakglass", post(controls::breakglass))
        .route("/api/v1/drills", post(controls::drill))
        .route("/api/v1/drills/{id}", get(controls::drill_report))
        .route("/api/v1/lockdowns", post(controls::lockdown).get(controls::lockdowns))
        .route("/api/v1/lockdowns/{scope}", axum::routing::delete(controls::unlock))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state);
    limits::limited(router, limits::API_BODY_MAX)
}

/// SHA-256 of an API token, hex, as stored in the policy.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The person behind the bearer token. The actor of every API call is this person, never a field
/// of the body.
pub struct Authenticated {
    pub caller: Caller,
    pub token_name: String,
}

impl axum::extract::FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, &state.service)
    }
}

fn authenticate(headers: &HeaderMap, service: &Service) -> Result<Authenticated, ApiError> {
    authenticated(headers, service).inspect_err(|e| {
        if let ApiError::User(u) = e {
            // Refused authentication is logged (never the token): repeated ones are an attack.
            tracing::warn!(target: "elevate::auth", why = %u.message, "API authentication refused");
        }
    })
}

fn authenticated(headers: &HeaderMap, service: &Service) -> Result<Authenticated, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| UserError::unauthenticated("Missing `Authorization: Bearer <token>` header."))?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| UserError::unauthenticated("The Authorization header must be `Bearer <token>`."))?;
    let policy = service.policy();
    let found = policy
        .person_by_token_hash(&token_hash(token))
        .ok_or_else(|| UserError::unauthenticated("Unknown or revoked API token."))?;
    Ok(Authenticated { caller: Caller::person(found.person.clone()), token_name: found.name.clone() })
}
