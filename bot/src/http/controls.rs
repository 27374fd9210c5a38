//! `/api/v1/breakglass` and `/api/v1/lockdowns`: the emergency path and the kill switch.

use super::{ApiError, AppState, Authenticated, api::view};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use elevate_core::request::Source;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakglassBody {
    role: String,
    duration: String,
    justification: String,
}

pub async fn breakglass(
    State(st): State<AppState>,
    who: Authenticated,
    raw: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: BreakglassBody = super::api::body(&raw)?;
    let req = st
        .service
        .breakglass(&who.caller, &b.role, &b.duration, &b.justification, Source::api(&who.token_name))
        .await?;
    Ok((StatusCode::CREATED, Json(view(&req, &st.service.policy()))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockdownBody {
    /// A role name or `all`.
    scope: String,
    reason: String,
    #[serde(default)]
    blocks_breakglass: bool,
}

pub async fn lockdown(State(st): State<AppState>, who: Authenticated, raw: Bytes) -> Result<Json<Value>, ApiError> {
    let b: LockdownBody = super::api::body(&raw)?;
    let report = st.service.lockdown(&who.caller, &b.scope, &b.reason, b.blocks_breakglass).await?;
    Ok(Json(json!(report)))
}

pub async fn unlock(
    State(st): State<AppState>,
    who: Authenticated,
    Path(scope): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.service.unlock(&who.caller, &scope).await?;
    Ok(Json(json!({ "unlocked": scope })))
}

pub async fn lockdowns(State(st): State<AppState>, _who: Authenticated) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "lockdowns": st.service.lockdowns().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillBody {
    role: String,
    hold: Option<String>,
}

pub async fn drill(State(st): State<AppState>, who: Authenticated, raw: Bytes) -> Result<impl IntoResponse, ApiError> {
    let b: DrillBody = super::api::body(&raw)?;
    let req = st.service.drill(&who.caller, &b.role, b.hold.as_deref(), Source::api(&who.token_name)).await?;
    Ok((StatusCode::CREATED, Json(view(&req, &st.service.policy()))))
}

pub async fn drill_report(
    State(st): State<AppState>,
    _who: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = elevate_core::RequestId::parse(&id).map_err(elevate_core::UserError::invalid)?;
    Ok(Json(json!(st.service.drill_report(id).await?)))
}

/// Re-reads the config file (security team): 200 with what changed, 422 naming every problem
/// of an invalid config (the running policy stays).
pub async fn reload(State(st): State<AppState>, who: Authenticated) -> Result<axum::response::Response, ApiError> {
    use crate::reload::ReloadError;
    match st.reloader.reload(Some(&who.caller)).await {
        Ok(done) => Ok(Json(json!(done)).into_response()),
        Err(ReloadError::Invalid(problems)) => {
            let list: Vec<Value> = problems.iter().map(|p| json!({ "path": p.path, "message": p.message })).collect();
            let body = json!({ "error": {
                "code": "invalid_config",
                "message": format!("The config has {} problem(s); the running policy is unchanged.", list.len()),
                "problems": list,
            } });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
        Err(ReloadError::Refused(e)) => Err(e.into()),
    }
}
