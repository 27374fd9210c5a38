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
    /// The input the refusal is about, when it is about one: a form shows the message under that
    /// field, and API clients get it as `field`. Set where the error is made, never guessed from
    /// the wording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Field>,
}

/// An input of a command or form that a refusal can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Role,
    Duration,
    Reason,
    Ticket,
    /// A request number.
    Id,
    /// A lockdown's scope: a role name or `all`.
    Scope,
    /// A review note.
    Note,
    /// When a scheduled request starts (`at …` or `in …`).
    Start,
}

impl Field {
    /// The name used for the input in forms and options (`role`, `duration`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Role => "role",
            Field::Duration => "duration",
            Field::Reason => "reason",
            Field::Ticket => "ticket",
            Field::Id => "id",
            Field::Scope => "scope",
            Field::Note => "note",
            Field::Start => "start",
        }
    }
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
        Self { code, message: message.into(), field: None }
    }
    /// The same refusal, about `field`.
    pub fn on(mut self, field: Field) -> Self {
        self.field = Some(field);
        self
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
    /// The database cannot be reached (see [`crate::ports::StoreError::unavailable`]).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// What a person is told when the database cannot be reached, in chat and in the API.
pub const UNAVAILABLE: &str =
    "elevate cannot reach its database right now; nothing was changed, try again in a few seconds.";

impl CoreError {
    /// Keeps an unavailable store apart from other store failures.
    pub fn store(e: crate::ports::StoreError) -> Self {
        if e.is_unavailable() { CoreError::Unavailable(e.to_string()) } else { CoreError::Store(e.to_string()) }
    }
    /// Whether the failure is the database being out of reach.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CoreError::Unavailable(_))
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
