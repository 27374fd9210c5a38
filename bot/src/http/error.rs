//! API errors: a user error becomes a 4xx with a JSON body naming the problem; a database out of
//! reach is a 503 with `Retry-After` saying nothing was changed; anything else is logged with a
//! reference and answered with a 500 that carries only that reference.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use elevate_core::{CoreError, UserError, error::ErrorCode};
use serde_json::json;

pub enum ApiError {
    User(UserError),
    /// The database cannot be reached: 503 with `Retry-After`, and the detail only in the log.
    Unavailable(String),
    Internal(String),
}

/// Seconds a client is told to wait before trying again while the database is away.
pub const RETRY_AFTER_SECS: u32 = 5;

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        ApiError::User(e)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::User(u) => ApiError::User(u),
            CoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<elevate_core::ports::StoreError> for ApiError {
    fn from(e: elevate_core::ports::StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(format!("store: {e}"))
        }
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::RuleDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::User(e) => {
                let mut error = json!({ "code": e.code, "message": e.message });
                if let Some(field) = e.field {
                    error["field"] = json!(field);
                }
                (status_of(e.code), Json(json!({ "error": error }))).into_response()
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "API call refused: the database cannot be reached");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
                    Json(json!({ "error": { "code": "unavailable", "message": elevate_core::error::UNAVAILABLE } })),
                )
                    .into_response()
            }
            ApiError::Internal(detail) => {
                let reference = format!("{:016x}", rand::random::<u64>());
                tracing::error!(reference, error = %detail, "internal error answering an API call");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": { "code": "internal", "message": format!("Internal error (reference {reference}); nothing you sent was at fault.") } })),
                )
                    .into_response()
            }
        }
    }
}
