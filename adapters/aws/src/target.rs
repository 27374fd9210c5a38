//! What a role's `target` table may say, and who in AWS a grant goes to.

use chrono::{DateTime, SecondsFormat, Utc};
use elevate_core::ports::{GrantSpec, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Inline policies elevate writes are named this plus the grant id (`elevate-grant-elevate-41`):
/// recognisable in the console and by `list`, and a retried grant overwrites rather than adds.
pub const POLICY_PREFIX: &str = "elevate-grant-";

/// Principal keys in a person's `[persons.X.principals]` table.
pub const IAM_USER_KEY: &str = "aws_iam_user";
pub const IAM_ROLE_KEY: &str = "aws_iam_role";
pub const IC_USER_KEY: &str = "aws_identity_center_user";
pub const IC_GROUP_KEY: &str = "aws_identity_center_group";

/// A role's `target`, one variant per kind of AWS access.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An inline policy on the person's IAM user or role, bounded by `aws:CurrentTime`
    /// conditions so that AWS itself ends the access at expiry.
    IamInlinePolicy {
        #[serde(default)]
        principal: Option<IamPrincipalKind>,
        #[serde(default)]
        actions: Vec<String>,
        #[serde(default)]
        resources: Vec<String>,
        #[serde(default)]
        statements: Vec<Value>,
    },
    /// A managed policy attached to the person's IAM user or role.
    IamManagedPolicy {
        policy_arn: String,
        #[serde(default)]
        principal: Option<IamPrincipalKind>,
    },
    /// Membership of an IAM group (users only: roles cannot join groups).
    IamGroup { group: String },
    /// An Identity Center account assignment of a permission set.
    IdentityCenter {
        instance_arn: String,
        permission_set_arn: String,
        account_id: String,
        #[serde(default)]
        principal: Option<IcPrincipalKind>,
    },
}

/// Which of the person's IAM identities an IAM target applies to (`principal = "user" | "role"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IamPrincipalKind {
    User,
    Role,
}

/// Whether an Identity Center assignment goes to the person's user or to their group
/// (`aws_identity_center_group`; everyone in that group gets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IcPrincipalKind {
    User,
    Group,
}

/// An IAM identity by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IamPrincipal {
    User(String),
    Role(String),
}

impl IamPrincipal {
    pub fn describe(&self) -> String {
        match self {
            IamPrincipal::User(n) => format!("user {n}"),
            IamPrincipal::Role(n) => format!("role {n}"),
        }
    }
}

/// What a grant did in AWS, kept as the grant's handle so that revoke undoes exactly that, even
/// if the person's principals in the policy file changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Applied {
    InlinePolicy {
        principal: IamPrincipal,
        policy_name: String,
    },
    ManagedPolicy {
        principal: IamPrincipal,
        policy_arn: String,
    },
    GroupMembership {
        user: String,
        group: String,
    },
    IdentityCenter {
        instance_arn: String,
        permission_set_arn: String,
        account_id: String,
        principal_type: String,
        principal_id: String,
    },
}

impl Applied {
    pub fn describe(&self) -> String {
        match self {
            Applied::InlinePolicy { principal, policy_name } => {
                format!("inline policy {policy_name} on {}", principal.describe())
            }
            Applied::ManagedPolicy { principal, policy_arn } => {
                format!("{policy_arn} attached to {}", principal.describe())
            }
            Applied::GroupMembership { user, group } => format!("user {user} in group {group}"),
            Applied::IdentityCenter { permission_set_arn, account_id, principal_type, principal_id, .. } => {
                format!(
                    "{permission_set_arn} in account {account_id} for {} {principal_id}",
                    principal_type.to_lowercase()
                )
            }
        }
    }
}

fn is_iam_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

impl Target {
    /// Parses and checks a role's target, with messages that name the field at fault.
    pub fn parse(v: &Value) -> Result<Target, String> {
        if v.get("account_id").is_some_and(Value::is_number) {
            return Err("aws target identity_center: account_id must be a string of 12 digits (quote it in TOML: account_id = \"012345678901\")".into());
        }
        let t: Target = serde_json::from_value(v.clone()).map_err(|e| {
            let kind = v.get("type").and_then(Value::as_str).unwrap_or("(no type)");
            format!(
                "aws target {kind}: {e} (type is one of iam_inline_policy, iam_managed_policy, iam_group, identity_center)"
            )
        })?;
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Target::IamInlinePolicy { actions, resources, statements, .. } => {
                match (actions.is_empty(), statements.is_empty()) {
                    (true, true) => return Err("aws target iam_inline_policy: give `actions` (with `resources`) or `statements`".into()),
                    (false, false) => return Err("aws target iam_inline_policy: give either `actions`/`resources` or `statements`, not both".into()),
                    (false, true) if resources.is_empty() => {
                        return Err("aws target iam_inline_policy: `resources` is required with `actions` (use [\"*\"] deliberately if you mean it)".into())
                    }
                    (true, false) if !resources.is_empty() => {
                        return Err("aws target iam_inline_policy: `resources` goes inside each statement when `statements` is used".into())
                    }
                    _ => {}
                }
                for (i, s) in statements.iter().enumerate() {
                    check_statement(s).map_err(|e| format!("aws target iam_inline_policy: statements[{i}]: {e}"))?;
                }
                if let Some(a) = actions.iter().find(|a| !a.contains(':') && a.as_str() != "*") {
                    return Err(format!("aws target iam_inline_policy: action `{a}` should look like service:Action"));
                }
                Ok(())
            }
            Target::IamManagedPolicy { policy_arn, .. } => {
                if !(policy_arn.starts_with("arn:") && policy_arn.contains(":policy/")) {
                    return Err(format!(
                        "aws target iam_managed_policy: policy_arn `{policy_arn}` is not a policy ARN (arn:aws:iam::aws:policy/ReadOnlyAccess)"
                    ));
                }
                Ok(())
            }
            Target::IamGroup { group } => {
                if !is_iam_name(group, 128) {
                    return Err(format!("aws target iam_group: `{group}` is not an IAM group name"));
                }
                Ok(())
            }
            Target::IdentityCenter { instance_arn, permission_set_arn, account_id, .. } => {
                if !(instance_arn.starts_with("arn:") && instance_arn.contains(":instance/")) {
                    return Err(format!(
                        "aws target identity_center: instance_arn `{instance_arn}` is not an instance ARN (arn:aws:sso:::instance/ssoins-…)"
                    ));
                }
                // AWS writes `arn:aws:sso:::permissionSet/ssoins-…/ps-…`; emulators vary in the
                // middle part, so the `ps-` id is what is checked.
                if !(permission_set_arn.starts_with("arn:") && permission_set_arn.contains("/ps-")) {
                    return Err(format!(
                        "aws target identity_center: permission_set_arn `{permission_set_arn}` is not a permission set ARN (arn:aws:sso:::permissionSet/ssoins-…/ps-…)"
                    ));
                }
                if !(account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(format!(
                        "aws target identity_center: account_id `{account_id}` must be 12 digits (quote it in TOML)"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Which identity gets this grant, from the person's principals.
    pub fn resolve(&self, spec: &GrantSpec) -> Result<Applied, ProviderError> {
        let missing = |key: &str, what: &str| {
            ProviderError::permanent(
                "MissingPrincipal",
                format!(
                    "{} has no `{key}` principal in the policy, needed for {what} (role {})",
                    spec.person, spec.role
                ),
            )
        };
        let iam = |kind: Option<IamPrincipalKind>, what: &str| -> Result<IamPrincipal, ProviderError> {
            let user = spec.principals.get(IAM_USER_KEY);
            let role = spec.principals.get(IAM_ROLE_KEY);
            match kind {
                Some(IamPrincipalKind::User) => {
                    user.map(|u| IamPrincipal::User(u.clone())).ok_or_else(|| missing(IAM_USER_KEY, what))
                }
                Some(IamPrincipalKind::Role) => {
                    role.map(|r| IamPrincipal::Role(r.clone())).ok_or_else(|| missing(IAM_ROLE_KEY, what))
                }
                None => user
                    .map(|u| IamPrincipal::User(u.clone()))
                    .or_else(|| role.map(|r| IamPrincipal::Role(r.clone())))
                    .ok_or_else(|| missing(IAM_USER_KEY, what)),
            }
        };
        Ok(match self {
            Target::IamInlinePolicy { principal, .. } => Applied::InlinePolicy {
                principal: iam(*principal, "an inline policy")?,
                policy_name: format!("{POLICY_PREFIX}{}", spec.grant_id),
            },
            Target::IamManagedPolicy { policy_arn, principal } => Applied::ManagedPolicy {
                principal: iam(*principal, "a managed policy")?,
                policy_arn: policy_arn.clone(),
            },
            Target::IamGroup { group } => Applied::GroupMembership {
                user: spec
                    .principals
                    .get(IAM_USER_KEY)
                    .cloned()
                    .ok_or_else(|| missing(IAM_USER_KEY, "a group membership"))?,
                group: group.clone(),
            },
            Target::IdentityCenter { instance_arn, permission_set_arn, account_id, principal } => {
                let (key, ptype) = match principal.unwrap_or(IcPrincipalKind::User) {
                    IcPrincipalKind::User => (IC_USER_KEY, "USER"),
                    IcPrincipalKind::Group => (IC_GROUP_KEY, "GROUP"),
                };
                Applied::IdentityCenter {
                    instance_arn: instance_arn.clone(),
                    permission_set_arn: permission_set_arn.clone(),
                    account_id: account_id.clone(),
                    principal_type: ptype.into(),
                    principal_id: spec
                        .principals
                        .get(key)
                        .cloned()
                        .ok_or_else(|| missing(key, "an Identity Center assignment"))?,
                }
            }
        })
    }

    /// The inline policy document for a grant window: every statement gets
    /// `DateGreaterThan`/`DateLessThan` on `aws:CurrentTime`.
    pub fn policy_document(&self, starts_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Option<Value> {
        let Target::IamInlinePolicy { actions, resources, statements, .. } = self else {
            return None;
        };
        let base: Vec<Value> = if statements.is_empty() {
            vec![json!({ "Effect": "Allow", "Action": actions, "Resource": resources })]
        } else {
            statements.clone()
        };
        let start = starts_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let end = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let with_window: Vec<Value> = base
            .into_iter()
            .map(|mut s| {
                let obj = s.as_object_mut().expect("checked at parse");
                obj.entry("Effect").or_insert_with(|| json!("Allow"));
                let cond = obj.entry("Condition").or_insert_with(|| Value::Object(Map::new()));
                let cond = cond.as_object_mut().expect("checked at parse");
                for (op, at) in [("DateGreaterThan", &start), ("DateLessThan", &end)] {
                    let m = cond.entry(op).or_insert_with(|| Value::Object(Map::new()));
                    m.as_object_mut().expect("checked at parse").insert("aws:CurrentTime".into(), json!(at));
                }
                s
            })
            .collect();
        Some(json!({ "Version": "2012-10-17", "Statement": with_window }))
    }
}

/// A statement without elevate's window conditions: what the role's target said, as far as
/// AWS still shows it.
pub fn strip_window(mut s: Value) -> Value {
    if let Some(obj) = s.as_object_mut()
        && let Some(cond) = obj.get_mut("Condition").and_then(Value::as_object_mut)
    {
        for op in ["DateGreaterThan", "DateLessThan"] {
            if let Some(m) = cond.get_mut(op).and_then(Value::as_object_mut) {
                m.remove("aws:CurrentTime");
                if m.is_empty() {
                    cond.remove(op);
                }
            }
        }
        if cond.is_empty() {
            obj.remove("Condition");
        }
    }
    s
}

fn check_statement(s: &Value) -> Result<(), String> {
    let obj = s.as_object().ok_or("each statement must be a table")?;
    if !(obj.contains_key("Action") || obj.contains_key("NotAction")) {
        return Err("needs `Action` (or `NotAction`)".into());
    }
    if !(obj.contains_key("Resource") || obj.contains_key("NotResource")) {
        return Err("needs `Resource` (or `NotResource`)".into());
    }
    if let Some(e) = obj.get("Effect")
        && e != "Allow"
        && e != "Deny"
    {
        return Err("`Effect` must be Allow or Deny".into());
    }
    if obj.contains_key("Principal") || obj.contains_key("NotPrincipal") {
        return Err("identity policies take no `Principal`".into());
    }
    if let Some(c) = obj.get("Condition") {
        let c = c.as_object().ok_or("`Condition` must be a table")?;
        for (op, body) in c {
            let body = body.as_object().ok_or_else(|| format!("`Condition.{op}` must be a table"))?;
            if (op == "DateGreaterThan" || op == "DateLessThan") && body.contains_key("aws:CurrentTime") {
                return Err(format!(
                    "`Condition.{op}` on aws:CurrentTime is set by elevate from the grant window; remove it"
                ));
            }
        }
    }
    Ok(())
}
