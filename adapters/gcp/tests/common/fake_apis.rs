//! The fake's Resource Manager IAM policy methods and Cloud Identity group memberships (see
//! `fake.rs` for what is modelled).

use super::fake::{Inner, Member, Policy, error, ok};
use axum::{http::Method, response::Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};

fn etag(n: u64) -> String {
    STANDARD.encode(format!("etag-{n}"))
}

fn policy_json(p: &Policy, requested: i64) -> Value {
    let conditional = p.bindings.iter().any(|b| b.get("condition").is_some());
    let bindings: Vec<Value> = if conditional && requested < 3 {
        // What a version-1 reader sees of a conditional policy.
        p.bindings
            .iter()
            .map(|b| match b.get("condition") {
                None => b.clone(),
                Some(c) => {
                    let tag = STANDARD.encode(c.to_string()).chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect::<String>();
                    json!({ "role": format!("{}_withcond_{tag}", b["role"].as_str().unwrap_or("")), "members": b["members"] })
                }
            })
            .collect()
    } else {
        p.bindings.clone()
    };
    let mut v = json!({ "version": if conditional && requested < 3 { 1 } else { p.version }, "etag": etag(p.etag) });
    if !bindings.is_empty() {
        v["bindings"] = Value::Array(bindings);
    }
    if let Some(a) = &p.audit_configs {
        v["auditConfigs"] = a.clone();
    }
    v
}

fn check_binding(b: &Value) -> Result<(), String> {
    if b["role"].as_str().is_none_or(str::is_empty) {
        return Err("Role is required in a binding.".into());
    }
    if !b["members"].as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)) {
        return Err("A binding must have at least one member.".into());
    }
    if let Some(c) = b.get("condition") {
        if ["roles/owner", "roles/editor", "roles/viewer"].contains(&b["role"].as_str().unwrap_or("")) {
            return Err("Conditions are not supported for basic roles.".into());
        }
        if b["members"].as_array().is_some_and(|m| m.iter().any(|m| m == "allUsers" || m == "allAuthenticatedUsers")) {
            return Err("Conditions are not supported for allUsers or allAuthenticatedUsers.".into());
        }
        let title = c["title"].as_str().unwrap_or("");
        if title.is_empty() || title.len() > 100 {
            return Err("Condition title is required and at most 100 characters.".into());
        }
        if c["description"].as_str().is_some_and(|d| d.len() > 256) {
            return Err("Condition description is at most 256 characters.".into());
        }
        if c["expression"].as_str().is_none_or(str::is_empty) {
            return Err("Condition expression is required.".into());
        }
    }
    Ok(())
}

pub(super) fn iam(s: &mut Inner, method: &Method, rest: &str, body: &Value) -> Response {
    let Some((resource, verb)) = rest.rsplit_once(':') else {
        return error(404, "NOT_FOUND", "no such method");
    };
    let kind_ok = matches!(resource.split_once('/'), Some(("projects" | "folders" | "organizations", id)) if !id.is_empty() && !id.contains('/'));
    if method != Method::POST || !kind_ok {
        return error(404, "NOT_FOUND", "no such method");
    }
    let Some(p) = s.policies.get_mut(resource) else {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!("The caller does not have permission on {resource}, or it does not exist."),
        );
    };
    match verb {
        "getIamPolicy" => {
            let requested = body["options"]["requestedPolicyVersion"].as_i64().unwrap_or(1);
            if ![0, 1, 3].contains(&requested) {
                return error(400, "INVALID_ARGUMENT", "Invalid requestedPolicyVersion.");
            }
            ok(policy_json(p, requested))
        }
        "setIamPolicy" => {
            if let Some(b) = s.outside_changes.get_mut(resource).and_then(VecDeque::pop_front) {
                let p = s.policies.get_mut(resource).unwrap();
                p.bindings.push(b);
                p.version = 3;
                p.etag += 1;
            }
            let p = s.policies.get_mut(resource).unwrap();
            let new = &body["policy"];
            if let Some(e) = new["etag"].as_str()
                && e != etag(p.etag)
            {
                return error(
                    409,
                    "ABORTED",
                    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
                );
            }
            let bindings: Vec<Value> = new["bindings"].as_array().cloned().unwrap_or_default();
            if let Some(e) = bindings.iter().find_map(|b| check_binding(b).err()) {
                return error(400, "INVALID_ARGUMENT", &e);
            }
            let conditional = bindings.iter().any(|b| b.get("condition").is_some());
            let version = new["version"].as_i64().unwrap_or(1);
            if conditional && version != 3 {
                return error(
                    400,
                    "INVALID_ARGUMENT",
                    "Policies with conditional role bindings must specify version 3.",
                );
            }
            p.bindings = bindings;
            p.version = if conditional { 3 } else { version.max(1) };
            if new.get("auditConfigs").is_some() {
                p.audit_configs = Some(new["auditConfigs"].clone());
            }
            p.etag += 1;
            ok(policy_json(p, 3))
        }
        _ => error(404, "NOT_FOUND", "no such method"),
    }
}

fn membership_json(group: &str, m: &Member) -> Value {
    let mut role = json!({ "name": "MEMBER" });
    if let Some(e) = m.expires {
        role["expiryDetail"] = json!({ "expireTime": e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
    }
    json!({
        "name": format!("{group}/memberships/{}", m.id),
        "preferredMemberKey": { "id": m.email },
        "roles": [role],
        "type": "USER",
        "createTime": m.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// A role's expiry; the error is the INVALID_ARGUMENT message.
fn parse_expiry(role: &Value, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, &'static str> {
    let Some(t) = role["expiryDetail"]["expireTime"].as_str() else { return Ok(None) };
    let t = DateTime::parse_from_rfc3339(t).map_err(|_| "Invalid expireTime.")?.with_timezone(&Utc);
    if t <= now {
        return Err("Error(3005): Membership expiry time must be in the future.");
    }
    Ok(Some(t))
}

pub(super) fn groups(
    s: &mut Inner,
    method: &Method,
    rest: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Response {
    let now = s.now();
    if rest == "groups:lookup" && method == Method::GET {
        let email = query.get("groupKey.id").cloned().unwrap_or_default();
        return match s.groups.iter().find(|(_, g)| g.email == email) {
            Some((name, _)) => ok(json!({ "name": name })),
            None => error(404, "NOT_FOUND", "Error(2028): Group not found."),
        };
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let (group, tail) = match segs.as_slice() {
        ["groups", id, tail @ ..] if !tail.is_empty() => (format!("groups/{id}"), tail.to_vec()),
        _ => return error(404, "NOT_FOUND", "no such method"),
    };
    let Some(g) = s.groups.get_mut(&group) else {
        return error(
            403,
            "PERMISSION_DENIED",
            "Error(2028): Permission denied for resource groups or it may not exist.",
        );
    };
    match (method.clone(), tail.as_slice()) {
        (Method::GET, ["memberships:lookup"]) => {
            let email = query.get("memberKey.id").cloned().unwrap_or_default();
            match g.members.iter().find(|m| m.email == email) {
                Some(m) => ok(json!({ "name": format!("{group}/memberships/{}", m.id) })),
                None => error(404, "NOT_FOUND", "Error(4003): Cannot find membership."),
            }
        }
        (Method::GET, ["memberships"]) => {
            let size: usize = query.get("pageSize").and_then(|p| p.parse().ok()).unwrap_or(200).clamp(1, 1000);
            let start: usize = query.get("pageToken").and_then(|p| p.parse().ok()).unwrap_or(0);
            let page: Vec<Value> =
                g.members.iter().skip(start).take(size).map(|m| membership_json(&group, m)).collect();
            let mut v = json!({ "memberships": page });
            if start + size < g.members.len() {
                v["nextPageToken"] = json!((start + size).to_string());
            }
            ok(v)
        }
        (Method::POST, ["memberships"]) => {
            let email = body["preferredMemberKey"]["id"].as_str().unwrap_or("").to_string();
            if !email.contains('@') {
                return error(400, "INVALID_ARGUMENT", "preferredMemberKey.id is required.");
            }
            if g.members.iter().any(|m| m.email == email) {
                return error(409, "ALREADY_EXISTS", "Error(4003): Member already exists.");
            }
            let roles = body["roles"].as_array().cloned().unwrap_or_default();
            let member_role =
                roles.iter().find(|r| r["name"] == "MEMBER").cloned().unwrap_or(json!({ "name": "MEMBER" }));
            let expires = match parse_expiry(&member_role, now) {
                Ok(e) => e,
                Err(m) => return error(400, "INVALID_ARGUMENT", m),
            };
            let id = format!("0m{}", s.next_id);
            s.next_id += 1;
            let m = Member { id, email, expires, created: now };
            let g = s.groups.get_mut(&group).unwrap();
            let json = membership_json(&group, &m);
            g.members.push(m);
            ok(json!({ "done": true, "response": json }))
        }
        (Method::GET, ["memberships", id]) => match g.members.iter().find(|m| m.id == *id) {
            Some(m) => ok(membership_json(&group, m)),
            None => error(404, "NOT_FOUND", "Error(4003): Cannot find membership."),
        },
        (Method::DELETE, ["memberships", id]) => match g.members.iter().position(|m| m.id == *id) {
            Some(i) => {
                g.members.remove(i);
                ok(json!({ "done": true, "response": { "@type": "type.googleapis.com/google.protobuf.Empty" } }))
            }
            None => error(404, "NOT_FOUND", "Error(4003): Cannot find membership."),
        },
        (Method::POST, ["memberships", id_verb]) if id_verb.ends_with(":modifyMembershipRoles") => {
            let id = id_verb.trim_end_matches(":modifyMembershipRoles");
            let Some(m) = g.members.iter_mut().find(|m| m.id == id) else {
                return error(404, "NOT_FOUND", "Error(4003): Cannot find membership.");
            };
            let params = body["updateRolesParams"].as_array().cloned().unwrap_or_default();
            let [p] = params.as_slice() else {
                return error(400, "INVALID_ARGUMENT", "updateRolesParams must have one entry for MEMBER.");
            };
            let mask = p["fieldMask"].as_str().unwrap_or("");
            if !["expiryDetail.expireTime", "expiry_detail.expire_time"].contains(&mask)
                || p["membershipRole"]["name"] != "MEMBER"
            {
                return error(
                    400,
                    "INVALID_ARGUMENT",
                    "Only expiry_detail.expire_time of the MEMBER role can be updated.",
                );
            }
            match parse_expiry(&p["membershipRole"], now) {
                Ok(e) => m.expires = e,
                Err(msg) => return error(400, "INVALID_ARGUMENT", msg),
            }
            let json = membership_json(&group, m);
            ok(json!({ "membership": json }))
        }
        _ => error(404, "NOT_FOUND", "no such method"),
    }
}
