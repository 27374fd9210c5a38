//! `validate_target` at config load: every kind of target, and clear messages for mistakes.
//! No emulator needed.

use elevate_aws::{AwsConfig, AwsProvider, StaticCredentials};
use elevate_core::ports::GrantProvider;
use serde_json::{Value, json};

fn provider() -> AwsProvider {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = AwsConfig { region: "us-east-1".into(), ..AwsConfig::default() };
    AwsProvider::new(cfg, StaticCredentials::new("AKIDEXAMPLE", "secret", None)).unwrap()
}

fn from_toml(s: &str) -> Value {
    let t: toml::Table = toml::from_str(s).unwrap();
    serde_json::to_value(&t["target"]).unwrap()
}

fn refused(target: Value, needle: &str) {
    let err = provider().validate_target(&target).expect_err(&format!("{target} should be refused"));
    assert!(err.contains(needle), "`{err}` should mention `{needle}`");
}

#[test]
fn the_four_kinds_of_target_are_accepted_as_written_in_toml() {
    let p = provider();
    for t in [
        r#"target = { type = "iam_managed_policy", policy_arn = "arn:aws:iam::aws:policy/ReadOnlyAccess", principal = "user" }"#,
        r#"target = { type = "iam_inline_policy", principal = "role", actions = ["s3:GetObject"], resources = ["arn:aws:s3:::logs/*"] }"#,
        "[target]\ntype = \"iam_inline_policy\"\n[[target.statements]]\nAction = [\"rds:RebootDBInstance\"]\nResource = \"*\"\n",
        r#"target = { type = "iam_group", group = "breakglass" }"#,
        r#"target = { type = "identity_center", instance_arn = "arn:aws:sso:::instance/ssoins-1234567890abcdef", permission_set_arn = "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef", account_id = "123456789012" }"#,
        r#"target = { type = "identity_center", instance_arn = "arn:aws:sso:::instance/ssoins-1", permission_set_arn = "arn:aws:sso:::permissionSet/ssoins-1/ps-2", account_id = "123456789012", principal = "group" }"#,
    ] {
        p.validate_target(&from_toml(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
    }
}

#[test]
fn mistakes_are_refused_with_a_message_naming_them() {
    refused(json!({ "type": "iam_policy" }), "unknown variant `iam_policy`");
    refused(json!({ "policy_arn": "arn:aws:iam::aws:policy/X" }), "type");
    refused(json!({ "type": "iam_managed_policy", "policy_arn": "ReadOnlyAccess" }), "not a policy ARN");
    refused(
        json!({ "type": "iam_managed_policy", "policy_arn": "arn:aws:iam::aws:policy/X", "principal": "group" }),
        "unknown variant `group`",
    );
    refused(
        json!({ "type": "iam_managed_policy", "policy_arn": "arn:aws:iam::aws:policy/X", "polciy": 1 }),
        "unknown field `polciy`",
    );
    refused(json!({ "type": "iam_inline_policy" }), "give `actions`");
    refused(json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"] }), "`resources` is required");
    refused(json!({ "type": "iam_inline_policy", "actions": ["GetObject"], "resources": ["*"] }), "service:Action");
    refused(
        json!({ "type": "iam_inline_policy", "actions": ["s3:GetObject"], "resources": ["*"], "statements": [{ "Action": "s3:*", "Resource": "*" }] }),
        "not both",
    );
    refused(
        json!({ "type": "iam_inline_policy", "statements": [{ "Resource": "*" }] }),
        "statements[0]: needs `Action`",
    );
    refused(json!({ "type": "iam_inline_policy", "statements": [{ "Action": "s3:*" }] }), "needs `Resource`");
    refused(
        json!({ "type": "iam_inline_policy", "statements": [{ "Action": "s3:*", "Resource": "*", "Effect": "Maybe" }] }),
        "Allow or Deny",
    );
    refused(
        json!({ "type": "iam_inline_policy", "statements": [{ "Action": "s3:*", "Resource": "*", "Condition": { "DateLessThan": { "aws:CurrentTime": "2030-01-01T00:00:00Z" } } }] }),
        "set by elevate",
    );
    refused(json!({ "type": "iam_group", "group": "has space" }), "not an IAM group name");
    refused(
        json!({ "type": "identity_center", "instance_arn": "arn:aws:sso:::instance/ssoins-1", "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1/ps-2", "account_id": 123456789012u64 }),
        "account_id",
    );
    refused(
        json!({ "type": "identity_center", "instance_arn": "arn:aws:sso:::instance/ssoins-1", "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1/ps-2", "account_id": "1234" }),
        "12 digits",
    );
    refused(
        json!({ "type": "identity_center", "instance_arn": "ssoins-1", "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1/ps-2", "account_id": "123456789012" }),
        "not an instance ARN",
    );
}

#[test]
fn the_example_config_file_has_valid_aws_targets() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/aws.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let providers = doc["providers"].as_table().unwrap();
    let aws = providers["aws"].clone();
    let cfg: AwsConfig = aws.try_into().expect("the [providers.aws] table deserializes");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = AwsProvider::new(cfg, StaticCredentials::new("AKIDEXAMPLE", "secret", None)).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for (name, role) in doc["roles"].as_table().unwrap() {
        if role["provider"].as_str() != Some("aws") {
            continue;
        }
        let target = serde_json::to_value(&role["target"]).unwrap();
        p.validate_target(&target).unwrap_or_else(|e| panic!("role {name}: {e}"));
        kinds.insert(target["type"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.len(), 4, "one example role per kind of target: {kinds:?}");
}
