//! Reading `[rules.NAME]` tables. Each kind has its own required keys; every problem is reported
//! with its key path, like the rest of the policy.

use super::{
    Person, Role,
    parse::{ConfigError, de, duration, table},
    rules::{self, Effect, RuleKind, SourcePattern},
};
use crate::{PersonId, RoleName};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
    advice: Option<String>,
    effect: Option<String>,
    timezone: Option<String>,
    days: Option<Vec<String>>,
    hours: Option<String>,
    from: Option<String>,
    until: Option<String>,
    max: Option<u32>,
    window: Option<String>,
    cooldown_after_denial: Option<String>,
    revoke_after_refusals: Option<u32>,
    persons: Option<Vec<String>>,
    sources: Option<Vec<String>>,
}

const WEEKDAYS: [chrono::Weekday; 5] =
    [chrono::Weekday::Mon, chrono::Weekday::Tue, chrono::Weekday::Wed, chrono::Weekday::Thu, chrono::Weekday::Fri];

pub(super) fn parse_rules(
    root: &toml::Table,
    persons: &BTreeMap<PersonId, Person>,
    roles: &BTreeMap<RoleName, Role>,
    errs: &mut Vec<ConfigError>,
) -> Vec<rules::Rule> {
    let mut out = Vec::new();
    for (name, v) in table(root, "rules", errs).into_iter().flatten() {
        let path = format!("rules.{name}");
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("on_call") => {
                out.extend(super::oncall::parse_rule(&path, name, v, roles, errs));
                continue;
            }
            Some("ticket") => {
                out.extend(super::tickets::parse_rule(&path, name, v, roles, errs));
                continue;
            }
            _ => {}
        }
        let Some(raw) = de::<RawRule>(&path, v, errs) else { continue };
        let n = errs.len();
        let need = |field: &str, present: bool, errs: &mut Vec<ConfigError>| {
            if !present {
                errs.push(ConfigError::new(format!("{path}.{field}"), format!("required for kind `{}`", raw.kind)));
            }
        };
        let mut role_names = Vec::new();
        for (i, r) in raw.roles.iter().enumerate() {
            match RoleName::parse(r) {
                Ok(rn) if roles.contains_key(&rn) => role_names.push(rn),
                _ => errs.push(ConfigError::new(format!("{path}.roles[{i}]"), format!("unknown role `{r}`"))),
            }
        }
        let kind = match raw.kind.as_str() {
            "time_window" => time_window(&path, &raw, errs, &need),
            "freeze" => freeze(&path, &raw, errs, &need),
            "rate_limit" => {
                need("max", raw.max.is_some(), errs);
                need("window", raw.window.is_some(), errs);
                let window = raw.window.as_deref().and_then(|w| duration(&format!("{path}.window"), w, errs));
                let cooldown = match &raw.cooldown_after_denial {
                    Some(c) => duration(&format!("{path}.cooldown_after_denial"), c, errs).map(Some),
                    None => Some(None),
                };
                if raw.max == Some(0) {
                    errs.push(ConfigError::new(format!("{path}.max"), "must be at least 1"));
                }
                match (raw.max, window, cooldown) {
                    (Some(max), Some(window), Some(cooldown_after_denial)) => Some(RuleKind::RateLimit {
                        max,
                        window,
                        cooldown_after_denial,
                        revoke_after_refusals: raw.revoke_after_refusals,
                    }),
                    _ => None,
                }
            }
            "flagged" => {
                need("persons", raw.persons.is_some(), errs);
                let mut ps = Vec::new();
                for (i, p) in raw.persons.iter().flatten().enumerate() {
                    match PersonId::parse(p) {
                        Ok(pid) if persons.contains_key(&pid) => ps.push(pid),
                        _ => {
                            errs.push(ConfigError::new(format!("{path}.persons[{i}]"), format!("unknown person `{p}`")))
                        }
                    }
                }
                Some(RuleKind::Flagged { persons: ps })
            }
            "allowed_sources" => {
                need("sources", raw.sources.is_some(), errs);
                let mut ss = Vec::new();
                for (i, s) in raw.sources.iter().flatten().enumerate() {
                    match SourcePattern::parse(s) {
                        Ok(p) => ss.push(p),
                        Err(e) => errs.push(ConfigError::new(format!("{path}.sources[{i}]"), e)),
                    }
                }
                Some(RuleKind::AllowedSources { sources: ss })
            }
            other => {
                errs.push(ConfigError::new(
                    format!("{path}.kind"),
                    format!("unknown rule kind `{other}` (time_window, freeze, rate_limit, flagged, allowed_sources, on_call, ticket)"),
                ));
                None
            }
        };
        if let (Some(kind), true) = (kind, errs.len() == n) {
            out.push(rules::Rule { name: name.clone(), roles: role_names, kind, advice: raw.advice });
        }
    }
    out
}

type Need<'a> = dyn Fn(&str, bool, &mut Vec<ConfigError>) + 'a;

fn effect(path: &str, raw: &RawRule, errs: &mut Vec<ConfigError>) -> Option<Effect> {
    match raw.effect.as_deref() {
        None => Some(Effect::Deny),
        Some(e) => Effect::parse(e).or_else(|| {
            errs.push(ConfigError::new(
                format!("{path}.effect"),
                format!("`{e}`: use deny, extra_approval or no_auto_approve"),
            ));
            None
        }),
    }
}

fn time_window(path: &str, raw: &RawRule, errs: &mut Vec<ConfigError>, need: &Need) -> Option<RuleKind> {
    need("timezone", raw.timezone.is_some(), errs);
    need("hours", raw.hours.is_some(), errs);
    let tz = raw.timezone.as_deref().and_then(|t| match t.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            errs.push(ConfigError::new(
                format!("{path}.timezone"),
                format!("`{t}` is not an IANA time zone like Europe/Berlin"),
            ));
            None
        }
    });
    let hours = raw.hours.as_deref().and_then(|h| {
        let t = |s: &str| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
        match h.split_once('-').and_then(|(a, b)| Some((t(a)?, t(b)?))) {
            Some((a, b)) if a < b => Some((a, b)),
            _ => {
                errs.push(ConfigError::new(
                    format!("{path}.hours"),
                    format!("`{h}`: use HH:MM-HH:MM, start before end"),
                ));
                None
            }
        }
    });
    let mut days = Vec::new();
    match &raw.days {
        None => days.extend(WEEKDAYS),
        Some(ds) => {
            for (i, d) in ds.iter().enumerate() {
                match d.parse::<chrono::Weekday>() {
                    Ok(w) => days.push(w),
                    Err(_) => errs.push(ConfigError::new(
                        format!("{path}.days[{i}]"),
                        format!("`{d}` is not a weekday (mon … sun)"),
                    )),
                }
            }
        }
    }
    match (tz, hours, effect(path, raw, errs)) {
        (Some(tz), Some((start, end)), Some(effect)) => Some(RuleKind::TimeWindow { tz, days, start, end, effect }),
        _ => None,
    }
}

fn freeze(path: &str, raw: &RawRule, errs: &mut Vec<ConfigError>, need: &Need) -> Option<RuleKind> {
    need("from", raw.from.is_some(), errs);
    need("until", raw.until.is_some(), errs);
    let t = |field: &str, v: &Option<String>, errs: &mut Vec<ConfigError>| {
        let s = v.as_deref()?;
        match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(d) => Some(d.with_timezone(&chrono::Utc)),
            Err(_) => {
                errs.push(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("`{s}` is not a time like 2026-12-20T00:00:00Z"),
                ));
                None
            }
        }
    };
    let (from, until) = (t("from", &raw.from, errs), t("until", &raw.until, errs));
    match (from, until, effect(path, raw, errs)) {
        (Some(from), Some(until), Some(effect)) if from < until => Some(RuleKind::Freeze { from, until, effect }),
        (Some(_), Some(_), Some(_)) => {
            errs.push(ConfigError::new(format!("{path}.until"), "must be after from"));
            None
        }
        _ => None,
    }
}
