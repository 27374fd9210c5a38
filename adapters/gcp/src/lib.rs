//! elevate-gcp: a `GrantProvider` for Google Cloud, over reqwest.
//!
//! A role's `target` picks one of two kinds of access, both ended by Google itself at the
//! grant's end, so access stops on time even when elevate is down:
//! - `iam_role`: a role on a project, folder or organization, as an IAM conditional role binding
//!   of its own per grant (`request.time < timestamp("END")`, titled `elevate-grant-{grant id}`),
//!   written into the policy (version 3) by read-modify-write on its etag;
//! - `group_membership`: membership of a Google group (Cloud Identity) with an expiry time.
//!
//! Every call is idempotent on the grant id and revoking what is gone is success. Overlap: with
//! one binding per grant, revoking one grant's binding never touches what another grant gives;
//! a group membership is one per person and group, so it stays (with the latest expiry elevate
//! set) while another live grant of the same person needs it, and goes with the last of them.
//! `list` finds elevate's bindings by their condition's title on the resources its roles name,
//! and purges those whose window is over (Google keeps them in the policy after they stop
//! granting). Memberships carry no mark of which grant made them: `list` reports the
//! time-limited memberships of the groups its roles name as held for a person and group
//! (`Holder`), and core removes those no live grant of that person and group needs. A standing
//! membership (no expiry) is never reported: it is not elevate's.

mod auth;
mod client;
mod config;
mod groups;
mod iam;
pub mod target;

pub use auth::{Credentials, SCOPE};
pub use config::{AuthKind, GcpConfig};
pub use target::{Applied, PRINCIPAL_KEY, TITLE_PREFIX, Target};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use client::Client;
use elevate_core::ports::{GrantProvider, GrantSpec, Holder, ListedGrant, Overlap, ProviderError};
use elevate_core::{Clock, SystemClock};
use iam::Edit;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tracing::info;

/// The Google Cloud provider. Cheap to share; holds one HTTP client and the token cache.
pub struct GcpProvider {
    client: Client,
    /// The resources whose policies `list` reads: those named by the roles that use this
    /// provider (`watch`) and any a grant went to since start.
    watched: Mutex<BTreeSet<String>>,
    /// The groups `list` reads, as the roles that use this provider name them, with each one's
    /// target as configured (what core matches a membership's live grants on).
    watched_groups: Mutex<BTreeMap<String, Value>>,
    /// What "now" is when deciding which of elevate's bindings are over (to purge them): the
    /// wall clock, or the engine's clock in tests that move time.
    clock: Mutex<Arc<dyn Clock>>,
}

impl std::fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpProvider").field("auth", &self.client.auth).finish()
    }
}

impl GcpProvider {
    /// Builds the provider. No call is made here: a wrong key shows up on the first grant, as
    /// that grant's error (a malformed one shows here).
    pub fn new(cfg: GcpConfig, credentials: Credentials) -> Result<GcpProvider, String> {
        let settings = cfg.settings()?;
        let auth = auth::Auth::new(credentials, &settings)?;
        Ok(GcpProvider {
            client: Client::new(settings, auth)?,
            watched: Mutex::new(BTreeSet::new()),
            watched_groups: Mutex::new(BTreeMap::new()),
            clock: Mutex::new(Arc::new(SystemClock)),
        })
    }

    /// Reads "now" from `clock` instead of the wall clock (tests whose engine clock is moved).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.lock().expect("lock") = clock;
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.lock().expect("lock").now()
    }

    /// Adds a role's target to what `list` looks at. Targets that do not parse are ignored
    /// here (config loading reports them).
    pub fn watch(&self, target: &Value) {
        match Target::parse(target) {
            Ok(Target::IamRole { resource, .. }) => {
                self.watched.lock().expect("lock").insert(resource);
            }
            Ok(Target::GroupMembership { group }) => {
                self.watched_groups.lock().expect("lock").insert(group, target.clone());
            }
            Err(_) => {}
        }
    }

    /// The IAM policy of a project, folder or organization, as Google returns it in version 3
    /// (for tools and tests that look at what elevate did).
    pub async fn policy(&self, resource: &str) -> Result<Value, ProviderError> {
        Ok(self.client.get_policy(resource).await?)
    }

    /// The members of a group (`groups/ID` or its email) and their expiry times (`None`:
    /// standing), for tools and tests that look at what elevate did.
    pub async fn members(&self, group: &str) -> Result<Vec<(String, Option<DateTime<Utc>>)>, ProviderError> {
        let group = self.client.resolve_group(group).await?;
        Ok(self.client.memberships(&group).await?.into_iter().map(|m| (m.member, m.expires)).collect())
    }

    /// What a grant did (its handle), or what it would have done (from the spec) when there is
    /// no usable handle.
    async fn applied(&self, spec: &GrantSpec) -> Result<Applied, ProviderError> {
        if let Some(a) = spec.handle.clone().and_then(|h| serde_json::from_value::<Applied>(h).ok()) {
            return Ok(a);
        }
        let target = Target::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        let member = Target::member(spec)?;
        Ok(match target {
            Target::IamRole { resource, role } => {
                Applied::IamBinding { resource, role, member, title: target::title(&spec.grant_id) }
            }
            Target::GroupMembership { group } => {
                let member = target::member_email(&member)?;
                Applied::GroupMembership {
                    group: self.client.resolve_group(&group).await?,
                    member,
                    pre_existing: false,
                }
            }
        })
    }

    /// Makes the member a member of the group until at least `until`. True when they already
    /// were, without an expiry (standing access that is not elevate's).
    async fn ensure_member(&self, group: &str, email: &str, until: DateTime<Utc>) -> Result<bool, ProviderError> {
        for _ in 0..3 {
            match self.client.find_membership(group, email).await? {
                None => {
                    if self.client.create_membership(group, email, until).await? {
                        return Ok(false);
                    }
                    // Added by someone else between the lookup and the create: look again.
                }
                Some(m) => match m.expires {
                    None => return Ok(true),
                    Some(e) if e >= until => return Ok(false),
                    Some(_) => {
                        self.client.set_expiry(&m.name, until).await?;
                        return Ok(false);
                    }
                },
            }
        }
        Err(ProviderError::transient(format!("the membership of {email} in {group} kept changing; will try again")))
    }

    /// Ends this grant's part in a membership. While another live grant of the same person and
    /// group still needs it (`Overlap::StillNeeded`) it stays as it is: its expiry is the latest
    /// window elevate set, and the revoke of the last grant that needs it removes it (Google's
    /// own expiry is the backstop should elevate be down then). When no other grant needs it,
    /// a membership with an expiry is removed whoever set that expiry: a time-limited membership
    /// elevate found at grant time was taken over (its expiry moved to cover the grant), and
    /// leaving one in place because its expiry is later than this grant's window would keep
    /// access that an earlier, longer grant's early revoke was meant to end. Only a membership
    /// without an expiry, standing access, is never elevate's to remove.
    async fn revoke_membership(
        &self,
        spec: &GrantSpec,
        group: &str,
        email: &str,
        overlap: Overlap,
    ) -> Result<(), ProviderError> {
        let Some(m) = self.client.find_membership(group, email).await? else {
            return Ok(());
        };
        if m.expires.is_none() {
            info!(grant = %spec.grant_id, group, "standing membership without an expiry: not elevate's, left alone");
            return Ok(());
        }
        if overlap.still_needed() {
            info!(grant = %spec.grant_id, group, "membership still needed by another grant: kept");
            return Ok(());
        }
        self.client.delete_membership(&m.name).await
    }
}

#[async_trait]
impl GrantProvider for GcpProvider {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn validate_target(&self, target: &Value) -> Result<(), String> {
        Target::parse(target).map(|_| ())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        let target = Target::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        if spec.expires_at <= spec.starts_at {
            return Err(ProviderError::permanent("InvalidWindow", "the grant window ends before it starts"));
        }
        let member = Target::member(spec)?;
        let applied = match target {
            Target::IamRole { resource, role } => {
                self.watched.lock().expect("lock").insert(resource.clone());
                let wanted = target::binding(spec, &role, &member);
                self.client.modify_policy(&resource, self.now(), |b| iam::upsert(b, &wanted)).await?;
                Applied::IamBinding { resource, role, member, title: target::title(&spec.grant_id) }
            }
            Target::GroupMembership { group } => {
                let email = target::member_email(&member)?;
                let group = self.client.resolve_group(&group).await?;
                let pre_existing = self.ensure_member(&group, &email, spec.expires_at).await?;
                Applied::GroupMembership { group, member: email, pre_existing }
            }
        };
        info!(grant = %spec.grant_id, what = %applied.describe(), "gcp grant applied");
        serde_json::to_value(&applied).map_err(|e| ProviderError::permanent("Encode", e.to_string()))
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        match self.applied(spec).await? {
            Applied::IamBinding { resource, title, .. } => {
                // One binding per grant: other grants' bindings are their own and stay whatever
                // happens to this one, so `overlap` does not matter here.
                let r = self.client.modify_policy(&resource, self.now(), |b| iam::remove(b, &title)).await;
                match r {
                    Ok(Edit::Changed) => info!(grant = %spec.grant_id, %resource, "gcp binding removed"),
                    Ok(Edit::Unchanged) => info!(grant = %spec.grant_id, %resource, "gcp binding already gone"),
                    // The resource itself is gone: so is the access.
                    Err(ProviderError::Permanent { code, .. }) if code == "NOT_FOUND" => {}
                    Err(e) => return Err(e),
                }
                Ok(())
            }
            Applied::GroupMembership { pre_existing: true, group, .. } => {
                info!(grant = %spec.grant_id, %group, "membership was standing before the grant: left alone");
                Ok(())
            }
            Applied::GroupMembership { group, member, .. } => {
                self.revoke_membership(spec, &group, &member, overlap).await
            }
        }
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        let now = self.now();
        let resources: Vec<String> = self.watched.lock().expect("lock").iter().cloned().collect();
        let mut out = Vec::new();
        for resource in resources {
            let policy = self.client.get_policy(&resource).await?;
            let bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
            if bindings.iter().any(|b| iam::is_expired(b, now)) {
                self.client.purge(&resource, now).await?;
            }
            for b in bindings.iter().filter(|b| !iam::is_expired(b, now)) {
                if let Some(l) = listed_binding(&resource, b) {
                    out.push(l);
                }
            }
        }
        let groups: Vec<(String, Value)> =
            self.watched_groups.lock().expect("lock").iter().map(|(g, t)| (g.clone(), t.clone())).collect();
        for (group, target) in groups {
            let group = self.client.resolve_group(&group).await?;
            for m in self.client.memberships(&group).await? {
                if let Some(l) = listed_membership(&group, &target, m, now) {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }
}

/// A found binding of elevate's as a spec `revoke` can act on: its handle names the binding.
fn listed_binding(resource: &str, b: &Value) -> Option<ListedGrant> {
    let grant_id = target::grant_of(b)?.to_string();
    let role = b["role"].as_str().unwrap_or_default().to_string();
    let member = b["members"][0].as_str().unwrap_or_default().to_string();
    let ends = target::ends_at(b);
    let applied = Applied::IamBinding {
        resource: resource.to_string(),
        role: role.clone(),
        member: member.clone(),
        title: target::title(&grant_id),
    };
    let description = match ends {
        Some(e) => format!("{} (window ends {})", applied.describe(), target::rfc3339(e)),
        None => format!("{} (no elevate window found)", applied.describe()),
    };
    let spec = GrantSpec {
        grant_id: grant_id.clone(),
        request: elevate_core::RequestId::from_grant_id(&grant_id).unwrap_or(elevate_core::RequestId(0)),
        role: elevate_core::RoleName::parse("unknown").expect("constant name"),
        person: elevate_core::PersonId::parse("unknown").expect("constant name"),
        principals: BTreeMap::from([(PRINCIPAL_KEY.to_string(), member)]),
        target: json!({ "type": "iam_role", "resource": resource, "role": role }),
        starts_at: ends.unwrap_or_else(Utc::now),
        expires_at: ends.unwrap_or_else(Utc::now),
        handle: serde_json::to_value(&applied).ok(),
    };
    Some(ListedGrant { grant_id, spec: Some(spec), description, holder: None })
}

/// A time-limited membership as access held for its member and group rather than one grant
/// (see `Holder`); standing memberships and those already over are not reported.
fn listed_membership(group: &str, target: &Value, m: groups::Membership, now: DateTime<Utc>) -> Option<ListedGrant> {
    let ends = m.expires.filter(|e| *e > now)?;
    let principal = format!("{}:{}", m.kind?.principal_prefix(), m.member);
    let applied = Applied::GroupMembership { group: group.to_string(), member: m.member, pre_existing: false };
    let spec = GrantSpec {
        grant_id: m.name.clone(),
        request: elevate_core::RequestId(0),
        role: elevate_core::RoleName::parse("unknown").expect("constant name"),
        person: elevate_core::PersonId::parse("unknown").expect("constant name"),
        principals: BTreeMap::from([(PRINCIPAL_KEY.to_string(), principal.clone())]),
        target: target.clone(),
        starts_at: ends,
        expires_at: ends,
        handle: serde_json::to_value(&applied).ok(),
    };
    Some(ListedGrant {
        grant_id: m.name,
        description: format!("{} (expires {})", applied.describe(), target::rfc3339(ends)),
        spec: Some(spec),
        holder: Some(Holder { principal_key: PRINCIPAL_KEY.to_string(), principal, target: target.clone() }),
    })
}
