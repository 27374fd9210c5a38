//! The audit chain. Append-only; each event's hash covers a canonical encoding of the event and
//! the previous event's hash, so that editing or deleting a row breaks the chain from there on.
//! `verify` walks it and names the first broken `seq`. (Truncating the tail, or recomputing the
//! whole chain, is only caught against a copy of the head kept elsewhere: the checkpoints.)

use crate::{PersonId, RequestId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it. Stored as `person:alice`, `rule:freeze`, `system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Actor {
    Person(PersonId),
    /// A policy rule decided (auto-approval, rule-deny).
    Rule(String),
    /// The scheduler or reconciliation.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Person(p) => write!(f, "person:{p}"),
            Actor::Rule(r) => write!(f, "rule:{r}"),
            Actor::System => f.write_str("system"),
        }
    }
}

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What happened. The names are stable: exports and the audit feed show them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum EventKind { $($(#[$doc])* $variant,)* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(EventKind::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    RequestCreated = "request.created",
    /// An approval that did not yet reach the threshold.
    ApprovalAdded = "request.approval_added",
    /// A click or API call that tried to approve and was refused (not an approver, own request,
    /// twice, already decided). Audited because attempts matter to security teams.
    ApprovalRefused = "request.approval_refused",
    RequestApproved = "request.approved",
    RequestDenied = "request.denied",
    RequestCancelled = "request.cancelled",
    RequestTimedOut = "request.timed_out",
    /// A scheduled request's start came, it passed the checks of that moment and is applied.
    RequestStarted = "request.started",
    RequestReminder = "request.reminder",
    GrantApplied = "grant.applied",
    /// A transient provider error while applying; the apply item is retried.
    GrantApplyRetry = "grant.apply_retry",
    GrantFailed = "grant.failed",
    /// Access is being removed; the provider call follows.
    GrantRevoking = "grant.revoking",
    GrantExpired = "grant.expired",
    GrantReleased = "grant.released",
    GrantRevoked = "grant.revoked",
    /// A provider revoke failed; it is retried with capped backoff.
    RevokeFailed = "grant.revoke_failed",
    /// Repeated revoke failures: a human should look.
    RevokeAlert = "grant.revoke_alert",
    GrantExtended = "grant.extended",
    ExpiryWarning = "grant.expiry_warning",
    /// An apply finished after the request had been revoked or cancelled, and was undone.
    GrantUndone = "grant.undone",
    /// Reconciliation found something elevate created with no grant behind it, and removed it.
    DriftRevoked = "grant.drift_revoked",
    /// The chain head as it was, posted to the audit feed (and signed when a key is configured)
    /// so that a copy of it lives outside the database.
    AuditCheckpoint = "audit.checkpoint",
    /// Approvers of the escalation groups may now approve a request that waited too long.
    RequestEscalated = "request.escalated",
    /// Something the security team must look at now: a flagged person, repeated refused
    /// attempts, a break-glass grant.
    SecurityAlert = "security.alert",
    /// A chat actor refused before anything else: a bot or app user, a deactivated account, a
    /// guest, a member of another workspace or server. Audited because such attempts matter to
    /// security teams even though no person of the policy is behind them.
    ActorRefused = "security.actor_refused",
    SecurityLockdown = "security.lockdown",
    SecurityUnlock = "security.unlock",
    /// A break-glass grant's review is still open.
    BreakglassReviewPending = "breakglass.review_pending",
    BreakglassReviewed = "breakglass.reviewed",
    /// The periodic usage report, posted to the audit feed.
    Report = "report.posted",
    /// A new policy was swapped in without a restart: the config's hash and what changed.
    ConfigReloaded = "config.reloaded",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event about to be appended. The store assigns `seq`, `prev_hash` and `hash` inside the
/// same transaction as the state change it records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub kind: EventKind,
    pub subject: Option<RequestId>,
    pub details: Value,
}

impl NewEvent {
    pub fn new(at: DateTime<Utc>, actor: Actor, kind: EventKind, subject: Option<RequestId>, details: Value) -> Self {
        Self { at, actor, kind, subject, details }
    }
}

/// An event as stored. `actor` and `kind` are kept as the strings that were hashed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub subject: Option<i64>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// Seals a new event onto the chain after `prev` (`(seq, hash)` of the current head).
    pub fn seal(new: &NewEvent, prev: Option<(i64, &str)>) -> AuditEvent {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h.to_string()),
            None => (1, GENESIS.to_string()),
        };
        let at = crate::time::from_millis(crate::time::to_millis(new.at));
        let mut ev = AuditEvent {
            seq,
            at,
            actor: new.actor.to_string(),
            kind: new.kind.as_str().to_string(),
            subject: new.subject.map(|s| s.0),
            details: new.details.clone(),
            prev_hash,
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        ev
    }

    /// `SHA-256(canonical(event) ‖ prev_hash)`, hex.
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq,
            "at": crate::time::to_millis(self.at),
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "details": self.details,
        });
        let mut h = Sha256::new();
        h.update(canonical_json(&body).as_bytes());
        h.update(self.prev_hash.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The hashed text of a new event on either side of its `seq`, which only the store knows:
/// an event's hash is `SHA-256(before ‖ seq ‖ after ‖ prev_hash)` (as [`AuditEvent::compute_hash`]
/// computes it). PostgreSQL numbers, hashes and links an event in the statement that moves the
/// chain's head, so that the head's row lock is held for one statement and the commit.
pub fn hashed_around_seq(new: &NewEvent) -> (String, String) {
    let body = serde_json::json!({
        "actor": new.actor.to_string(),
        "at": crate::time::to_millis(new.at),
        "details": new.details,
        "kind": new.kind.as_str(),
    });
    // Keys sort as actor, at, details, kind, seq, subject: `seq` goes after the first four.
    let mut before = canonical_json(&body);
    before.pop();
    before.push_str(",\"seq\":");
    let after = format!(",\"subject\":{}}}", canonical_json(&serde_json::json!(new.subject.map(|s| s.0))));
    (before, after)
}

/// JSON with object keys sorted and no insignificant white space, independent of how serde_json
/// happens to be configured (its `preserve_order` feature can be switched on by any dependency).
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub why: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit chain broken at seq {}: {}", self.seq, self.why)
    }
}

/// Walks events in `seq` order, checking the hash of each and the link to the one before.
/// Feed it in pages: carry the `ChainVerifier` across calls.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    pub checked: u64,
}

impl ChainVerifier {
    /// A verifier that carries on after `(seq, hash)`, a head known to be good (one a
    /// checkpoint named), without walking the events up to it again.
    pub fn resume(seq: i64, hash: &str) -> Self {
        ChainVerifier { last: Some((seq, hash.to_string())), checked: 0 }
    }

    pub fn check(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        let (want_seq, want_prev) = match &self.last {
            Some((s, h)) => (s + 1, h.as_str()),
            None => (1, GENESIS),
        };
        if ev.seq != want_seq {
            return Err(ChainBreak {
                seq: want_seq,
                why: format!("event {want_seq} is missing (next stored event is {})", ev.seq),
            });
        }
        if ev.prev_hash != want_prev {
            return Err(ChainBreak { seq: ev.seq, why: "prev_hash does not match the previous event's hash".into() });
        }
        if ev.compute_hash() != ev.hash {
            return Err(ChainBreak { seq: ev.seq, why: "contents do not match the stored hash (edited?)".into() });
        }
        self.last = Some((ev.seq, ev.hash.clone()));
        self.checked += 1;
        Ok(())
    }

    /// The head reached so far, to compare with a checkpoint.
    pub fn head(&self) -> Option<(i64, &str)> {
        self.last.as_ref().map(|(s, h)| (*s, h.as_str()))
    }
}

/// What a checkpoint signature covers: the chain head at `seq`.
pub fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("elevate audit checkpoint {seq} {hash}")
}

/// Signs a checkpoint with an Ed25519 key (32-byte seed); returns `(signature, public key)` hex.
pub fn sign_checkpoint(seed: &[u8; 32], seq: i64, hash: &str) -> (String, String) {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let sig = key.sign(checkpoint_message(seq, hash).as_bytes());
    (hex::encode(sig.to_bytes()), hex::encode(key.verifying_key().to_bytes()))
}

/// Checks a checkpoint signature against a public key (hex).
pub fn verify_checkpoint(public_key_hex: &str, seq: i64, hash: &str, signature_hex: &str) -> bool {
    let (Ok(pk), Ok(sig)) = (hex::decode(public_key_hex), hex::decode(signature_hex)) else { return false };
    let (Ok(pk), Ok(sig)) = (<[u8; 32]>::try_from(pk.as_slice()), <[u8; 64]>::try_from(sig.as_slice())) else {
        return false;
    };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else { return false };
    vk.verify_strict(checkpoint_message(seq, hash).as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
}

/// Builds a JSON object from pairs, skipping `None`s; keeps event construction readable.
pub fn details<const N: usize>(pairs: [(&str, Option<Value>); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let new = NewEvent::new(
                crate::time::from_millis(1_700_000_000_000 + i as i64),
                Actor::System,
                EventKind::RequestCreated,
                Some(RequestId(i as i64 + 1)),
                json!({"b": 1, "a": [i, "x"]}),
            );
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let ev = AuditEvent::seal(&new, prev);
            out.push(ev);
        }
        out
    }

    #[test]
    fn the_text_around_seq_hashes_to_the_sealed_hash() {
        let mut prev: Option<AuditEvent> = None;
        for (i, subject) in [Some(RequestId(7)), None, Some(RequestId(123456))].into_iter().enumerate() {
            let new = NewEvent::new(
                crate::time::from_millis(1_700_000_000_123 + i as i64),
                Actor::Person(PersonId::parse("alice").unwrap()),
                EventKind::RequestApproved,
                subject,
                json!({"z": "é\"q", "a": [1, {"y": null, "b": 2.5}]}),
            );
            let sealed = AuditEvent::seal(&new, prev.as_ref().map(|p| (p.seq, p.hash.as_str())));
            let (before, after) = hashed_around_seq(&new);
            let text = format!("{before}{}{after}{}", sealed.seq, sealed.prev_hash);
            assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), sealed.hash);
            prev = Some(sealed);
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"z": {"b": 1, "a": 2}, "a": [ {"y": 1, "x": 2} ]});
        assert_eq!(canonical_json(&v), r#"{"a":[{"x":2,"y":1}],"z":{"a":2,"b":1}}"#);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let mut v = ChainVerifier::default();
        for ev in chain(5) {
            v.check(&ev).unwrap();
        }
        assert_eq!(v.checked, 5);
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].details = json!({"b": 2});
        let mut v = ChainVerifier::default();
        let err = events.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.seq, 3);
    }

    #[test]
    fn a_deleted_event_is_named() {
        let mut events = chain(5);
        events.remove(1);
        let mut v = ChainVerifier::default();
        let err = events.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.seq, 2);
    }

    #[test]
    fn a_recomputed_hash_breaks_the_next_link() {
        let mut events = chain(5);
        events[1].details = json!({"forged": true});
        events[1].hash = events[1].compute_hash();
        let mut v = ChainVerifier::default();
        let err = events.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.seq, 3);
    }
}
