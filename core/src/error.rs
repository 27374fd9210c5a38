//! Errors come in two kinds, kept apart on purpose (as triagebot does): what the person is told,
//! and what only the operator's logs see. A `UserError` names the problem and, where it can, the
//! fix; it never carries internals, secrets or stack traces. Everything else is a `CoreError`
//! that adapters log and answer with a generic "something went wrong" plus a reference.

use serde::Serialize;
use std::fmt;

/// A refusal the person caused and can fix. `code` is stable for API clients; `message` is the
/// sentence shown in chat or in the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserError {
    pub code: ErrorCode,
    pub message: String,
}

/// Stable, machine-readable refusal codes. Adapters map them to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Input could not be parsed or is out of range.
    InvalidInput,
    /// The caller could not be identified (no token, unknown chat user).
    Unauthenticated,
    /// The caller is known but may not do this.
    Forbidden,
    /// The request, role or person does not exist.
    NotFound,
    /// The request is not in a state that allows this (already decided, already approved by you).
    Conflict,
    /// A policy rule refused it.
    RuleDenied,
}

impl UserError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Errors of the machinery: the store, a provider, a notifier. Logged, never shown verbatim.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error("store: {0}")]
    Store(String),
    #[error("{0}")]
    Internal(String),
}

impl CoreError {
    pub fn store(e: impl fmt::Display) -> Self {
        CoreError::Store(e.to_string())
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
