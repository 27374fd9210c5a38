//! The chat command model: every `/elevate …` sub-command, button and form submission, parsed
//! once into [`Command`] whatever the platform. Slack (and any platform that hands over the typed
//! text) uses [`Command::parse`]; Discord's named options use [`Command::from_options`]; buttons
//! and forms build a command from [`super::Action`] and [`super::FormKind`]. Both parsers share
//! the validating helpers here, so `-5m` is refused the same way everywhere.

use super::usage::{Syntax, usage};
use crate::{Field, GrantDuration, RequestId, UserError, schedule::StartSpec};

/// One thing a person asks elevate to do in chat. Authority is not checked here: the handler
/// asks core when it runs, with the policy as it is then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `/elevate` alone: the request form.
    RequestForm,
    Request {
        role: String,
        duration: Option<String>,
        reason: String,
        ticket: Option<String>,
        /// Scheduled access: when it starts.
        start: Option<StartSpec>,
    },
    /// The caller's open requests and active grants.
    Status,
    /// Like status, with buttons, plus what waits for the caller's decision.
    Mine,
    /// One request as its card shows it, with what the caller may do about it.
    Show(RequestId),
    /// Without a number: the caller's only active grant.
    Release(Option<RequestId>),
    /// Without a duration: the extend form.
    Extend {
        id: RequestId,
        duration: Option<String>,
        reason: Option<String>,
    },
    Cancel(RequestId),
    Approve(RequestId),
    /// Without a reason: the deny form.
    Deny {
        id: RequestId,
        reason: Option<String>,
    },
    Breakglass {
        role: String,
        duration: String,
        justification: String,
    },
    Review {
        id: RequestId,
        note: String,
    },
    /// Without a reason: a form whose submission is the confirmation; with one, a button
    /// behind a confirmation question.
    Lockdown {
        scope: String,
        reason: Option<String>,
    },
    /// The confirmed lockdown: acts.
    ConfirmLockdown {
        scope: String,
        reason: String,
    },
    Unlock {
        scope: String,
    },
    /// Asks for confirmation, like [`Command::Lockdown`].
    Revoke {
        id: RequestId,
        reason: Option<String>,
    },
    /// The confirmed revoke: acts.
    ConfirmRevoke {
        id: RequestId,
        reason: String,
    },
}

/// A refusal about input, naming the usage.
fn usage_error(name: &str, syntax: Syntax, field: Field) -> UserError {
    UserError::invalid(format!("Usage: `{}`.", usage(name, syntax))).on(field)
}

/// The refusal for a button or form whose payload elevate did not make (or no longer reads).
pub fn foreign_payload() -> UserError {
    UserError::invalid("This button or form is not one elevate can read; type the command instead (`/elevate help`).")
}

/// A request number typed or carried by a button or form. Refused before any lookup.
pub fn parse_id(s: &str) -> Result<RequestId, UserError> {
    RequestId::parse(s.chars().take(40).collect::<String>().as_str()).map_err(|e| UserError::invalid(e).on(Field::Id))
}

/// Whether a word was meant as a duration: it starts like a number (`2h`, `-5m`, `1.5h`,
/// `5mins`). Such a word is never taken as the first word of a reason, so a typo cannot
/// silently turn into the role's default duration.
fn looks_like_duration(word: &str) -> bool {
    let w = word.strip_prefix(['-', '+']).unwrap_or(word);
    w.starts_with(|c: char| c.is_ascii_digit())
        || (w.starts_with('.') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Splits `DURATION REASON…` where the duration is optional: a word that looks like a duration
/// must be a valid one. The one rule for every way of typing a request (chat, CLI).
pub fn duration_and_rest(words: &[&str]) -> Result<(Option<String>, String), UserError> {
    match words.split_first() {
        Some((d, rest)) if looks_like_duration(d) => {
            GrantDuration::parse(d).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
            Ok((Some(d.to_string()), rest.join(" ")))
        }
        _ => Ok((None, words.join(" "))),
    }
}

fn rest(words: &[&str]) -> Option<String> {
    Some(words.join(" ")).filter(|s| !s.is_empty())
}

impl Command {
    /// Parses the text typed after `/elevate`.
    pub fn parse(text: &str) -> Result<Command, UserError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some((first, args)) = words.split_first() else { return Ok(Command::RequestForm) };
        let w = Syntax::Words;
        let id = |field_name: &str| -> Result<RequestId, UserError> {
            match args.first() {
                Some(s) => parse_id(s),
                None => Err(usage_error(field_name, w, Field::Id)),
            }
        };
        Ok(match *first {
            "help" => Command::Help,
            "status" => Command::Status,
            "mine" => Command::Mine,
            "release" => Command::Release(args.first().map(|s| parse_id(s)).transpose()?),
            "extend" => {
                let id = id("extend")?;
                match args.get(1) {
                    None => Command::Extend { id, duration: None, reason: None },
                    Some(d) => {
                        GrantDuration::parse(d).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
                        Command::Extend { id, duration: Some(d.to_string()), reason: rest(&args[2..]) }
                    }
                }
            }
            "show" => Command::Show(id("show")?),
            "cancel" => Command::Cancel(id("cancel")?),
            "approve" => Command::Approve(id("approve")?),
            "deny" => Command::Deny { id: id("deny")?, reason: rest(&args[1..]) },
            "breakglass" => match args {
                [role, duration, why @ ..] if !why.is_empty() => {
                    GrantDuration::parse(duration).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
                    Command::Breakglass {
                        role: role.to_string(),
                        duration: duration.to_string(),
                        justification: why.join(" "),
                    }
                }
                _ => return Err(usage_error("breakglass", w, Field::Reason)),
            },
            "review" => match args {
                [id, note @ ..] if !note.is_empty() => Command::Review { id: parse_id(id)?, note: note.join(" ") },
                _ => return Err(usage_error("review", w, Field::Note)),
            },
            "lockdown" => match args {
                [scope, reason @ ..] => Command::Lockdown { scope: scope.to_string(), reason: rest(reason) },
                [] => return Err(usage_error("lockdown", w, Field::Scope)),
            },
            "unlock" => match args {
                [scope] => Command::Unlock { scope: scope.to_string() },
                _ => return Err(usage_error("unlock", w, Field::Scope)),
            },
            "revoke" => Command::Revoke { id: id("revoke")?, reason: rest(&args[1..]) },
            role => {
                let (args, start) = crate::schedule::split_start(args)?;
                let (duration, reason) = duration_and_rest(args)?;
                Command::Request { role: role.to_string(), duration, reason, ticket: None, start }
            }
        })
    }

    /// Builds a sub-command from named options (`get("id")`), as Discord sends them.
    pub fn from_options(name: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Command, UserError> {
        let o = Syntax::Options;
        let id = || match get("id") {
            Some(s) => parse_id(&s),
            None => Err(usage_error(name, o, Field::Id)),
        };
        let required = |key: &str, field: Field| get(key).ok_or_else(|| usage_error(name, o, field));
        let duration = |d: String| -> Result<String, UserError> {
            GrantDuration::parse(&d).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
            Ok(d)
        };
        Ok(match name {
            "request" => Command::Request {
                role: required("role", Field::Role)?,
                duration: get("duration").map(duration).transpose()?,
                reason: get("reason").unwrap_or_default(),
                ticket: get("ticket"),
                start: match (get("at"), get("in")) {
                    (Some(_), Some(_)) => {
                        return Err(UserError::invalid("Give a start `at` or `in`, not both.").on(Field::Start));
                    }
                    (Some(at), None) => Some(StartSpec::At(at)),
                    (None, Some(d)) => Some(StartSpec::In(d)),
                    (None, None) => None,
                },
            },
            "status" => Command::Status,
            "mine" => Command::Mine,
            "release" => Command::Release(get("id").map(|s| parse_id(&s)).transpose()?),
            "extend" => Command::Extend {
                id: id()?,
                duration: get("duration").map(duration).transpose()?,
                reason: get("reason"),
            },
            "show" => Command::Show(id()?),
            "cancel" => Command::Cancel(id()?),
            "approve" => Command::Approve(id()?),
            "deny" => Command::Deny { id: id()?, reason: get("reason") },
            "breakglass" => Command::Breakglass {
                role: required("role", Field::Role)?,
                duration: duration(required("duration", Field::Duration)?)?,
                justification: required("justification", Field::Reason)?,
            },
            "review" => Command::Review { id: id()?, note: required("note", Field::Note)? },
            "lockdown" => Command::Lockdown { scope: required("scope", Field::Scope)?, reason: get("reason") },
            "unlock" => Command::Unlock { scope: required("scope", Field::Scope)? },
            "revoke" => Command::Revoke { id: id()?, reason: get("reason") },
            _ => Command::Help,
        })
    }

    /// The command a pressed button stands for.
    pub fn from_action(action: super::Action) -> Command {
        use super::Action as A;
        match action {
            A::RequestForm => Command::RequestForm,
            A::Approve(id) => Command::Approve(id),
            A::Deny(id) => Command::Deny { id, reason: None },
            A::Extend(id) => Command::Extend { id, duration: None, reason: None },
            A::Release(id) => Command::Release(Some(id)),
            A::Cancel(id) => Command::Cancel(id),
            A::Lockdown { scope, reason } => Command::ConfirmLockdown { scope, reason },
            A::Revoke { id, reason } => Command::ConfirmRevoke { id, reason },
        }
    }

    /// The command a submitted form stands for; `get` reads an input by field.
    pub fn from_form(kind: &super::FormKind, get: &dyn Fn(Field) -> Option<String>) -> Command {
        use super::FormKind as F;
        let text = |f: Field| get(f).unwrap_or_default();
        match kind {
            F::Request => Command::Request {
                role: text(Field::Role),
                duration: get(Field::Duration),
                reason: text(Field::Reason),
                ticket: get(Field::Ticket),
                start: get(Field::Start).map(|s| form_start(&s)),
            },
            // An empty reason from a form is refused by core with the field named, not reopened.
            F::Deny(id) => Command::Deny { id: *id, reason: Some(text(Field::Reason)) },
            F::Extend(id) => {
                Command::Extend { id: *id, duration: Some(text(Field::Duration)), reason: get(Field::Reason) }
            }
            F::Lockdown { scope } => Command::ConfirmLockdown { scope: scope.clone(), reason: text(Field::Reason) },
            F::Revoke(id) => Command::ConfirmRevoke { id: *id, reason: text(Field::Reason) },
        }
    }
}

/// The request form's Start field: `in 3h`, or a time (`2026-12-05 22:00 Europe/Berlin`).
fn form_start(s: &str) -> StartSpec {
    match s.trim().strip_prefix("in ") {
        Some(d) => StartSpec::In(d.trim().to_string()),
        None => StartSpec::At(s.trim().trim_start_matches("at ").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::usage::{ArgKind, USAGES};
    use super::*;

    fn parse(s: &str) -> Command {
        Command::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> UserError {
        Command::parse(s).expect_err(s)
    }

    #[test]
    fn a_request_takes_an_optional_duration_then_the_reason() {
        assert_eq!(
            parse("db 2h INC-1 fix lag"),
            Command::Request {
                role: "db".into(),
                duration: Some("2h".into()),
                reason: "INC-1 fix lag".into(),
                ticket: None,
                start: None
            }
        );
        assert_eq!(
            parse("db fix the lag"),
            Command::Request {
                role: "db".into(),
                duration: None,
                reason: "fix the lag".into(),
                ticket: None,
                start: None
            }
        );
        assert_eq!(parse(""), Command::RequestForm);
        assert_eq!(parse("   "), Command::RequestForm);
    }

    #[test]
    fn a_word_that_looks_like_a_duration_must_be_one() {
        for bad in ["-5m", "1.5h", "5mins", "0m", "+2h", "2", "90x", ".5h"] {
            let e = refused(&format!("db {bad} fix it"));
            assert_eq!(e.field, Some(Field::Duration), "{bad}: {e}");
            assert!(e.message.contains("not a duration") || e.message.contains("zero"), "{bad}: {e}");
        }
        let e = refused("extend 4 soon");
        assert_eq!(e.field, Some(Field::Duration));
        let e = refused("breakglass db 1.5h fire");
        assert_eq!(e.field, Some(Field::Duration));
    }

    #[test]
    fn request_numbers_are_checked_before_anything_else() {
        assert_eq!(parse("cancel #41"), Command::Cancel(RequestId(41)));
        assert_eq!(parse("release"), Command::Release(None));
        for bad in ["cancel x", "cancel 0", "cancel -3", "approve 1e3", "release ;drop", "cancel"] {
            assert_eq!(refused(bad).field, Some(Field::Id), "{bad}");
        }
        let long = format!("cancel {}", "9".repeat(5000));
        assert!(refused(&long).message.len() < 200, "the echo is bounded");
    }

    #[test]
    fn controls_ask_for_what_they_need() {
        assert_eq!(parse("lockdown db"), Command::Lockdown { scope: "db".into(), reason: None });
        assert_eq!(
            parse("lockdown all leak suspected"),
            Command::Lockdown { scope: "all".into(), reason: Some("leak suspected".into()) }
        );
        assert_eq!(parse("revoke 3"), Command::Revoke { id: RequestId(3), reason: None });
        assert_eq!(parse("deny 3 not now"), Command::Deny { id: RequestId(3), reason: Some("not now".into()) });
        assert_eq!(parse("extend 3"), Command::Extend { id: RequestId(3), duration: None, reason: None });
        assert!(refused("review 3").message.contains("/elevate review ID NOTE…"));
        assert!(refused("unlock").message.contains("/elevate unlock ROLE|all"));
        assert!(refused("breakglass db 1h").message.contains("JUSTIFICATION"));
    }

    #[test]
    fn options_are_validated_like_words() {
        let opts = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            Command::from_options("extend", &opts(&[("id", "4"), ("duration", "30m")])).unwrap(),
            Command::Extend { id: RequestId(4), duration: Some("30m".into()), reason: None }
        );
        let e = Command::from_options("request", &opts(&[("role", "db"), ("duration", "-5m")])).unwrap_err();
        assert_eq!(e.field, Some(Field::Duration));
        let e = Command::from_options("cancel", &opts(&[])).unwrap_err();
        assert!(e.message.contains("/elevate cancel id"), "{e}");
    }

    #[test]
    fn options_come_required_first_and_every_sub_command_parses_from_them() {
        for u in USAGES {
            let first_optional = u.args.iter().position(|a| !a.required).unwrap_or(u.args.len());
            assert!(u.args[first_optional..].iter().all(|a| !a.required), "{}: required after optional", u.name);
            // `at` and `in` are two ways of one start: give only one.
            let sample = |k: &str| {
                u.args.iter().find(|a| a.name == k && a.name != "at").map(|a| match a.kind {
                    ArgKind::Id => "4".to_string(),
                    ArgKind::Duration => "30m".to_string(),
                    _ => "db".to_string(),
                })
            };
            let parsed = Command::from_options(u.name, &sample).unwrap_or_else(|e| panic!("{}: {e}", u.name));
            assert_ne!(parsed, Command::Help, "{} is not dispatched", u.name);
        }
    }

    #[test]
    fn every_usage_names_its_arguments_in_both_syntaxes() {
        assert_eq!(
            usage("request", Syntax::Words),
            "/elevate ROLE DURATION REASON… [at YYYY-MM-DD HH:MM [ZONE] | in DURATION]"
        );
        assert_eq!(usage("request", Syntax::Options), "/elevate request role reason [duration] [ticket] [at] [in]");
        assert_eq!(
            parse("db 2h INC-1 fix in 3h"),
            Command::Request {
                role: "db".into(),
                duration: Some("2h".into()),
                reason: "INC-1 fix".into(),
                ticket: None,
                start: Some(StartSpec::In("3h".into()))
            }
        );
        assert_eq!(usage("status", Syntax::Words), "/elevate status");
    }
}
