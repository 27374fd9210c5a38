//! Google group memberships (Cloud Identity Groups API v1) with an expiry time, which Google
//! enforces by removing the membership itself.
//!
//! A membership carries no label or description, so it cannot say which grant made it: one
//! membership serves every grant of the same person and group, and its expiry is the latest of
//! their windows. A membership without an expiry is someone's standing access, never elevate's.

use crate::client::{CallError, Client};
use crate::target::rfc3339;
use chrono::{DateTime, Utc};
use elevate_core::ports::ProviderError;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

/// One member's membership of a group, as elevate needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Membership {
    /// `groups/G/memberships/M`.
    pub name: String,
    pub member: String,
    /// `None`: a kind of member elevate never adds (a shared drive, …).
    pub kind: Option<MemberKind>,
    /// `None`: a standing membership.
    pub expires: Option<DateTime<Utc>>,
}

/// What kind of member a membership's `type` says it is, as IAM principals prefix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberKind {
    User,
    ServiceAccount,
    Group,
}

impl MemberKind {
    /// Google's `type` (`USER`, `SERVICE_ACCOUNT`, `GROUP`); memberships that predate the field
    /// carry none and are users.
    fn parse(t: Option<&str>) -> Option<MemberKind> {
        match t {
            None | Some("USER") => Some(MemberKind::User),
            Some("SERVICE_ACCOUNT") => Some(MemberKind::ServiceAccount),
            Some("GROUP") => Some(MemberKind::Group),
            _ => None,
        }
    }

    /// The prefix of the matching IAM principal (`user:alice@example.com`).
    pub fn principal_prefix(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::ServiceAccount => "serviceAccount",
            MemberKind::Group => "group",
        }
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn membership_of(v: &Value) -> Option<Membership> {
    let name = v["name"].as_str()?.to_string();
    let member = v["preferredMemberKey"]["id"].as_str().unwrap_or_default().to_string();
    let roles = v["roles"].as_array().cloned().unwrap_or_default();
    let member_role = roles.iter().find(|r| r["name"] == "MEMBER");
    let expires = member_role
        .and_then(|r| r["expiryDetail"]["expireTime"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let kind = MemberKind::parse(v["type"].as_str());
    Some(Membership { name, member, kind, expires })
}

fn not_found_is_none<T>(r: Result<T, CallError>) -> Result<Option<T>, ProviderError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CallError::Google(g)) if g.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Client {
    fn ci(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.settings.cloud_identity)
    }

    /// `groups/ID` for a group given as `groups/ID` or by its email address.
    pub async fn resolve_group(&self, group: &str) -> Result<String, ProviderError> {
        if group.starts_with("groups/") {
            return Ok(group.to_string());
        }
        let url = self.ci(&format!("groups:lookup?groupKey.id={}", enc(group)));
        let v = self.call(Method::GET, &url, None, &format!("groups.lookup {group}")).await?;
        v["name"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ProviderError::transient(format!("groups.lookup {group}: answer without a name")))
    }

    /// The member's membership of the group, if there is one.
    pub async fn find_membership(&self, group: &str, email: &str) -> Result<Option<Membership>, ProviderError> {
        let url = self.ci(&format!("{group}/memberships:lookup?memberKey.id={}", enc(email)));
        let Some(found) =
            not_found_is_none(self.call(Method::GET, &url, None, &format!("memberships.lookup {group}")).await)?
        else {
            return Ok(None);
        };
        let Some(name) = found["name"].as_str() else { return Ok(None) };
        let got =
            not_found_is_none(self.call(Method::GET, &self.ci(name), None, &format!("memberships.get {name}")).await)?;
        Ok(got.as_ref().and_then(membership_of))
    }

    /// Adds the member with an expiry. `Ok(false)`: someone added them meanwhile (409
    /// ALREADY_EXISTS); look again.
    pub async fn create_membership(
        &self,
        group: &str,
        email: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, ProviderError> {
        let body = json!({
            "preferredMemberKey": { "id": email },
            "roles": [{ "name": "MEMBER", "expiryDetail": { "expireTime": rfc3339(until) } }],
        });
        let url = self.ci(&format!("{group}/memberships"));
        match self.call(Method::POST, &url, Some(&body), &format!("memberships.create {group}")).await {
            Ok(op) => {
                if let Some(err) = op.get("error").filter(|e| e.is_object()) {
                    let status = err["status"].as_str().unwrap_or("FAILED").to_string();
                    return Err(ProviderError::permanent(status, err["message"].as_str().unwrap_or("").to_string()));
                }
                Ok(true)
            }
            Err(CallError::Google(g)) if g.http == 409 && g.status == "ALREADY_EXISTS" => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a membership's expiry (later for a new or longer grant, earlier when the grant that
    /// needed the latest one ends).
    pub async fn set_expiry(&self, name: &str, until: DateTime<Utc>) -> Result<(), ProviderError> {
        let body = json!({ "updateRolesParams": [{
            "fieldMask": "expiryDetail.expireTime",
            "membershipRole": { "name": "MEMBER", "expiryDetail": { "expireTime": rfc3339(until) } },
        }]});
        let url = self.ci(&format!("{name}:modifyMembershipRoles"));
        self.call(Method::POST, &url, Some(&body), &format!("memberships.modifyMembershipRoles {name}")).await?;
        Ok(())
    }

    /// Removes a membership; one that is gone already is success.
    pub async fn delete_membership(&self, name: &str) -> Result<(), ProviderError> {
        not_found_is_none(self.call(Method::DELETE, &self.ci(name), None, &format!("memberships.delete {name}")).await)
            .map(|_| ())
    }

    /// Every membership of a group, page by page.
    pub async fn memberships(&self, group: &str) -> Result<Vec<Membership>, ProviderError> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = self.ci(&format!("{group}/memberships?view=FULL&pageSize=200"));
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", enc(p)));
            }
            let v = self.call(Method::GET, &url, None, &format!("memberships.list {group}")).await?;
            out.extend(v["memberships"].as_array().into_iter().flatten().filter_map(membership_of));
            page = v["nextPageToken"].as_str().filter(|p| !p.is_empty()).map(str::to_string);
            if page.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memberships_expiry_is_its_member_roles() {
        let v = json!({ "name": "groups/g/memberships/m", "preferredMemberKey": { "id": "a@x.io" },
            "roles": [{ "name": "MEMBER", "expiryDetail": { "expireTime": "2026-12-04T11:00:00Z" } }] });
        let m = membership_of(&v).unwrap();
        assert_eq!(m.expires, Some("2026-12-04T11:00:00Z".parse().unwrap()));
        let standing =
            json!({ "name": "groups/g/memberships/n", "roles": [{ "name": "MEMBER" }, { "name": "OWNER" }] });
        assert_eq!(membership_of(&standing).unwrap().expires, None);
    }
}
