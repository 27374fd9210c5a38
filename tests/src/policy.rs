//! The policy the end-to-end tests run under. Persons: alice and erin request; bob and carol
//! approve; dave is the security team; mallory is known but in no group. The `crowd` group has
//! twenty approvers for the concurrency test.

/// The config file, with `{WEBHOOK_URL}` to fill in.
pub fn config(webhook_url: &str) -> String {
    let mut crowd = String::new();
    let mut crowd_members = Vec::new();
    for i in 1..=20 {
        crowd.push_str(&format!(
            "[persons.p{i:02}]\n[tokens.p{i:02}]\nperson = \"p{i:02}\"\nsha256 = \"{}\"\n",
            sha(&format!("token-p{i:02}"))
        ));
        crowd_members.push(format!("\"p{i:02}\""));
    }
    let mut tokens = String::new();
    for p in ["alice", "bob", "carol", "dave", "erin", "mallory"] {
        tokens.push_str(&format!("[tokens.{p}]\nperson = \"{p}\"\nsha256 = \"{}\"\n", sha(&format!("token-{p}"))));
    }
    format!(
        r#"
[providers.dry]
type = "dry-run"

[providers.hook]
type = "webhook"
url = "{webhook_url}"
secret_env = "ELEVATE_TEST_WEBHOOK_SECRET"
timeout = "2s"
retries = 1

[settings]
expiry_warning = "10m"
revoke_alert_after = 3
apply_max_attempts = 4

[persons.alice]
email = "alice@example.com"
[persons.bob]
[persons.carol]
[persons.dave]
[persons.erin]
[persons.mallory]
{crowd}

[groups.engineers]
members = ["alice", "bob", "carol", "erin"]
[groups.approvers]
members = ["bob", "carol"]
[groups.security]
members = ["dave"]
[groups.oncall]
members = ["erin"]
[groups.crowd]
members = [{crowd_members}]

[security]
group = "security"

[roles.db]
provider = "hook"
target = {{ database = "orders", grant = "write" }}
default_duration = "1h"
max_duration = "4h"
max_total_duration = "6h"
requesters = ["engineers"]
approvers = ["approvers"]
ticket_pattern = "INC-[0-9]+"
pending_timeout = "1h"
reminder_interval = "20m"
breakglass_groups = ["oncall"]
breakglass_max_duration = "30m"

[roles.db-ro]
provider = "hook"
target = {{ database = "orders", grant = "write" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]

[roles.prod]
provider = "hook"
target = {{ account = "prod" }}
default_duration = "30m"
max_duration = "2h"
requesters = ["engineers"]
approvers = ["approvers"]
approvals_required = 2

[roles.sandbox]
provider = "dry"
default_duration = "1h"
max_duration = "8h"
requesters = ["engineers"]
approvers = ["engineers"]
self_approval = true

[roles.logs]
description = "read the application logs: low risk"
provider = "dry"
default_duration = "1h"
max_duration = "8h"
requesters = ["engineers"]
approvers = ["approvers"]
auto_approve = true

[roles.oncall-db]
provider = "hook"
target = {{ database = "orders", grant = "read" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]
auto_approve_groups = ["oncall"]

[roles.esc]
provider = "hook"
target = {{ database = "esc" }}
default_duration = "1h"
max_duration = "4h"
requesters = ["engineers"]
approvers = ["approvers"]
escalate_after = "30m"
escalate_to = ["security"]

[roles.busy]
provider = "hook"
target = {{ database = "busy" }}
default_duration = "1h"
max_duration = "2h"
requesters = ["engineers"]
approvers = ["crowd"]

{tokens}
"#,
        crowd_members = crowd_members.join(", ")
    )
}

pub fn sha(token: &str) -> String {
    elevate_bot::http::token_hash(token)
}

/// The secret the test receiver and the webhook provider share.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789abcdef";

/// Added to the test policy by the tests of requests of several roles: `audit`, approved by
/// the security team only (dave), and the bundle `incident`.
pub const BATCHES: &str = r#"
[roles.audit]
provider = "hook"
target = { database = "audit", grant = "read" }
default_duration = "1h"
max_duration = "2h"
requesters = ["engineers"]
approvers = ["security"]

[bundles.incident]
description = "what an incident usually needs"
roles = ["db", "prod", "audit"]
"#;
