//! elevate-aws: a `GrantProvider` for AWS, over reqwest with SigV4 signing (aws-sigv4).
//!
//! A role's `target` picks one of four kinds of access:
//! - `iam_inline_policy`: an inline policy named `elevate-grant-{grant id}` on the person's IAM
//!   user or role, every statement bounded by `aws:CurrentTime` so that AWS ends the access at
//!   expiry even when elevate is down;
//! - `iam_managed_policy`: a managed policy attached to the user or role;
//! - `iam_group`: membership of an IAM group;
//! - `identity_center`: an Identity Center account assignment of a permission set.
//!
//! Every call is idempotent on the grant id, revoking what is gone is success, and shared
//! resources (attachments, memberships, assignments) stay while another active grant of the same
//! person still gives them. `list` finds elevate's inline policies; attachments, memberships and
//! assignments carry no mark of who made them, so elevate's own records are the source for those.

mod chain;
mod client;
mod config;
mod credentials;
mod errors;
mod iam;
mod identity_center;
pub mod target;
mod xml;

pub use client::{AwsClient, Service};
pub use config::AwsConfig;
pub use credentials::{CredentialSource, StaticCredentials};
pub use identity_center::Assignment;
pub use target::{Applied, IamPrincipal, POLICY_PREFIX, Target};
pub use xml::Node;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elevate_core::ports::{GrantProvider, GrantSpec, ListedGrant, Overlap, ProviderError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tracing::info;

/// The AWS provider. Cheap to share; holds one HTTP client, the base credentials (fixed, or the
/// chain's latest temporary keys) and, with `assume_role_arn`, the current assumed-role keys.
#[derive(Debug)]
pub struct AwsProvider {
    client: AwsClient,
}

impl AwsProvider {
    /// Builds the provider on the standard AWS credential chain. No call is made here: missing or
    /// wrong credentials show up on the first grant, as that grant's (transient) error.
    pub fn from_config(cfg: AwsConfig) -> Result<AwsProvider, String> {
        AwsProvider::with_source(cfg, CredentialSource::DefaultChain)
    }

    /// Builds the provider with explicit base keys (tests, or keys from a secrets file).
    pub fn new(cfg: AwsConfig, credentials: StaticCredentials) -> Result<AwsProvider, String> {
        AwsProvider::with_source(cfg, CredentialSource::Static(credentials))
    }

    pub fn with_source(cfg: AwsConfig, source: CredentialSource) -> Result<AwsProvider, String> {
        Ok(AwsProvider { client: AwsClient::new(cfg.settings()?, source)? })
    }

    /// The signed client, for tools and tests that inspect the account.
    pub fn client(&self) -> &AwsClient {
        &self.client
    }

    /// What a grant did (its handle), or what it would have done (from the spec) when there is
    /// no usable handle.
    fn applied(spec: &GrantSpec) -> Result<Applied, ProviderError> {
        if let Some(a) = spec.handle.clone().and_then(|h| serde_json::from_value::<Applied>(h).ok()) {
            return Ok(a);
        }
        let target = Target::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        target.resolve(spec)
    }
}

fn assignment(a: &Applied) -> Option<Assignment> {
    match a {
        Applied::IdentityCenter { instance_arn, permission_set_arn, account_id, principal_type, principal_id } => {
            Some(Assignment {
                instance_arn: instance_arn.clone(),
                permission_set_arn: permission_set_arn.clone(),
                account_id: account_id.clone(),
                principal_type: principal_type.clone(),
                principal_id: principal_id.clone(),
            })
        }
        _ => None,
    }
}

#[async_trait]
impl GrantProvider for AwsProvider {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn validate_target(&self, target: &Value) -> Result<(), String> {
        Target::parse(target).map(|_| ())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        let target = Target::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        if spec.expires_at <= spec.starts_at {
            return Err(ProviderError::permanent("InvalidWindow", "the grant window ends before it starts"));
        }
        let applied = target.resolve(spec)?;
        match &applied {
            Applied::InlinePolicy { principal, policy_name } => {
                let doc = target.policy_document(spec.starts_at, spec.expires_at).expect("inline target");
                self.client.put_inline_policy(principal, policy_name, &doc).await?;
            }
            Applied::ManagedPolicy { principal, policy_arn } => {
                self.client.attach_policy(principal, policy_arn).await?
            }
            Applied::GroupMembership { user, group } => self.client.add_to_group(user, group).await?,
            Applied::IdentityCenter { .. } => {
                self.client.create_assignment(&assignment(&applied).expect("identity center")).await?
            }
        }
        info!(grant = %spec.grant_id, what = %applied.describe(), "aws grant applied");
        serde_json::to_value(&applied).map_err(|e| ProviderError::permanent("Encode", e.to_string()))
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        let applied = Self::applied(spec)?;
        if let Applied::InlinePolicy { principal, policy_name } = &applied {
            // Per grant id: never shared.
            return self.client.delete_inline_policy(principal, policy_name).await;
        }
        // Another live grant of the same person and target resolves to the same attachment,
        // membership or assignment: keeping it a little longer is recoverable, removing what
        // another live grant gives is not.
        if overlap.still_needed() {
            info!(grant = %spec.grant_id, what = %applied.describe(), "aws revoke: still given by another grant");
            return Ok(());
        }
        match &applied {
            Applied::ManagedPolicy { principal, policy_arn } => {
                self.client.detach_policy(principal, policy_arn).await?
            }
            Applied::GroupMembership { user, group } => self.client.remove_from_group(user, group).await?,
            Applied::IdentityCenter { .. } => {
                self.client.delete_assignment(&assignment(&applied).expect("identity center")).await?
            }
            Applied::InlinePolicy { .. } => unreachable!("handled above"),
        }
        info!(grant = %spec.grant_id, what = %applied.describe(), "aws grant revoked");
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        let mut out = Vec::new();
        for (principal, name) in self.client.elevate_inline_policies().await? {
            let grant_id = name.trim_start_matches(POLICY_PREFIX).to_string();
            let doc = self.client.get_inline_policy(&principal, &name).await?;
            let Some(doc) = doc else { continue };
            out.push(listed_inline(principal, name, grant_id, doc));
        }
        Ok(out)
    }
}

/// A found inline policy as a spec `revoke` can act on: its handle names the exact policy.
fn listed_inline(principal: IamPrincipal, name: String, grant_id: String, doc: Value) -> ListedGrant {
    let statements = doc["Statement"].as_array().cloned().unwrap_or_default();
    let window = |op: &str| -> Option<DateTime<Utc>> {
        statements.iter().find_map(|s| s["Condition"][op]["aws:CurrentTime"].as_str()).and_then(|t| t.parse().ok())
    };
    let (starts_at, expires_at) = (window("DateGreaterThan"), window("DateLessThan"));
    let (kind, key, who) = match &principal {
        IamPrincipal::User(n) => ("user", target::IAM_USER_KEY, n.clone()),
        IamPrincipal::Role(n) => ("role", target::IAM_ROLE_KEY, n.clone()),
    };
    let applied = Applied::InlinePolicy { principal: principal.clone(), policy_name: name };
    let description = match expires_at {
        Some(e) => format!("{} (window ends {})", applied.describe(), e.to_rfc3339()),
        None => format!("{} (no elevate window found)", applied.describe()),
    };
    let request = elevate_core::RequestId::from_grant_id(&grant_id).unwrap_or(elevate_core::RequestId(0));
    let spec = GrantSpec {
        grant_id: grant_id.clone(),
        request,
        role: elevate_core::RoleName::parse("unknown").expect("constant name"),
        person: elevate_core::PersonId::parse("unknown").expect("constant name"),
        principals: BTreeMap::from([(key.to_string(), who)]),
        target: json!({
            "type": "iam_inline_policy",
            "principal": kind,
            "statements": statements.into_iter().map(target::strip_window).collect::<Vec<_>>(),
        }),
        starts_at: starts_at.unwrap_or_else(Utc::now),
        expires_at: expires_at.unwrap_or_else(Utc::now),
        handle: serde_json::to_value(&applied).ok(),
    };
    ListedGrant { grant_id, spec: Some(spec), description, holder: None }
}
