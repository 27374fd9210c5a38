//! Tickets that exist: the [`TicketSystem`] port (Jira Cloud, Jira Data Center or a generic HTTP
//! check, implemented by `elevate-tickets`) and the named systems the policy's ticket rules use.

use async_trait::async_trait;
use std::{collections::BTreeMap, sync::Arc};

/// Jira's status categories; the generic check uses the same three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCategory {
    /// To do (`new`).
    New,
    /// In progress (`indeterminate`).
    Indeterminate,
    /// Done (`done`): the ticket is closed.
    Done,
}

impl StatusCategory {
    pub const ALL: [StatusCategory; 3] = [StatusCategory::New, StatusCategory::Indeterminate, StatusCategory::Done];

    /// Jira's key: `new`, `indeterminate`, `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCategory::New => "new",
            StatusCategory::Indeterminate => "indeterminate",
            StatusCategory::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Who a ticket is assigned to, as the system names them (Jira Cloud: `accountId`; Data Center:
/// `name`; either may hide the email).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignee {
    pub id: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// A ticket as the system reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub key: String,
    pub project: String,
    pub status: String,
    pub category: Option<StatusCategory>,
    pub assignee: Option<Assignee>,
    /// Where a person opens it (Jira: `{base}/browse/{key}`).
    pub url: String,
}

/// The system could not say: unreachable, 5xx after retries, credentials refused. The message
/// names the system and the status, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TicketError(pub String);

/// A ticket system.
#[async_trait]
pub trait TicketSystem: Send + Sync {
    /// What the system calls itself in messages ("Jira").
    fn name(&self) -> &str;
    /// The ticket, `None` when it does not exist (or the system's account may not see it).
    async fn ticket(&self, key: &str) -> Result<Option<Ticket>, TicketError>;
}

/// The configured systems by their config name (`[tickets.NAME]`).
#[derive(Default, Clone)]
pub struct TicketSystems {
    systems: BTreeMap<String, Arc<dyn TicketSystem>>,
}

impl TicketSystems {
    pub fn add(&mut self, name: &str, system: Arc<dyn TicketSystem>) {
        self.systems.insert(name.to_string(), system);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn TicketSystem>> {
        self.systems.get(name)
    }
}
