//! elevate without standing keys: its AWS identity comes from the standard credential chain
//! (web identity, container endpoint, IMDSv2, profiles), temporary keys are fetched again before
//! they expire, and the optional assume-role sits on top. moto checks every signature.
//!
//! The chain reads the process environment, so these tests take turns (`Scenario`), each
//! setting exactly the variables of its platform.

#[path = "../common/mod.rs"]
mod common;
mod fakes;

use common::{ACCOUNT, REGION, create_user, spec};
use elevate_aws::{AwsConfig, AwsProvider, CredentialSource, IamPrincipal, Service};
use elevate_core::ports::{GrantProvider, ProviderError};
use fakes::{ContainerEndpoint, Imds, Minter, WebIdentitySts};
use serde_json::json;
use std::path::PathBuf;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One platform's environment, for the length of a test.
struct Scenario {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    dir: PathBuf,
}

impl Scenario {
    /// Takes this test's turn and clears every `AWS_` variable; the shared config and
    /// credentials files point at nothing and instance metadata is off unless a test says so.
    async fn start(name: &str) -> Scenario {
        let turn = TURN.lock().await;
        let dir = std::env::temp_dir().join(format!("elevate-chain-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Scenario { _turn: turn, dir };
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            // SAFETY: every test of this binary that touches or reads the environment holds
            // `TURN` for its whole run, so nothing reads it while it changes.
            unsafe { std::env::remove_var(k) };
        }
        s.set("AWS_CONFIG_FILE", &s.path("absent-config"));
        s.set("AWS_SHARED_CREDENTIALS_FILE", &s.path("absent-credentials"));
        s.set("AWS_EC2_METADATA_DISABLED", "true");
        s
    }

    fn set(&self, key: &str, value: &str) {
        // SAFETY: as in `start`: the caller holds `TURN`.
        unsafe { std::env::set_var(key, value) };
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn write(&self, file: &str, text: &str) -> String {
        std::fs::write(self.dir.join(file), text).unwrap();
        self.path(file)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A provider that finds its identity through the chain; IAM calls go to moto.
fn chained(moto: &common::Moto, tweak: impl FnOnce(&mut AwsConfig)) -> AwsProvider {
    let mut cfg = AwsConfig {
        kind: Some("aws".into()),
        region: REGION.into(),
        endpoint: Some(moto.url.clone()),
        timeout: Some("5s".into()),
        retry_base: Some("1ms".into()),
        max_attempts: Some(1),
        ..AwsConfig::default()
    };
    tweak(&mut cfg);
    AwsProvider::with_source(cfg, CredentialSource::DefaultChain).expect("provider")
}

/// A role allowed to do everything, which elevate-admin may assume (plainly or for a web
/// identity) and, with `also_trusted`, another principal too.
async fn powerful_role(admin: &AwsProvider, name: &str, also_trusted: Option<&str>) -> String {
    let mut principals = vec![format!("arn:aws:iam::{ACCOUNT}:user/elevate-admin")];
    principals.extend(also_trusted.map(str::to_string));
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals},
        "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}]});
    let c = admin.client();
    c.query(Service::Iam, "CreateRole", &[("RoleName", name), ("AssumeRolePolicyDocument", &trust.to_string())])
        .await
        .expect("CreateRole");
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    c.query(
        Service::Iam,
        "PutRolePolicy",
        &[("RoleName", name), ("PolicyName", "all"), ("PolicyDocument", &all.to_string())],
    )
    .await
    .expect("PutRolePolicy");
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

async fn caller_arn(p: &AwsProvider) -> String {
    let doc = p.client().query(Service::Sts, "GetCallerIdentity", &[]).await.expect("GetCallerIdentity");
    doc.find("Arn").expect("Arn").text.clone()
}

fn inline_target() -> serde_json::Value {
    json!({ "type": "iam_inline_policy", "principal": "user", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::logs/*"] })
}

#[tokio::test]
async fn an_eks_pod_with_irsa_grants_as_its_web_identity_role() {
    let s = Scenario::start("irsa").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "irsa-alice").await;
    let role = powerful_role(&admin, "irsa-elevate", None).await;
    let minter = Minter::new(m.admin(), &role, chrono::Duration::hours(1));
    let sts = WebIdentitySts::start(minter.clone(), "eyJpod-token-1").await;
    // What EKS injects into the pod for a service account annotated with a role.
    let token_file = s.write("token", "eyJpod-token-1");
    s.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    s.set("AWS_ROLE_ARN", &role);
    s.set("AWS_ROLE_SESSION_NAME", "elevate-pod");
    s.set("AWS_ENDPOINT_URL_STS", &sts.url);

    let p = chained(m, |_| {});
    p.grant(&spec(301, inline_target(), &[("aws_iam_user", "irsa-alice")])).await.expect("grant via web identity");
    assert!(caller_arn(&p).await.contains(":assumed-role/irsa-elevate/"), "signed as the pod's role");
    // Keys good for an hour are kept: one exchange for both calls.
    assert_eq!(minter.minted(), 1);
    assert_eq!(*sts.seen_tokens.lock().unwrap(), ["eyJpod-token-1"]);
    let names = admin.client().inline_policies(&IamPrincipal::User("irsa-alice".into())).await.unwrap();
    assert_eq!(names, ["elevate-grant-elevate-301"]);
}

#[tokio::test]
async fn a_refused_web_identity_token_fails_the_call_and_a_rotated_token_is_read_again() {
    let s = Scenario::start("irsa-refused").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "irsa-bob").await;
    let role = powerful_role(&admin, "irsa-refused", None).await;
    let minter = Minter::new(m.admin(), &role, chrono::Duration::hours(1));
    let sts = WebIdentitySts::start(minter.clone(), "eyJgood-token").await;
    let token_file = s.write("token", "eyJstale-token");
    s.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    s.set("AWS_ROLE_ARN", &role);
    s.set("AWS_ENDPOINT_URL_STS", &sts.url);

    let p = chained(m, |_| {});
    let err = p.grant(&spec(302, inline_target(), &[("aws_iam_user", "irsa-bob")])).await.unwrap_err();
    // Transient: the scheduler retries, and the platform's next token may well be accepted.
    match &err {
        ProviderError::Transient { message, .. } => {
            assert!(message.contains("AWS credentials"), "{message}");
            assert!(message.contains("InvalidIdentityToken"), "{message}");
            assert!(!message.contains("eyJstale-token"), "the token stays out of errors: {message}");
        }
        other => panic!("expected a transient credentials error, got {other:?}"),
    }
    assert_eq!(minter.minted(), 0);
    assert!(admin.client().inline_policies(&IamPrincipal::User("irsa-bob".into())).await.unwrap().is_empty());

    // The kubelet rotates the projected token; the next call reads the file again.
    s.write("token", "eyJgood-token");
    p.grant(&spec(303, inline_target(), &[("aws_iam_user", "irsa-bob")])).await.expect("grant after rotation");
    assert_eq!(*sts.seen_tokens.lock().unwrap(), ["eyJstale-token", "eyJgood-token"]);
}

#[tokio::test]
async fn an_ecs_task_role_is_fetched_again_before_its_keys_expire() {
    let s = Scenario::start("container").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "task-carol").await;
    let role = powerful_role(&admin, "task-elevate", None).await;
    // Keys that expire within elevate's five-minute refresh margin.
    let minter = Minter::new(m.admin(), &role, chrono::Duration::minutes(4));
    let endpoint = ContainerEndpoint::start(minter.clone(), "pod-identity-authz").await;
    // What EKS Pod Identity injects (ECS sets the relative URI on 169.254.170.2 instead).
    s.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint.url);
    s.set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &s.write("authz", "pod-identity-authz"));

    let p = chained(m, |_| {});
    p.grant(&spec(304, inline_target(), &[("aws_iam_user", "task-carol")])).await.expect("first grant");
    assert_eq!(minter.minted(), 1);
    p.grant(&spec(305, inline_target(), &[("aws_iam_user", "task-carol")])).await.expect("second grant");
    assert_eq!(minter.minted(), 2, "keys about to expire are fetched again before signing");

    // Keys good for an hour are reused.
    minter.set_lifetime(chrono::Duration::hours(1));
    p.grant(&spec(306, inline_target(), &[("aws_iam_user", "task-carol")])).await.expect("third grant");
    p.grant(&spec(307, inline_target(), &[("aws_iam_user", "task-carol")])).await.expect("fourth grant");
    assert_eq!(minter.minted(), 3);
    assert_eq!(endpoint.refused.load(std::sync::atomic::Ordering::SeqCst), 0, "every fetch carried the token");
    assert!(caller_arn(&p).await.contains(":assumed-role/task-elevate/"));
    let names = admin.client().inline_policies(&IamPrincipal::User("task-carol".into())).await.unwrap();
    assert_eq!(names.len(), 4);
}

#[tokio::test]
async fn keys_still_valid_carry_on_while_the_source_is_down_and_expired_ones_do_not() {
    let s = Scenario::start("container-down").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "task-frank").await;
    let role = powerful_role(&admin, "task-down", None).await;
    let minter = Minter::new(m.admin(), &role, chrono::Duration::minutes(4));
    let endpoint = ContainerEndpoint::start(minter.clone(), "authz-1").await;
    s.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint.url);
    s.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "authz-1");

    let p = chained(m, |_| {});
    p.grant(&spec(312, inline_target(), &[("aws_iam_user", "task-frank")])).await.expect("first grant");
    // The endpoint now refuses elevate (its token rotated, elevate's did not): the keys in hand
    // expire in four minutes, inside the refresh margin, and still sign the revoke.
    endpoint.rotate_token("authz-2");
    p.revoke(&spec(312, inline_target(), &[("aws_iam_user", "task-frank")]), elevate_core::ports::Overlap::Alone)
        .await
        .expect("revoke on the current keys");
    assert!(endpoint.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1, "a refresh was tried");
    assert_eq!(minter.minted(), 1);
    assert!(admin.client().inline_policies(&IamPrincipal::User("task-frank".into())).await.unwrap().is_empty());

    // Keys past their expiry are never kept as a fallback. (A source's fresh answer is used
    // once even if its expiry looks past, as with clock skew between hosts.)
    let p = chained(m, |_| {});
    endpoint.rotate_token("authz-1");
    minter.set_lifetime(chrono::Duration::seconds(-60));
    p.grant(&spec(313, inline_target(), &[("aws_iam_user", "task-frank")])).await.expect("grant on the fresh answer");
    endpoint.rotate_token("authz-3");
    let err = p.grant(&spec(314, inline_target(), &[("aws_iam_user", "task-frank")])).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { message, .. } if message.starts_with("AWS credentials")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_ec2_instance_profile_is_read_over_imdsv2_and_refreshed() {
    let s = Scenario::start("imds").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "ec2-dave").await;
    let role = powerful_role(&admin, "instance-elevate", None).await;
    let minter = Minter::new(m.admin(), &role, chrono::Duration::minutes(4));
    let imds = Imds::start(minter.clone()).await;
    s.set("AWS_EC2_METADATA_DISABLED", "false");
    s.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url);

    let p = chained(m, |_| {});
    p.grant(&spec(308, inline_target(), &[("aws_iam_user", "ec2-dave")])).await.expect("grant as the instance");
    p.grant(&spec(309, inline_target(), &[("aws_iam_user", "ec2-dave")])).await.expect("second grant");
    assert_eq!(minter.minted(), 2, "expiring instance keys are fetched again");
    assert!(imds.tokens_issued() >= 1);
    assert_eq!(imds.unauthorized(), 0, "never a call without the IMDSv2 session token");
    assert!(caller_arn(&p).await.contains(":assumed-role/instance-elevate/"));
}

#[tokio::test]
async fn a_profile_role_then_elevates_own_assume_role() {
    let s = Scenario::start("profile").await;
    let Some(m) = common::moto() else { return };
    let admin = m.admin();
    create_user(admin.client(), "profile-erin").await;
    let base_role = powerful_role(&admin, "profile-base", None).await;
    let session = format!("arn:aws:sts::{ACCOUNT}:assumed-role/profile-base/elevate-laptop");
    let target_role = powerful_role(&admin, "profile-target", Some(&session)).await;
    let base_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/profile-source")}, "Action": "sts:AssumeRole"}]});
    admin
        .client()
        .query(
            Service::Iam,
            "UpdateAssumeRolePolicy",
            &[("RoleName", "profile-base"), ("PolicyDocument", &base_trust.to_string())],
        )
        .await
        .expect("UpdateAssumeRolePolicy");
    // A laptop's profile: source keys, and a role the SDK assumes with them (through moto's STS).
    let (id, secret) = source_keys(&admin, "profile-source").await;
    let credentials =
        s.write("credentials", &format!("[source]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"));
    let config = s.write(
        "config",
        &format!(
            "[profile elevate]\nrole_arn = {base_role}\nsource_profile = source\nrole_session_name = elevate-laptop\n"
        ),
    );
    s.set("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    s.set("AWS_CONFIG_FILE", &config);
    s.set("AWS_PROFILE", "elevate");
    let proxy = common::proxy::Proxy::start(&m.url).await;
    s.set("AWS_ENDPOINT_URL_STS", &proxy.url);

    let p = chained(m, |c| {
        c.sts_endpoint = Some(proxy.url.clone());
        c.assume_role_arn = Some(target_role.clone());
        c.assume_role_session_name = Some("elevate".into());
    });
    p.grant(&spec(310, inline_target(), &[("aws_iam_user", "profile-erin")])).await.expect("grant");
    p.grant(&spec(311, inline_target(), &[("aws_iam_user", "profile-erin")])).await.expect("second grant");
    // One AssumeRole by the SDK for the profile, one by elevate for its own role; both kept.
    assert_eq!(proxy.count("AssumeRole"), 2, "{:?}", proxy.seen());
    assert!(caller_arn(&p).await.ends_with(":assumed-role/profile-target/elevate"));
}

#[tokio::test]
async fn with_no_source_at_all_calls_fail_with_a_clear_transient_error() {
    let _s = Scenario::start("nothing").await;
    let Some(m) = common::moto() else { return };
    let p = chained(m, |_| {});
    let err = p.client().query(Service::Iam, "ListUsers", &[]).await.unwrap_err();
    match &err {
        ProviderError::Transient { message, .. } => {
            assert!(message.starts_with("AWS credentials"), "{message}")
        }
        other => panic!("expected a transient credentials error, got {other:?}"),
    }
}

/// A user that may assume roles, and a fresh access key of its own (id, secret).
async fn source_keys(admin: &AwsProvider, user: &str) -> (String, String) {
    let c = admin.client();
    create_user(c, user).await;
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]});
    c.query(
        Service::Iam,
        "PutUserPolicy",
        &[("UserName", user), ("PolicyName", "assume"), ("PolicyDocument", &all.to_string())],
    )
    .await
    .expect("PutUserPolicy");
    let key = c.query(Service::Iam, "CreateAccessKey", &[("UserName", user)]).await.expect("CreateAccessKey");
    (key.find("AccessKeyId").unwrap().text.clone(), key.find("SecretAccessKey").unwrap().text.clone())
}
