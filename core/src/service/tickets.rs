//! Ticket rules at request time and afterwards. At request time every ticket rule of the role
//! asks its system for the ticket and checks it (`policy/tickets.rs`); a ticket that is missing,
//! in the wrong project or status, or not the requester's refuses the request and creates
//! nothing. A system that cannot be asked refuses too ("cannot verify"): failing closed, because
//! the rule exists to stop access without a real ticket. Later, the `ticket_watch` periodic job
//! ends grants whose rule says `end_when_closed` once their ticket is closed.

use super::Service;
use crate::{
    EndReason, Field, Reason, State, UserError,
    audit::Actor,
    error::{CoreError, CoreResult, ErrorCode},
    policy::{
        Caller, Policy, Role,
        rules::{FiredRule, RuleKind},
        tickets::TicketRule,
    },
    ports::RequestQuery,
    tickets::{StatusCategory, Ticket},
};
use regex::Regex;
use std::{collections::BTreeMap, sync::LazyLock};
use tracing::{info, warn};

/// A Jira issue key (`INC-42`), found in the reason when no ticket was given.
static JIRA_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9_]{0,49}-[0-9]{1,12}\b").expect("valid"));

/// What the ticket rules found: the ticket (possibly found in the reason) and one detail line
/// per rule, with its link.
pub(super) struct TicketFinding {
    pub ticket: Option<String>,
    pub fired: Vec<FiredRule>,
}

impl Service {
    pub(super) async fn ticket_rules(
        &self,
        policy: &Policy,
        caller: &Caller,
        role: &Role,
        ticket: Option<String>,
        reason: &str,
    ) -> CoreResult<TicketFinding> {
        let mut found = TicketFinding { ticket, fired: Vec::new() };
        for rule in policy.rules.iter().filter(|r| r.roles.contains(&role.name)) {
            let RuleKind::Ticket(tr) = &rule.kind else { continue };
            if found.ticket.is_none() {
                found.ticket = JIRA_KEY.find(reason).map(|m| m.as_str().to_string());
            }
            let Some(key) = found.ticket.clone() else {
                return Err(UserError::invalid(format!(
                    "`{}` needs a ticket{}: give one (like INC-42) in the ticket field or the reason.",
                    role.name,
                    if tr.projects.is_empty() { String::new() } else { format!(" in {}", tr.projects.join(" or ")) }
                ))
                .on(Field::Ticket)
                .into());
            };
            let ticket = self.fetch_ticket(tr, &key).await.map_err(|e| {
                warn!(rule = %rule.name, system = %tr.system, ticket = %key, error = %e, "cannot verify ticket: refused");
                CoreError::from(
                    UserError::new(
                        ErrorCode::RuleDenied,
                        format!("Cannot verify ticket {key}: {e}. Nothing was requested; try again in a minute."),
                    )
                    .on(Field::Ticket),
                )
            })?;
            let system = self.tickets.get(&tr.system).map(|s| s.name().to_string()).unwrap_or_default();
            let Some(ticket) = ticket else {
                return Err(UserError::invalid(format!(
                    "Ticket {key} does not exist in {system} (or elevate may not see it)."
                ))
                .on(Field::Ticket)
                .into());
            };
            let person = policy.person(&caller.person).ok_or_else(|| UserError::forbidden("Unknown person."))?;
            tr.check(role, person, &ticket).map_err(|m| UserError::invalid(m).on(Field::Ticket))?;
            found.fired.push(FiredRule {
                rule: rule.name.clone(),
                effect: "ticket".into(),
                detail: Some(describe(&ticket)),
                credit: None,
            });
        }
        Ok(found)
    }

    async fn fetch_ticket(&self, rule: &TicketRule, key: &str) -> Result<Option<Ticket>, crate::tickets::TicketError> {
        match self.tickets.get(&rule.system) {
            Some(system) => system.ticket(key).await,
            None => Err(crate::tickets::TicketError(format!("ticket system `{}` is not configured", rule.system))),
        }
    }

    /// The `ticket_watch` job: ends active grants whose ticket rule says `end_when_closed` and
    /// whose ticket is now closed (status category done) or gone. A system that cannot be asked
    /// ends nothing; the next run asks again. Returns how many grants it ended.
    pub async fn watch_tickets(&self) -> CoreResult<usize> {
        let policy = self.policy();
        let q = RequestQuery { states: vec![State::Active], skip_approvals: true, ..RequestQuery::default() };
        let active = self.store.list_requests(&q).await.map_err(CoreError::store)?;
        let mut seen: BTreeMap<(String, String), Option<Ticket>> = BTreeMap::new();
        let mut ended = 0;
        for req in active {
            let Some(key) = req.ticket.clone() else { continue };
            for fired in req.rules.iter().filter(|f| f.effect == "ticket") {
                let Some(rule) = policy.rules.iter().find(|r| r.name == fired.rule) else { continue };
                let RuleKind::Ticket(tr) = &rule.kind else { continue };
                if !tr.end_when_closed {
                    continue;
                }
                let cache_key = (tr.system.clone(), key.clone());
                let ticket = match seen.get(&cache_key) {
                    Some(t) => t.clone(),
                    None => match self.fetch_ticket(tr, &key).await {
                        Ok(t) => {
                            seen.insert(cache_key, t.clone());
                            t
                        }
                        Err(e) => {
                            warn!(request = %req.id, ticket = %key, error = %e, "ticket watch: cannot read the ticket; asking again next run");
                            continue;
                        }
                    },
                };
                let why = match &ticket {
                    None => format!("ticket {key} no longer exists"),
                    Some(t) if t.category == Some(StatusCategory::Done) => {
                        format!("ticket {key} was closed ({})", t.status)
                    }
                    Some(_) => continue,
                };
                let reason = Reason::parse(&why).map_err(|e| CoreError::Internal(e.to_string()))?;
                match self
                    .end(Actor::Rule(rule.name.clone()), req.id, EndReason::Revoked, Some(reason), Box::new(|_| true))
                    .await
                {
                    Ok(_) => {
                        info!(request = %req.id, ticket = %key, "grant ended: {why}");
                        ended += 1;
                    }
                    Err(CoreError::User(_)) => {} // ended meanwhile by someone else
                    Err(e) => return Err(e),
                }
                break;
            }
        }
        Ok(ended)
    }
}

/// "INC-42 (In Progress, project INC, assigned to Alice): https://jira.example.com/browse/INC-42".
fn describe(t: &Ticket) -> String {
    let assignee = t
        .assignee
        .as_ref()
        .and_then(|a| a.display_name.clone().or(a.email.clone()).or(a.id.clone()))
        .map(|a| format!(", assigned to {a}"))
        .unwrap_or_default();
    format!("{} ({}, project {}{assignee}): {}", t.key, t.status, t.project, t.url)
}
