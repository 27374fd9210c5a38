//! Periodic jobs: reconciliation against the providers, and audit verification.

use super::Service;
use crate::{
    RequestId,
    audit::{Actor, ChainBreak, ChainVerifier, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    ports::{GrantSpec, Holder, ListedGrant},
};
use serde_json::json;
use tracing::{info, warn};

/// What a reconciliation run found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReconcileReport {
    pub listed: usize,
    /// Grant ids removed because no live request backs them.
    pub drift_revoked: Vec<String>,
    /// `(provider, error)` for providers whose list or revoke failed.
    pub errors: Vec<(String, String)>,
}

/// The result of walking the audit chain.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub checked: u64,
    pub head: Option<(i64, String)>,
    pub broken: Option<ChainBreak>,
    /// Checkpoint events found and matched against the chain.
    pub checkpoints: u64,
    /// Of those, verified against the public key given.
    pub signed_checkpoints: u64,
}

impl Service {
    /// Compares what each provider says exists with the requests that may hold access, and
    /// removes what elevate created that nothing backs any more (drift), with an audit event.
    pub async fn reconcile(&self) -> CoreResult<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for (name, provider) in self.providers.iter() {
            let listed = match provider.list().await {
                Ok(l) => l,
                Err(e) => {
                    warn!(provider = %name, error = %e, "reconcile: list failed");
                    report.errors.push((name.clone(), e.to_string()));
                    continue;
                }
            };
            report.listed += listed.len();
            // Which listed grants a request that may hold access still backs, read at once.
            // Checked before the revokes rather than one by one: a request that may no longer
            // hold access never may again, and one that still may is left alone either way.
            let ids: Vec<RequestId> = listed.iter().filter_map(|i| RequestId::from_grant_id(&i.grant_id)).collect();
            let backed: std::collections::HashSet<RequestId> = self
                .store
                .request_states(&ids)
                .await
                .map_err(CoreError::store)?
                .into_iter()
                .filter(|(_, state)| state.may_hold_access())
                .map(|(id, _)| id)
                .collect();
            for item in listed {
                if RequestId::from_grant_id(&item.grant_id).is_some_and(|id| backed.contains(&id)) {
                    continue;
                }
                if let Some(holder) = &item.holder
                    && !self.holder_unneeded(name, holder).await?
                {
                    continue;
                }
                let spec = item.spec.clone().unwrap_or_else(|| self.placeholder_spec(&item));
                // What the drifted grant gave may still be given by a live grant of the same
                // person and target (a provider that names the role and person in its list).
                let overlap = self.overlap(&spec).await?;
                match provider.revoke(&spec, overlap).await {
                    Ok(()) => {
                        let ev = NewEvent::new(
                            self.now(),
                            Actor::System,
                            EventKind::DriftRevoked,
                            RequestId::from_grant_id(&item.grant_id),
                            json!({ "provider": name, "grant_id": item.grant_id, "what": item.description }),
                        );
                        self.store.append_event(ev).await.map_err(CoreError::store)?;
                        info!(provider = %name, grant = %item.grant_id, "reconcile: removed drift");
                        report.drift_revoked.push(item.grant_id.clone());
                    }
                    Err(e) => report.errors.push((name.clone(), format!("{}: {e}", item.grant_id))),
                }
            }
        }
        Ok(report)
    }

    /// Whether access held for a person and target rather than for one grant (see `Holder`) is
    /// drift: its holder is a person of the policy and no live grant of theirs through this
    /// provider and target needs it. Access of a principal no person of the policy has is not
    /// taken for elevate's and is left alone: elevate cannot tell whose it is.
    async fn holder_unneeded(&self, provider: &str, holder: &Holder) -> CoreResult<bool> {
        let policy = self.policy();
        let roles: Vec<_> = policy
            .roles
            .values()
            .filter(|r| r.provider == provider && r.target == holder.target)
            .map(|r| r.name.clone())
            .collect();
        let persons: Vec<_> = policy
            .persons
            .values()
            .filter(|p| p.principals.get(&holder.principal_key) == Some(&holder.principal))
            .map(|p| p.id.clone())
            .collect();
        if roles.is_empty() || persons.is_empty() {
            return Ok(false);
        }
        for person in &persons {
            // No request has id 0: every live grant of the person counts.
            if self.store.still_needed(RequestId(0), person, &roles).await.map_err(CoreError::store)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn placeholder_spec(&self, item: &ListedGrant) -> GrantSpec {
        let now = self.now();
        GrantSpec {
            grant_id: item.grant_id.clone(),
            request: RequestId::from_grant_id(&item.grant_id).unwrap_or(RequestId(0)),
            role: crate::RoleName::parse("unknown").expect("constant"),
            person: crate::PersonId::parse("unknown").expect("constant"),
            principals: Default::default(),
            target: serde_json::Value::Null,
            starts_at: now,
            expires_at: now,
            handle: None,
        }
    }

    /// Walks the whole audit chain in pages and names the first broken `seq`.
    pub async fn verify_audit(&self) -> CoreResult<VerifyReport> {
        verify_store(self.store.as_ref()).await
    }

    /// What the periodic checkpoint verifies: the events since the last checkpoint it wrote
    /// (see `verify_since_checkpoint`).
    pub async fn verify_audit_since_checkpoint(&self) -> CoreResult<VerifyReport> {
        verify_since_checkpoint(self.store.as_ref()).await
    }
}

/// `elevate audit verify` without a running service.
pub async fn verify_store(store: &dyn crate::ports::Store) -> CoreResult<VerifyReport> {
    verify_store_with(store, None).await
}

/// Walks the chain; also checks every `audit.checkpoint` against the chain (the head it names
/// must be the hash stored at that seq) and, given the checkpoint key's public half, that each
/// checkpoint is signed by it. A DB admin who edits events and recomputes every hash after them
/// passes the chain walk, but not the signed checkpoints (nor the copies posted to chat).
pub async fn verify_store_with(store: &dyn crate::ports::Store, public_key: Option<&str>) -> CoreResult<VerifyReport> {
    walk(store, ChainVerifier::default(), public_key, &|_| {}).await
}

/// `verify_store_with`, telling `progress` how many events were checked after each page (a
/// long walk's caller shows it).
pub async fn verify_store_watched(
    store: &dyn crate::ports::Store,
    public_key: Option<&str>,
    progress: &(dyn Fn(u64) + Sync),
) -> CoreResult<VerifyReport> {
    walk(store, ChainVerifier::default(), public_key, progress).await
}

/// The `cursors` entry holding the `seq` of the last `audit.checkpoint` event that the periodic
/// checkpoint job wrote over an intact chain: where its next run starts.
pub const CHECKPOINT_CURSOR: &str = "audit:checkpoint";

/// For the periodic checkpoint job: walks only the events after the head that the last
/// checkpoint it wrote names (see `CHECKPOINT_CURSOR`), after checking that the chain still
/// holds that head, intact. The events up to that head were verified when that checkpoint was
/// written, so an hourly run costs what was appended in the hour, not the whole log. Without
/// such a checkpoint, or when anything is off (the head is gone or changed, a link or hash
/// after it is broken, a checkpoint names a seq before it), it walks the whole chain as
/// `verify_store` does, so a break is reported exactly as `verify_store` reports it.
///
/// What it does not look at again is the verified prefix: an edit there alone, that leaves the
/// named head in place, is found by `elevate audit verify` (which walks everything), not here.
pub async fn verify_since_checkpoint(store: &dyn crate::ports::Store) -> CoreResult<VerifyReport> {
    if let Some(report) = verify_after_last_checkpoint(store).await?
        && report.broken.is_none()
    {
        return Ok(report);
    }
    verify_store(store).await
}

/// The incremental walk; `None` when there is no usable checkpoint to start from.
async fn verify_after_last_checkpoint(store: &dyn crate::ports::Store) -> CoreResult<Option<VerifyReport>> {
    let at = store.cursor(CHECKPOINT_CURSOR).await.map_err(CoreError::store)?;
    if at <= 0 {
        return Ok(None);
    }
    let Some(cp) = event_at(store, at).await? else { return Ok(None) };
    if cp.kind != EventKind::AuditCheckpoint.as_str() {
        return Ok(None);
    }
    let (Some(seq), Some(hash)) = (cp.details["seq"].as_i64(), cp.details["hash"].as_str()) else {
        return Ok(None);
    };
    // The head it names must still be stored, unedited, with that hash.
    let Some(head) = event_at(store, seq).await? else { return Ok(None) };
    if head.hash != hash || head.compute_hash() != hash {
        return Ok(None);
    }
    walk(store, ChainVerifier::resume(seq, hash), None, &|_| {}).await.map(Some)
}

async fn event_at(store: &dyn crate::ports::Store, seq: i64) -> CoreResult<Option<crate::audit::AuditEvent>> {
    let page = store.events(seq - 1, 1).await.map_err(CoreError::store)?;
    Ok(page.into_iter().next().filter(|e| e.seq == seq))
}

/// Walks the events after the verifier's head (from the start for a fresh one).
async fn walk(
    store: &dyn crate::ports::Store,
    mut v: ChainVerifier,
    public_key: Option<&str>,
    progress: &(dyn Fn(u64) + Sync),
) -> CoreResult<VerifyReport> {
    // `hashes[i]` is the hash at seq `first + i`: from the resumed head on, when resuming.
    let (first, mut hashes, mut after) = match v.head() {
        Some((seq, hash)) => (seq, vec![hash.to_string()], seq),
        None => (1, Vec::new(), 0),
    };
    let mut report = VerifyReport { checked: 0, head: None, broken: None, checkpoints: 0, signed_checkpoints: 0 };
    'pages: loop {
        let page = store.events(after, 1000).await.map_err(CoreError::store)?;
        if page.is_empty() {
            break;
        }
        for ev in &page {
            if let Err(b) = v.check(ev) {
                report.broken = Some(b);
                break 'pages;
            }
            hashes.push(ev.hash.clone());
            if ev.kind == "audit.checkpoint"
                && let (Some(seq), Some(hash)) = (ev.details["seq"].as_i64(), ev.details["hash"].as_str())
            {
                report.checkpoints += 1;
                let stored = usize::try_from(seq - first).ok().and_then(|i| hashes.get(i));
                if stored.map(String::as_str) != Some(hash) {
                    report.broken = Some(ChainBreak {
                        seq: ev.seq,
                        why: format!("checkpoint names hash {hash} for seq {seq}, which the chain does not have"),
                    });
                    break 'pages;
                }
                if let Some(pk) = public_key {
                    let sig = ev.details["signature"].as_str().unwrap_or("");
                    if !crate::audit::verify_checkpoint(pk, seq, hash, sig) {
                        report.broken = Some(ChainBreak {
                            seq: ev.seq,
                            why: "checkpoint signature missing or not made by the checkpoint key".into(),
                        });
                        break 'pages;
                    }
                    report.signed_checkpoints += 1;
                }
            }
        }
        after = page.last().map(|e| e.seq).unwrap_or(after);
        progress(v.checked);
    }
    report.checked = v.checked;
    report.head = v.head().map(|(s, h)| (s, h.to_string()));
    Ok(report)
}

/// The usage report for `since..until`, straight from the store (no running service needed).
pub async fn report_from_store(
    store: &dyn crate::ports::Store,
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> CoreResult<crate::report::Report> {
    let q = crate::ports::RequestQuery { created_since: Some(since), limit: Some(10_000), ..Default::default() };
    let requests = store.list_requests(&q).await.map_err(CoreError::store)?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(after, 1000).await.map_err(CoreError::store)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page.into_iter().filter(|e| e.at >= since && e.kind == "grant.revoke_failed"));
    }
    Ok(crate::report::build(&requests, &events, since, until))
}

impl Service {
    /// Posts the report for the last `period` to the audit feed (the chat notifiers render it
    /// as a table), as an audit event so it is delivered even across restarts.
    pub async fn post_report(&self, period: crate::GrantDuration) -> CoreResult<crate::report::Report> {
        let until = self.now();
        let since = until - period.as_chrono();
        let report = report_from_store(self.store.as_ref(), since, until).await?;
        let ev = NewEvent::new(
            until,
            Actor::System,
            EventKind::Report,
            None,
            json!({ "title": format!("elevate usage report, last {period}"), "table": report.table(),
                    "since": since.to_rfc3339(), "until": until.to_rfc3339() }),
        );
        self.store.append_event(ev).await.map_err(CoreError::store)?;
        Ok(report)
    }
}
