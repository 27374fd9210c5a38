//! IAM operations elevate performs, and the listing of what it left behind.

use crate::client::{AwsClient, Service};
use crate::target::{IamPrincipal, POLICY_PREFIX};
use crate::xml::Node;
use elevate_core::ports::ProviderError;
use serde_json::Value;

/// `NoSuchEntity` from a removal: what was to be removed is already gone.
pub(crate) fn gone_is_ok(r: Result<Node, ProviderError>) -> Result<(), ProviderError> {
    match r {
        Ok(_) => Ok(()),
        Err(ProviderError::Permanent { code, .. }) if code == "NoSuchEntity" => Ok(()),
        Err(e) => Err(e),
    }
}

fn who(p: &IamPrincipal) -> (&'static str, &'static str, &str) {
    match p {
        IamPrincipal::User(n) => ("User", "UserName", n),
        IamPrincipal::Role(n) => ("Role", "RoleName", n),
    }
}

impl AwsClient {
    /// `PutUserPolicy` / `PutRolePolicy`: an upsert, so a retried grant overwrites.
    pub async fn put_inline_policy(&self, p: &IamPrincipal, name: &str, document: &Value) -> Result<(), ProviderError> {
        let (kind, key, n) = who(p);
        let doc = document.to_string();
        let params = [(key, n), ("PolicyName", name), ("PolicyDocument", doc.as_str())];
        self.query(Service::Iam, &format!("Put{kind}Policy"), &params).await.map(|_| ())
    }

    pub async fn delete_inline_policy(&self, p: &IamPrincipal, name: &str) -> Result<(), ProviderError> {
        let (kind, key, n) = who(p);
        gone_is_ok(self.query(Service::Iam, &format!("Delete{kind}Policy"), &[(key, n), ("PolicyName", name)]).await)
    }

    /// The document of an inline policy, or `None` if it does not exist.
    pub async fn get_inline_policy(&self, p: &IamPrincipal, name: &str) -> Result<Option<Value>, ProviderError> {
        let (kind, key, n) = who(p);
        let doc = match self.query(Service::Iam, &format!("Get{kind}Policy"), &[(key, n), ("PolicyName", name)]).await {
            Ok(d) => d,
            Err(ProviderError::Permanent { code, .. }) if code == "NoSuchEntity" => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let raw = doc.find("PolicyDocument").map(|n| n.text.clone()).unwrap_or_default();
        Ok(Some(decode_policy_document(&raw)?))
    }

    /// `AttachUserPolicy` / `AttachRolePolicy`: attaching what is attached is a no-op in IAM.
    pub async fn attach_policy(&self, p: &IamPrincipal, arn: &str) -> Result<(), ProviderError> {
        let (kind, key, n) = who(p);
        self.query(Service::Iam, &format!("Attach{kind}Policy"), &[(key, n), ("PolicyArn", arn)]).await.map(|_| ())
    }

    pub async fn detach_policy(&self, p: &IamPrincipal, arn: &str) -> Result<(), ProviderError> {
        let (kind, key, n) = who(p);
        gone_is_ok(self.query(Service::Iam, &format!("Detach{kind}Policy"), &[(key, n), ("PolicyArn", arn)]).await)
    }

    /// ARNs of the managed policies attached to a user or role.
    pub async fn attached_policies(&self, p: &IamPrincipal) -> Result<Vec<String>, ProviderError> {
        let (kind, key, n) = who(p);
        let action = format!("ListAttached{kind}Policies");
        self.paginate(&action, &[(key, n)], "AttachedPolicies", "PolicyArn").await
    }

    pub async fn add_to_group(&self, user: &str, group: &str) -> Result<(), ProviderError> {
        self.query(Service::Iam, "AddUserToGroup", &[("UserName", user), ("GroupName", group)]).await.map(|_| ())
    }

    pub async fn remove_from_group(&self, user: &str, group: &str) -> Result<(), ProviderError> {
        gone_is_ok(self.query(Service::Iam, "RemoveUserFromGroup", &[("UserName", user), ("GroupName", group)]).await)
    }

    /// User names in a group.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, ProviderError> {
        self.paginate("GetGroup", &[("GroupName", group)], "Users", "UserName").await
    }

    pub async fn list_users(&self) -> Result<Vec<String>, ProviderError> {
        self.paginate("ListUsers", &[], "Users", "UserName").await
    }

    pub async fn list_roles(&self) -> Result<Vec<String>, ProviderError> {
        self.paginate("ListRoles", &[], "Roles", "RoleName").await
    }

    /// Names of the inline policies of a user or role.
    pub async fn inline_policies(&self, p: &IamPrincipal) -> Result<Vec<String>, ProviderError> {
        let (kind, key, n) = who(p);
        self.paginate(&format!("List{kind}Policies"), &[(key, n)], "PolicyNames", "").await
    }

    /// Follows `IsTruncated`/`Marker` and collects `field` of each `member` of `list` (or the
    /// member's own text when `field` is empty).
    async fn paginate(
        &self,
        action: &str,
        params: &[(&str, &str)],
        list: &str,
        field: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let result = format!("{action}Result");
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut p: Vec<(&str, &str)> = params.to_vec();
            if let Some(m) = &marker {
                p.push(("Marker", m.as_str()));
            }
            let doc = self.query(Service::Iam, action, &p).await?;
            for m in doc.members(&[&result, list]) {
                let v = if field.is_empty() { Some(m.text.as_str()) } else { m.text_at(&[field]) };
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    out.push(v.to_string());
                }
            }
            let truncated = doc.text_at(&[&result, "IsTruncated"]) == Some("true");
            marker = doc.text_at(&[&result, "Marker"]).filter(|m| !m.is_empty()).map(str::to_string);
            if !truncated || marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every inline policy with elevate's prefix, on every user and role: `(principal, name)`.
    pub async fn elevate_inline_policies(&self) -> Result<Vec<(IamPrincipal, String)>, ProviderError> {
        let mut found = Vec::new();
        let users = self.list_users().await?.into_iter().map(IamPrincipal::User);
        let roles = self.list_roles().await?.into_iter().map(IamPrincipal::Role);
        for p in users.chain(roles) {
            let names = match self.inline_policies(&p).await {
                Ok(n) => n,
                // Deleted between the two listings.
                Err(ProviderError::Permanent { code, .. }) if code == "NoSuchEntity" => continue,
                Err(e) => return Err(e),
            };
            for name in names.into_iter().filter(|n| n.starts_with(POLICY_PREFIX)) {
                found.push((p.clone(), name));
            }
        }
        Ok(found)
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986) inside the XML.
fn decode_policy_document(raw: &str) -> Result<Value, ProviderError> {
    let bad = |e: String| ProviderError::transient(format!("unreadable policy document: {e}"));
    if let Ok(v) = serde_json::from_str(raw) {
        return Ok(v);
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&decoded).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_url_decoded() {
        let raw = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(decode_policy_document(raw).unwrap()["Version"], "2012-10-17");
        assert_eq!(decode_policy_document("{\"a\":1}").unwrap()["a"], 1);
        assert!(decode_policy_document("%7Bnot json").is_err());
    }
}
