//! Reading the policy sections of the config file. Every problem is reported, each with the key
//! path it was found at, so that `elevate check` fixes a whole file in one pass.

use super::*;
use serde::Deserialize;
use std::fmt;

/// Top-level keys that hold the policy. The bot owns the other sections of the file.
pub const POLICY_SECTIONS: &[&str] =
    &["persons", "services", "groups", "roles", "bundles", "tokens", "security", "settings", "rules"];

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    name: Option<String>,
    email: Option<String>,
    slack_id: Option<String>,
    discord_id: Option<String>,
    #[serde(default)]
    principals: BTreeMap<String, String>,
    pagerduty_user: Option<String>,
    opsgenie_user: Option<String>,
    jira_user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    members: Vec<String>,
    discord_role: Option<String>,
    slack_usergroup: Option<String>,
    slack_channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    description: Option<String>,
    provider: String,
    #[serde(default)]
    target: toml::Table,
    default_duration: String,
    max_duration: String,
    max_total_duration: Option<String>,
    requesters: Vec<String>,
    approvers: Vec<String>,
    #[serde(default = "one")]
    approvals_required: u32,
    #[serde(default)]
    self_approval: bool,
    #[serde(default = "yes")]
    reason_required: bool,
    ticket_pattern: Option<String>,
    #[serde(default)]
    ticket_required: bool,
    pending_timeout: Option<String>,
    reminder_interval: Option<String>,
    #[serde(default)]
    remind_by_dm: bool,
    slack_channel: Option<String>,
    discord_channel: Option<String>,
    #[serde(default)]
    auto_approve: bool,
    #[serde(default)]
    auto_approve_groups: Vec<String>,
    #[serde(default)]
    breakglass_groups: Vec<String>,
    breakglass_max_duration: Option<String>,
    escalate_after: Option<String>,
    #[serde(default)]
    escalate_to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    /// A person's token…
    person: Option<String>,
    /// …or a service identity's (`[services.NAME]`).
    service: Option<String>,
    sha256: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    group: Option<String>,
    slack_channel: Option<String>,
    discord_channel: Option<String>,
    review_reminder: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    expiry_warning: Option<String>,
    revoke_alert_after: Option<u32>,
    apply_max_attempts: Option<u32>,
    max_schedule_ahead: Option<String>,
    scheduled_approval_ttl: Option<String>,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Deserializes one value, reporting the exact key path of a type error or unknown field.
pub fn de<T: serde::de::DeserializeOwned>(path: &str, v: &toml::Value, errs: &mut Vec<ConfigError>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner.is_empty() || inner == "." { path.to_string() } else { format!("{path}.{inner}") };
            let msg = e.into_inner().to_string();
            errs.push(ConfigError::new(full, msg.trim().to_string()));
            None
        }
    }
}

pub(super) fn duration(path: &str, s: &str, errs: &mut Vec<ConfigError>) -> Option<GrantDuration> {
    GrantDuration::parse(s).map_err(|e| errs.push(ConfigError::new(path, e))).ok()
}

pub(crate) fn table<'a>(root: &'a toml::Table, key: &str, errs: &mut Vec<ConfigError>) -> Option<&'a toml::Table> {
    match root.get(key) {
        None => None,
        Some(toml::Value::Table(t)) => Some(t),
        Some(_) => {
            errs.push(ConfigError::new(key, "must be a table"));
            None
        }
    }
}

/// Parses and validates the policy sections. `providers` are the names of configured providers
/// (a role must name one). Unknown top-level keys are the caller's to report.
pub fn parse_policy(root: &toml::Table, providers: &[String]) -> Result<Policy, Vec<ConfigError>> {
    let mut errs = Vec::new();

    let mut persons = BTreeMap::new();
    for (key, v) in table(root, "persons", &mut errs).into_iter().flatten() {
        let path = format!("persons.{key}");
        let id = PersonId::parse(key).map_err(|e| errs.push(ConfigError::new(&path, e))).ok();
        let raw: Option<RawPerson> = de(&path, v, &mut errs);
        if let (Some(id), Some(raw)) = (id, raw) {
            let on_call = oncall::OnCallIdentity::parse(&path, raw.pagerduty_user, raw.opsgenie_user, &mut errs);
            let jira_user = tickets::jira_user(&path, raw.jira_user, &mut errs);
            persons.insert(
                id.clone(),
                Person {
                    id,
                    display_name: raw.name,
                    email: raw.email,
                    slack_id: raw.slack_id,
                    discord_id: raw.discord_id,
                    principals: raw.principals,
                    on_call,
                    jira_user,
                    kind: services::PrincipalKind::Human,
                },
            );
        }
    }
    check_unique_ids(&persons, &mut errs);
    services::parse_services(root, &mut persons, &mut errs);

    let mut groups = BTreeMap::new();
    for (key, v) in table(root, "groups", &mut errs).into_iter().flatten() {
        let path = format!("groups.{key}");
        let name = GroupName::parse(key).map_err(|e| errs.push(ConfigError::new(&path, e))).ok();
        let Some(raw) = de::<RawGroup>(&path, v, &mut errs) else {
            continue;
        };
        let mut members = BTreeSet::new();
        for (i, m) in raw.members.iter().enumerate() {
            match PersonId::parse(m) {
                Ok(p) if persons.contains_key(&p) => {
                    members.insert(p);
                }
                _ => errs.push(ConfigError::new(
                    format!("{path}.members[{i}]"),
                    format!("unknown person `{m}` (define it under [persons.{m}])"),
                )),
            }
        }
        if let Some(name) = name {
            groups.insert(
                name.clone(),
                Group {
                    name,
                    members,
                    discord_role: raw.discord_role,
                    slack_usergroup: raw.slack_usergroup,
                    slack_channel: raw.slack_channel,
                },
            );
        }
    }

    let group_ref = |path: String, g: &str, errs: &mut Vec<ConfigError>| -> Option<GroupName> {
        match GroupName::parse(g) {
            Ok(n) if groups.contains_key(&n) => Some(n),
            _ => {
                errs.push(ConfigError::new(path, format!("unknown group `{g}` (define it under [groups.{g}])")));
                None
            }
        }
    };

    let mut roles = BTreeMap::new();
    for (key, v) in table(root, "roles", &mut errs).into_iter().flatten() {
        let path = format!("roles.{key}");
        let name = RoleName::parse(key).map_err(|e| errs.push(ConfigError::new(&path, e))).ok();
        let Some(raw) = de::<RawRole>(&path, v, &mut errs) else {
            continue;
        };
        if !providers.iter().any(|p| p == &raw.provider) {
            errs.push(ConfigError::new(
                format!("{path}.provider"),
                format!(
                    "unknown provider `{}` (configured: {})",
                    raw.provider,
                    if providers.is_empty() { "none".to_string() } else { providers.join(", ") }
                ),
            ));
        }
        let default_duration = duration(&format!("{path}.default_duration"), &raw.default_duration, &mut errs);
        let max_duration = duration(&format!("{path}.max_duration"), &raw.max_duration, &mut errs);
        let max_total = match &raw.max_total_duration {
            Some(s) => duration(&format!("{path}.max_total_duration"), s, &mut errs),
            None => max_duration,
        };
        if let (Some(d), Some(m)) = (default_duration, max_duration)
            && d > m
        {
            errs.push(ConfigError::new(
                format!("{path}.default_duration"),
                format!("{d} is longer than max_duration {m}"),
            ));
        }
        if let (Some(m), Some(t)) = (max_duration, max_total)
            && t < m
        {
            errs.push(ConfigError::new(
                format!("{path}.max_total_duration"),
                format!("{t} is shorter than max_duration {m}"),
            ));
        }
        let pending_timeout = match &raw.pending_timeout {
            Some(s) => duration(&format!("{path}.pending_timeout"), s, &mut errs),
            None => GrantDuration::from_secs(3600).ok(),
        };
        let reminder_interval = match &raw.reminder_interval {
            Some(s) => duration(&format!("{path}.reminder_interval"), s, &mut errs).map(Some),
            None => Some(None),
        };
        let requesters: Vec<GroupName> = raw
            .requesters
            .iter()
            .enumerate()
            .filter_map(|(i, g)| group_ref(format!("{path}.requesters[{i}]"), g, &mut errs))
            .collect();
        if raw.requesters.is_empty() {
            errs.push(ConfigError::new(
                format!("{path}.requesters"),
                "name at least one group that may request this role",
            ));
        }
        let approvers: Vec<GroupName> = raw
            .approvers
            .iter()
            .enumerate()
            .filter_map(|(i, g)| group_ref(format!("{path}.approvers[{i}]"), g, &mut errs))
            .collect();
        if raw.approvers.is_empty() {
            errs.push(ConfigError::new(format!("{path}.approvers"), "name at least one approver group"));
        }
        if raw.approvals_required == 0 || raw.approvals_required > 10 {
            errs.push(ConfigError::new(format!("{path}.approvals_required"), "must be between 1 and 10"));
        } else if approvers.len() == raw.approvers.len() {
            let chat_backed =
                approvers.iter().any(|g| groups[g].discord_role.is_some() || groups[g].slack_usergroup.is_some());
            let listed: BTreeSet<&PersonId> = approvers.iter().flat_map(|g| groups[g].members.iter()).collect();
            if !chat_backed && (listed.len() as u32) < raw.approvals_required {
                errs.push(ConfigError::new(
                    format!("{path}.approvals_required"),
                    format!(
                        "needs {} distinct approvers but the approver groups list only {}",
                        raw.approvals_required,
                        listed.len()
                    ),
                ));
            }
        }
        let ticket_pattern = match &raw.ticket_pattern {
            Some(p) => match Regex::new(p) {
                Ok(re) => Some(re),
                Err(e) => {
                    errs.push(ConfigError::new(format!("{path}.ticket_pattern"), format!("not a valid regex: {e}")));
                    None
                }
            },
            None => None,
        };
        if raw.ticket_required && raw.ticket_pattern.is_none() {
            errs.push(ConfigError::new(format!("{path}.ticket_required"), "needs a ticket_pattern"));
        }
        let groups_at = |key: &str, list: &[String], errs: &mut Vec<ConfigError>| -> Vec<GroupName> {
            list.iter().enumerate().filter_map(|(i, g)| group_ref(format!("{path}.{key}[{i}]"), g, errs)).collect()
        };
        let auto_approve_groups = groups_at("auto_approve_groups", &raw.auto_approve_groups, &mut errs);
        let breakglass_groups = groups_at("breakglass_groups", &raw.breakglass_groups, &mut errs);
        let escalate_to = groups_at("escalate_to", &raw.escalate_to, &mut errs);
        let breakglass_max = match &raw.breakglass_max_duration {
            Some(s) => duration(&format!("{path}.breakglass_max_duration"), s, &mut errs),
            None => max_duration,
        };
        let escalate_after = match &raw.escalate_after {
            Some(s) => duration(&format!("{path}.escalate_after"), s, &mut errs).map(Some),
            None => Some(None),
        };
        if raw.remind_by_dm && raw.reminder_interval.is_none() && raw.escalate_after.is_none() {
            errs.push(ConfigError::new(
                format!("{path}.remind_by_dm"),
                "needs reminder_interval or escalate_after: without them there is nothing to DM",
            ));
        }
        if raw.escalate_after.is_some() == raw.escalate_to.is_empty() {
            errs.push(ConfigError::new(format!("{path}.escalate_to"), "escalate_after and escalate_to go together"));
        }
        let target = serde_json::to_value(&raw.target).unwrap_or_default();
        if let (Some(name), Some(dd), Some(md), Some(mt), Some(pt), Some(ri), Some(bg), Some(ea)) = (
            name,
            default_duration,
            max_duration,
            max_total,
            pending_timeout,
            reminder_interval,
            breakglass_max,
            escalate_after,
        ) {
            roles.insert(
                name.clone(),
                Role {
                    name,
                    description: raw.description,
                    provider: raw.provider,
                    target,
                    default_duration: dd,
                    max_duration: md,
                    max_total_duration: mt,
                    requesters,
                    approvers,
                    approvals_required: raw.approvals_required,
                    self_approval: raw.self_approval,
                    reason_required: raw.reason_required,
                    ticket_pattern,
                    ticket_required: raw.ticket_required,
                    pending_timeout: pt,
                    reminder_interval: ri,
                    remind_by_dm: raw.remind_by_dm,
                    slack_channel: raw.slack_channel,
                    discord_channel: raw.discord_channel,
                    auto_approve: raw.auto_approve,
                    auto_approve_groups,
                    breakglass_groups,
                    breakglass_max_duration: bg,
                    escalate_after: ea,
                    escalate_to,
                },
            );
        }
    }

    let mut tokens = Vec::new();
    for (key, v) in table(root, "tokens", &mut errs).into_iter().flatten() {
        let path = format!("tokens.{key}");
        let Some(raw) = de::<RawToken>(&path, v, &mut errs) else {
            continue;
        };
        let (key_name, name, service) = match (&raw.person, &raw.service) {
            (Some(p), None) => ("person", p, false),
            (None, Some(s)) => ("service", s, true),
            _ => {
                errs.push(ConfigError::new(&path, "name exactly one of person or service"));
                continue;
            }
        };
        let person = match PersonId::parse(name) {
            Ok(p) if persons.get(&p).is_some_and(|p| p.is_service() == service) => Some(p),
            _ => {
                let what = if service { "service (define it under [services.NAME])" } else { "person" };
                errs.push(ConfigError::new(format!("{path}.{key_name}"), format!("unknown {what} `{name}`")));
                None
            }
        };
        let hash_ok = raw.sha256.len() == 64 && raw.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hash_ok {
            errs.push(ConfigError::new(
                format!("{path}.sha256"),
                "must be the 64-hex-digit SHA-256 of the token (`elevate token new` prints one); never the token itself",
            ));
        }
        if let (Some(person), true) = (person, hash_ok) {
            tokens.push(ApiToken { name: key.clone(), person, sha256: raw.sha256.to_ascii_lowercase() });
        }
    }

    let security = match root.get("security") {
        Some(v) => de::<RawSecurity>("security", v, &mut errs).unwrap_or_default(),
        None => RawSecurity::default(),
    };
    let review_reminder = match &security.review_reminder {
        Some(s) => duration("security.review_reminder", s, &mut errs),
        None => None,
    };
    let security = Security {
        group: security.group.and_then(|g| group_ref("security.group".into(), &g, &mut errs)),
        slack_channel: security.slack_channel,
        discord_channel: security.discord_channel,
        review_reminder: review_reminder.unwrap_or(Security::default().review_reminder),
    };
    let rules = super::rules_parse::parse_rules(root, &persons, &roles, &mut errs);
    services::check_services(&persons, &groups, &roles, &security, &mut errs);

    let raw_settings = match root.get("settings") {
        Some(v) => de::<RawSettings>("settings", v, &mut errs).unwrap_or_default(),
        None => RawSettings::default(),
    };
    let mut settings = Settings::default();
    if let Some(s) = raw_settings.expiry_warning.and_then(|s| duration("settings.expiry_warning", &s, &mut errs)) {
        settings.expiry_warning = s;
    }
    if let Some(n) = raw_settings.revoke_alert_after {
        settings.revoke_alert_after = n.max(1);
    }
    if let Some(n) = raw_settings.apply_max_attempts {
        settings.apply_max_attempts = n.max(1);
    }
    if let Some(d) =
        raw_settings.max_schedule_ahead.and_then(|s| duration("settings.max_schedule_ahead", &s, &mut errs))
    {
        settings.max_schedule_ahead = d;
    }
    if let Some(d) =
        raw_settings.scheduled_approval_ttl.and_then(|s| duration("settings.scheduled_approval_ttl", &s, &mut errs))
    {
        settings.scheduled_approval_ttl = d;
    }

    let bundles = super::bundles::parse_bundles(root, &roles, &mut errs);
    if errs.is_empty() {
        Ok(Policy { persons, groups, roles, bundles, tokens, security, settings, rules })
    } else {
        Err(errs)
    }
}

/// Two persons with the same chat id would let one act as the other (the same on-call id: be
/// approved as the other).
fn check_unique_ids(persons: &BTreeMap<PersonId, Person>, errs: &mut Vec<ConfigError>) {
    let mut seen: BTreeMap<(String, String), &PersonId> = BTreeMap::new();
    for p in persons.values() {
        for (kind, v) in [
            ("slack_id", &p.slack_id),
            ("discord_id", &p.discord_id),
            ("email", &p.email),
            ("pagerduty_user", &p.on_call.pagerduty_user),
            ("opsgenie_user", &p.on_call.opsgenie_user),
            ("jira_user", &p.jira_user),
        ] {
            if let Some(v) = v {
                let key = (kind.to_string(), v.to_lowercase());
                if let Some(other) = seen.insert(key, &p.id) {
                    errs.push(ConfigError::new(
                        format!("persons.{}.{kind}", p.id),
                        format!("`{v}` is also the {kind} of `{other}`"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, Vec<ConfigError>> {
        let t: toml::Table = toml::from_str(text).unwrap();
        parse_policy(&t, &["dry".to_string()])
    }

    const OK: &str = r#"
        [persons.alice]
        slack_id = "U1"
        [persons.bob]
        [persons.carol]
        [groups.eng]
        members = ["alice", "bob", "carol"]
        [groups.approvers]
        members = ["bob", "carol"]
        [roles.db]
        provider = "dry"
        default_duration = "1h"
        max_duration = "4h"
        requesters = ["eng"]
        approvers = ["approvers"]
        ticket_pattern = "INC-[0-9]+"
    "#;

    #[test]
    fn a_good_policy_parses() {
        let p = parse(OK).unwrap();
        let role = &p.roles[&RoleName::parse("db").unwrap()];
        assert_eq!(role.max_total_duration.secs(), 4 * 3600);
        assert_eq!(role.approvals_required, 1);
        assert!(!role.self_approval);
        assert_eq!(role.ticket(None, "INC-42 fix").unwrap().as_deref(), Some("INC-42"));
    }

    #[test]
    fn remind_by_dm_needs_something_to_remind_of() {
        let text = OK.replace("ticket_pattern", "remind_by_dm = true\n        ticket_pattern");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].path, "roles.db.remind_by_dm");
        assert!(errs[0].message.contains("needs reminder_interval or escalate_after"), "{errs:?}");
        let ok = text.replace("remind_by_dm = true", "remind_by_dm = true\n        reminder_interval = \"20m\"");
        assert!(parse(&ok).unwrap().roles[&RoleName::parse("db").unwrap()].remind_by_dm);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let bad = r#"
            [persons.alice]
            slak_id = "U1"
            [groups.eng]
            members = ["alice", "zed"]
            [roles.db]
            provider = "nope"
            default_duration = "5h"
            max_duration = "4h"
            requesters = ["eng"]
            approvers = ["ghosts"]
            approvals_required = 2
            ticket_pattern = "("
            [tokens.t]
            person = "alice"
            sha256 = "plaintext-token"
        "#;
        let errs = parse(bad).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "persons.alice.slak_id",
            "groups.eng.members[1]",
            "roles.db.provider",
            "roles.db.default_duration",
            "roles.db.approvers[0]",
            "roles.db.ticket_pattern",
            "tokens.t.sha256",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:#?}");
        }
    }

    #[test]
    fn too_few_approvers_for_the_threshold_is_an_error() {
        let text = OK.replace("ticket_pattern", "approvals_required = 3\nticket_pattern");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].path, "roles.db.approvals_required");
    }

    #[test]
    fn duplicate_chat_ids_are_refused() {
        let text = OK.replace("[persons.bob]", "[persons.bob]\nslack_id = \"U1\"");
        let errs = parse(&text).unwrap_err();
        assert!(errs[0].message.contains("alice"), "{errs:?}");
    }
}
