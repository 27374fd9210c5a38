//! The request lifecycle. Every change of state is a compare-and-set in the store plus exactly
//! one audit event, in one transaction; this module says which changes exist.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a request is. Stored as its `as_str()` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for approvals. Times out after the role's pending timeout.
    Pending,
    /// A role of a request of several roles whose own approvals are all in, waiting for the
    /// other roles': a request is granted all at once or not at all. Holds no access. Still
    /// times out with the role's pending timeout, and ends with the others if one is refused.
    Waiting,
    /// Approved ahead of a start time (scheduled access): holds no access. At its start it is
    /// checked again against the policy, lockdowns and rules of that moment, then approved
    /// and applied, or refused. Its approval expires if unused (see `scheduled_approval_ttl`).
    Scheduled,
    /// Enough approvals; a durable "apply" item is queued and the provider has not confirmed yet.
    /// A crash here re-runs the apply, which is idempotent on the grant id.
    Approved,
    /// The provider applied the grant; it ends at `expires_at`.
    Active,
    /// Access is being removed (expiry, release or revoke). The provider call is retried with
    /// capped backoff until it succeeds; a grant is never dropped from here.
    Revoking,
    /// Removed at its expiry time.
    Expired,
    /// Given back early by the requester.
    Released,
    /// Taken away by an approver, the security team, a lockdown or a rule.
    Revoked,
    /// Refused by an approver, a veto or a rule.
    Denied,
    /// Withdrawn by the requester before a decision.
    Cancelled,
    /// Nobody decided within the role's pending timeout.
    TimedOut,
    /// The provider refused to apply it (a permanent error, or transient errors past the retry
    /// budget). Anything the provider may have half-applied is cleaned up with a revoke.
    GrantFailed,
    /// An extension request that was approved and added to its parent grant's time.
    Extended,
}

impl State {
    pub const ALL: [State; 14] = [
        State::Pending,
        State::Waiting,
        State::Scheduled,
        State::Approved,
        State::Active,
        State::Revoking,
        State::Expired,
        State::Released,
        State::Revoked,
        State::Denied,
        State::Cancelled,
        State::TimedOut,
        State::GrantFailed,
        State::Extended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Waiting => "waiting",
            State::Scheduled => "scheduled",
            State::Approved => "approved",
            State::Active => "active",
            State::Revoking => "revoking",
            State::Expired => "expired",
            State::Released => "released",
            State::Revoked => "revoked",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::TimedOut => "timed_out",
            State::GrantFailed => "grant_failed",
            State::Extended => "extended",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            State::Pending | State::Waiting | State::Scheduled | State::Approved | State::Active | State::Revoking
        )
    }

    /// Whether the provider may currently be giving access for this request.
    pub fn may_hold_access(self) -> bool {
        matches!(self, State::Approved | State::Active | State::Revoking)
    }

    /// The transitions the lifecycle allows. The store's compare-and-set is the enforcement; this
    /// is the map the service consults before asking, and what the tests walk.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Pending, Approved)
                | (Pending, Waiting)
                | (Pending, Scheduled)
                | (Waiting, Scheduled)
                | (Scheduled, Approved)
                | (Scheduled, Denied)
                | (Scheduled, Cancelled)
                | (Scheduled, TimedOut)
                | (Scheduled, Revoked)
                | (Waiting, Approved)
                | (Waiting, Denied)
                | (Waiting, Cancelled)
                | (Waiting, TimedOut)
                | (Pending, Denied)
                | (Pending, Cancelled)
                | (Pending, TimedOut)
                | (Approved, Active)
                | (Approved, GrantFailed)
                | (Approved, Revoked)
                | (Approved, Extended)
                | (Active, Revoking)
                | (Revoking, Expired)
                | (Revoking, Released)
                | (Revoking, Revoked)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().replace('_', " ").as_str())
    }
}

/// Why an active grant is being removed; decides the final state once the provider confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Expired,
    Released,
    Revoked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Released => "released",
            EndReason::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        [EndReason::Expired, EndReason::Released, EndReason::Revoked].into_iter().find(|r| r.as_str() == s)
    }

    pub fn final_state(self) -> State {
        match self {
            EndReason::Expired => State::Expired,
            EndReason::Released => State::Released,
            EndReason::Revoked => State::Revoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn final_states_have_no_way_out() {
        for from in State::ALL.into_iter().filter(|s| s.is_final()) {
            for to in State::ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn access_is_only_given_after_approval_and_removed_through_revoking() {
        assert!(!State::Pending.can_become(State::Active), "break-glass and auto-approval pass through approved too");
        assert!(!State::Waiting.may_hold_access() && !State::Waiting.can_become(State::Active));
        assert!(!State::Waiting.can_become(State::Revoking), "a waiting role never held access to remove");
        assert!(!State::Scheduled.may_hold_access() && !State::Scheduled.can_become(State::Active));
        assert!(State::Scheduled.can_become(State::Approved), "at its start it is approved, then applied");
        assert!(!State::Active.can_become(State::Expired));
        assert!(State::Active.can_become(State::Revoking));
        assert!(State::Revoking.can_become(State::Expired));
    }
}
