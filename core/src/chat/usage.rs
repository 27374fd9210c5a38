//! How sub-commands are typed and described: the usage lines of help and refusals, and the
//! argument list from which platforms with typed options (Discord) register `/elevate`. One
//! table, [`USAGES`], so help, refusals and registration cannot drift apart.

/// How a platform's people type commands, so usage lines match what they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Free text after `/elevate` (Slack, Mattermost, Teams): `/elevate extend ID DURATION`.
    Words,
    /// Sub-commands with named options (Discord): `/elevate extend id duration`.
    Options,
}

/// What kind of value an argument takes, so platforms with typed options can say so (Discord:
/// an integer for a request number, autocomplete for a role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A role the caller may request (suggested as they type).
    Role,
    Duration,
    /// A request number.
    Id,
    /// A role name or `all`.
    Scope,
    /// Free text: a reason, a ticket, a note.
    Text,
}

/// One named argument of a sub-command.
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub what: &'static str,
}

const fn arg(name: &'static str, kind: ArgKind, required: bool, what: &'static str) -> Arg {
    Arg { name, kind, required, what }
}

const ID: Arg = arg("id", ArgKind::Id, true, "Request number, e.g. 41");
const ROLE: Arg = arg("role", ArgKind::Role, true, "The role you need");
/// A request's roles: one, a bundle, or several separated by commas.
const ROLES: Arg = arg("role", ArgKind::Role, true, "The role you need (several: db,logs; or a bundle)");

/// One sub-command as people see it in help, and as platforms with typed options register it.
/// Required arguments come first (Discord insists on it).
pub struct Usage {
    pub name: &'static str,
    /// The free-text syntax after the name (`ID DURATION [REASON…]`).
    pub words: &'static str,
    pub args: &'static [Arg],
    pub what: &'static str,
    /// Only for approvers and the security team.
    pub restricted: bool,
}

impl Usage {
    pub fn line(&self, syntax: Syntax) -> String {
        let args = match syntax {
            Syntax::Words => self.words.to_string(),
            Syntax::Options => self
                .args
                .iter()
                .map(|a| if a.required { a.name.to_string() } else { format!("[{}]", a.name) })
                .collect::<Vec<_>>()
                .join(" "),
        };
        match (syntax, self.name) {
            (Syntax::Words, "request") => format!("/elevate {args}"),
            _ if args.is_empty() => format!("/elevate {}", self.name),
            _ => format!("/elevate {} {args}", self.name),
        }
    }
}

/// Every sub-command, in the order help lists them.
pub const USAGES: &[Usage] = &[
    Usage {
        name: "request",
        words: "ROLE DURATION REASON… [at YYYY-MM-DD HH:MM [ZONE] | in DURATION]",
        args: &[
            ROLES,
            arg("reason", ArgKind::Text, true, "What you need it for"),
            arg("duration", ArgKind::Duration, false, "How long, e.g. 30m or 2h (default: the role's)"),
            arg("ticket", ArgKind::Text, false, "A ticket, e.g. INC-4211"),
            arg("at", ArgKind::Text, false, "Start later: 2026-12-05 22:00 Europe/Berlin"),
            arg("in", ArgKind::Duration, false, "Start later: in this long, e.g. 3h"),
        ],
        what: "ask for a role, e.g. prod-db 2h INC-4211 fix replication lag; several at once with commas \
               (prod-db,logs 2h …) or a bundle's name (`/elevate` alone opens a form in Slack)",
        restricted: false,
    },
    Usage { name: "status", words: "", args: &[], what: "your pending requests and active grants", restricted: false },
    Usage {
        name: "mine",
        words: "",
        args: &[],
        what: "the same with buttons, and what waits for your decision",
        restricted: false,
    },
    Usage {
        name: "show",
        words: "ID",
        args: &[ID],
        what: "one request as its card shows it, with what you may do about it",
        restricted: false,
    },
    Usage {
        name: "release",
        words: "[ID]",
        args: &[arg("id", ArgKind::Id, false, "Request number (default: your only active grant)")],
        what: "give access back early",
        restricted: false,
    },
    Usage {
        name: "extend",
        words: "ID DURATION [REASON…]",
        args: &[
            ID,
            arg("duration", ArgKind::Duration, true, "How much more, e.g. 30m"),
            arg("reason", ArgKind::Text, false, "Why more time"),
        ],
        what: "ask for more time",
        restricted: false,
    },
    Usage { name: "cancel", words: "ID", args: &[ID], what: "withdraw a pending request", restricted: false },
    Usage { name: "approve", words: "ID", args: &[ID], what: "approve a request", restricted: true },
    Usage {
        name: "deny",
        words: "ID [REASON…]",
        args: &[ID, arg("reason", ArgKind::Text, false, "Why it is denied (a form asks if empty)")],
        what: "deny a request",
        restricted: true,
    },
    Usage {
        name: "breakglass",
        words: "ROLE DURATION JUSTIFICATION…",
        args: &[
            ROLE,
            arg("duration", ArgKind::Duration, true, "How long, e.g. 30m"),
            arg("justification", ArgKind::Text, true, "What is on fire"),
        ],
        what: "emergency access without approval (alerts security)",
        restricted: true,
    },
    Usage {
        name: "revoke",
        words: "ID REASON…",
        args: &[ID],
        what: "take a grant away (approvers, security)",
        restricted: true,
    },
    Usage {
        name: "lockdown",
        words: "ROLE|all REASON…",
        args: &[arg("scope", ArgKind::Scope, true, "A role name, or all")],
        what: "kill switch: refuse a role (or all) and revoke its grants (security)",
        restricted: true,
    },
    Usage {
        name: "unlock",
        words: "ROLE|all",
        args: &[arg("scope", ArgKind::Scope, true, "A role name, or all")],
        what: "lift a lockdown (security)",
        restricted: true,
    },
    Usage {
        name: "review",
        words: "ID NOTE…",
        args: &[ID, arg("note", ArgKind::Text, true, "What happened and whether it was justified")],
        what: "close the review of a break-glass grant (security)",
        restricted: true,
    },
];

/// The usage line of one sub-command.
pub fn usage(name: &str, syntax: Syntax) -> String {
    USAGES.iter().find(|u| u.name == name).map(|u| u.line(syntax)).unwrap_or_else(|| "/elevate help".into())
}
