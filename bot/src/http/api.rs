//! `/api/v1`: requests and grants. Bodies are JSON with unknown fields refused (so a body that
//! tries to name its own actor is an error, not silently ignored).

use super::{ApiError, AppState, Authenticated};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use elevate_core::{
    PersonId, Policy, Request, RequestId, RoleName, State as ReqState, UserError,
    ports::RequestQuery,
    request::{RequestKind, Source},
    schedule::StartSpec,
    service::RequestInput,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Parses a JSON body with a message that names the problem.
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| UserError::invalid(format!("Invalid JSON body: {e}")).into())
}

fn request_id(s: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(s).map_err(|e| UserError::invalid(e).into())
}

/// The JSON shape of a request, shared by every endpoint that returns one.
pub fn view(req: &Request, policy: &Policy) -> Value {
    let threshold = req.threshold(policy);
    json!({
        "id": req.id.0,
        "kind": req.kind.as_str(),
        "extends": req.kind.parent().map(|p| p.0),
        "role": req.role,
        "requester": req.requester,
        "requester_kind": if policy.person(&req.requester).is_some_and(|p| p.is_service()) { "service" } else { "person" },
        "duration": req.duration.to_string(),
        "reason": req.reason,
        "ticket": req.ticket,
        "state": req.state.as_str(),
        "source": req.source,
        "created_at": req.created_at,
        "granted_at": req.granted_at,
        "expires_at": req.expires_at,
        "ending": req.ending.map(|e| e.as_str()),
        "approvals": req.approvals.iter().map(|a| json!({ "approver": a.approver, "at": a.at })).collect::<Vec<_>>(),
        "approvals_required": threshold.required,
        "approvals_credited": threshold.credited,
        "approvals_missing": (req.state == ReqState::Pending).then(|| threshold.missing(req.approvals.len())),
        "closed_by": req.closed_by,
        "note": req.note,
        "dry_run": req.is_dry_run(),
        "extra_approvals": req.extra_approvals,
        "rules": req.rules,
        "review": req.review,
        "batch": req.batch.map(|b| b.lead().0),
        "starts_at": req.starts_at,
    })
}

/// `view`, plus for a request of several roles every role's request as `members` (the
/// request's number is the first one's, `batch`).
async fn view_with_batch(svc: &elevate_core::Service, req: &Request) -> Result<Value, ApiError> {
    let policy = svc.policy();
    let mut v = view(req, &policy);
    if req.batch.is_some() {
        let members = svc.with_batch(req).await?;
        v["members"] = json!(members.iter().map(|m| view(m, &policy)).collect::<Vec<_>>());
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// One role, a bundle, or roles separated by commas.
    #[serde(default)]
    role: Option<String>,
    /// Several roles (or bundles) as a list: the same as `role` with commas.
    #[serde(default)]
    roles: Vec<String>,
    /// Scheduled access: RFC 3339, or `2026-12-05 22:00 Europe/Berlin`.
    starts_at: Option<String>,
    /// Scheduled access: a duration from now, `3h`.
    starts_in: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    reason: String,
    ticket: Option<String>,
}

pub async fn create(State(st): State<AppState>, who: Authenticated, raw: Bytes) -> Result<impl IntoResponse, ApiError> {
    let b: CreateBody = body(&raw)?;
    let role = match (b.role, b.roles.is_empty()) {
        (Some(r), true) => r,
        (None, false) => b.roles.join(","),
        (Some(_), false) => return Err(UserError::invalid("Give either `role` or `roles`, not both.").into()),
        (None, true) => return Err(UserError::invalid("Missing `role` (or `roles`, a list of roles).").into()),
    };
    let start = match (b.starts_at, b.starts_in) {
        (Some(_), Some(_)) => {
            return Err(UserError::invalid("Give either `starts_at` or `starts_in`, not both.").into());
        }
        (Some(at), None) => Some(StartSpec::At(at)),
        (None, Some(d)) => Some(StartSpec::In(d)),
        (None, None) => None,
    };
    let input = RequestInput {
        start,
        role,
        duration: b.duration,
        reason: b.reason,
        ticket: b.ticket,
        source: Source::api(&who.token_name),
    };
    let req = st.service.request(&who.caller, input).await?;
    Ok((StatusCode::CREATED, Json(view_with_batch(&st.service, &req).await?)))
}

pub async fn show(
    State(st): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let req = st.service.get_for(&who.caller, request_id(&id)?).await?;
    Ok(Json(view_with_batch(&st.service, &req).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActBody {
    reason: Option<String>,
    duration: Option<String>,
    note: Option<String>,
}

pub async fn act(
    State(st): State<AppState>,
    who: Authenticated,
    Path((id, action)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = request_id(&id)?;
    let b: ActBody = body(&raw)?;
    let svc = &st.service;
    let c = &who.caller;
    let reason = || b.reason.clone().unwrap_or_default();
    let out = match action.as_str() {
        "approve" => {
            let o = svc.approve(c, id).await?;
            let mut v = view_with_batch(svc, &o.request).await?;
            v["approvals_count"] = json!(o.approvals);
            if !o.batch.is_empty() {
                v["approved"] = json!(o.approved.iter().map(|r| r.0).collect::<Vec<_>>());
            }
            v
        }
        "deny" => view_with_batch(svc, &svc.deny(c, id, &reason()).await?).await?,
        "cancel" => view_with_batch(svc, &svc.cancel(c, id).await?).await?,
        "review" => view(&svc.review(c, id, b.note.as_deref().unwrap_or("")).await?, &svc.policy()),
        "revoke" => view(&svc.revoke(c, id, &reason()).await?, &svc.policy()),
        "release" => view(&svc.release(c, id).await?, &svc.policy()),
        "extend" => {
            let d = b.duration.clone().ok_or_else(|| UserError::invalid("extend needs a `duration`, like \"1h\"."))?;
            let o = svc.extend(c, id, &d, b.reason.as_deref()).await?;
            view(&o.extension, &svc.policy())
        }
        other => {
            return Err(UserError::not_found(format!(
                "Unknown action `{}`: use approve, deny, cancel, revoke, release, extend or review.",
                other.chars().take(40).collect::<String>()
            ))
            .into());
        }
    };
    Ok(Json(out))
}

fn parse_query(q: &HashMap<String, String>, allowed: &[&str]) -> Result<RequestQuery, ApiError> {
    let mut out = RequestQuery::default();
    for (k, v) in q {
        if !allowed.contains(&k.as_str()) {
            return Err(
                UserError::invalid(format!("Unknown query parameter `{k}` (known: {}).", allowed.join(", "))).into()
            );
        }
        match k.as_str() {
            "state" => {
                for s in v.split(',') {
                    out.states
                        .push(ReqState::parse(s).ok_or_else(|| UserError::invalid(format!("Unknown state `{s}`.")))?);
                }
            }
            "requester" => out.requester = Some(PersonId::parse(v).map_err(UserError::invalid)?),
            "role" => out.role = Some(RoleName::parse(v).map_err(UserError::invalid)?),
            "limit" => {
                out.limit = Some(v.parse().map_err(|_| UserError::invalid("limit must be a number from 1 to 10000"))?)
            }
            _ => {}
        }
    }
    Ok(out)
}

pub async fn list(
    State(st): State<AppState>,
    who: Authenticated,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut query = parse_query(&q, &["state", "requester", "role", "limit", "mine"])?;
    if q.get("mine").is_some_and(|v| v == "true") {
        query.requester = Some(who.caller.person.clone());
    }
    let reqs = st.store_list(&query).await?;
    let policy = st.service.policy();
    let seen = reqs.iter().filter(|r| policy.may_see(&who.caller, r));
    Ok(Json(json!({ "requests": seen.map(|r| view(r, &policy)).collect::<Vec<_>>() })))
}

pub async fn grants(
    State(st): State<AppState>,
    who: Authenticated,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let active = match q.get("active").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(UserError::invalid(format!("active must be true or false, not `{other}`")).into());
        }
    };
    let mut query = parse_query(&q, &["active", "requester", "role", "limit"])?;
    query.states = if active {
        vec![ReqState::Active, ReqState::Revoking]
    } else {
        vec![ReqState::Active, ReqState::Revoking, ReqState::Expired, ReqState::Released, ReqState::Revoked]
    };
    let reqs = st.store_list(&query).await?;
    let policy = st.service.policy();
    let grants: Vec<Value> = reqs
        .iter()
        .filter(|r| !matches!(r.kind, RequestKind::Extension(_)) && policy.may_see(&who.caller, r))
        .map(|r| view(r, &policy))
        .collect();
    Ok(Json(json!({ "grants": grants })))
}

pub async fn whoami(State(st): State<AppState>, who: Authenticated) -> Result<Json<Value>, ApiError> {
    let policy = st.service.policy();
    let requestable = policy.requestable_roles(&who.caller);
    let names: Vec<String> = requestable.iter().map(|r| r.name.to_string()).collect();
    let roles: Vec<Value> = requestable
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "description": r.description,
                "default_duration": r.default_duration.to_string(), "max_duration": r.max_duration.to_string(),
                "approvers": r.approvers.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
                "approvals_required": r.approvals_required, "auto_approve": r.auto_approve,
            })
        })
        .collect();
    Ok(Json(json!({
        "person": who.caller.person, "token": who.token_name, "may_request": names, "roles": roles,
        "security": policy.is_security(&who.caller),
        "service": policy.is_service(&who.caller),
    })))
}

impl AppState {
    async fn store_list(&self, q: &RequestQuery) -> Result<Vec<Request>, ApiError> {
        use elevate_core::ports::Store;
        Ok(self.store.list_requests(q).await?)
    }
}
