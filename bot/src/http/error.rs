//! API errors: a user error becomes a 4xx with a JSON body naming the problem; anything else is
//! logged with a reference and answered with a 500 that carries only that reference.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use elevate_core::{CoreError, UserError, error::ErrorCode};
use serde_json::json;

pub enum ApiError {
    User(UserError),
    Internal(String),
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        ApiError::User(e)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::User(u) => ApiError::User(u),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<elevate_core::ports::StoreError> for ApiError {
    fn from(e: elevate_core::ports::StoreError) -> Self {
        ApiError::Internal(format!("store: {e}"))
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
