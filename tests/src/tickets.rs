//! Ticket systems for the tests: a fake Jira (Cloud and Data Center APIs, plus the generic
//! check), and the test policy with Jira identities (`alice`: `acc-alice`, `bob`: `acc-bob`)
//! and `[tickets.*]` sections pointing at it: `jira` (Cloud), `jira-dc` (Data Center), `check`
//! (generic HTTP).

use crate::{fake_jira::FakeJira, policy};

pub const JIRA_EMAIL: &str = "elevate-bot@example.com";
pub const JIRA_TOKEN: &str = "jira-test-token-0123456789";

pub async fn start() -> FakeJira {
    FakeJira::start(JIRA_EMAIL, JIRA_TOKEN).await
}

/// The test policy (`{WEBHOOK_URL}` left to fill), Jira identities, the three systems and
/// `rules`.
pub fn config(jira: &FakeJira, rules: &str) -> String {
    // SAFETY of set_var: the same value every time, before any reader starts.
    unsafe { std::env::set_var("ELEVATE_TEST_JIRA_TOKEN", JIRA_TOKEN) };
    let text = policy::config("{WEBHOOK_URL}")
        .replacen("[persons.alice]\n", "[persons.alice]\njira_user = \"acc-alice\"\n", 1)
        .replacen("[persons.bob]\n", "[persons.bob]\njira_user = \"acc-bob\"\n", 1);
    let url = &jira.url;
    format!(
        "{text}
[tickets.jira]
type = \"jira-cloud\"
base_url = \"{url}\"
email = \"{JIRA_EMAIL}\"
token_env = \"ELEVATE_TEST_JIRA_TOKEN\"
timeout = \"2s\"

[tickets.jira-dc]
type = \"jira-data-center\"
base_url = \"{url}\"
token_env = \"ELEVATE_TEST_JIRA_TOKEN\"
timeout = \"2s\"

[tickets.check]
type = \"http\"
url_template = \"{url}/tickets/{{ticket}}\"
token_env = \"ELEVATE_TEST_JIRA_TOKEN\"
timeout = \"2s\"
{rules}"
    )
}
