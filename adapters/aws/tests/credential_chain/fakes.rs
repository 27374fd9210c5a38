//! Local stand-ins for what hands a process temporary AWS keys: the ECS/EKS container
//! credentials endpoint, EC2's instance metadata service (IMDSv2) and STS's web identity front.
//!
//! The keys they hand out are real moto session keys, minted with `sts:AssumeRole` for a role
//! allowed to do everything, so calls signed with them pass moto's signature and permission
//! checks. The expiry they announce is the test's choice, so a refresh can be observed without
//! waiting: keys announced to expire within elevate's refresh margin are fetched again on the
//! next call, keys good for an hour are not.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use elevate_aws::{AwsProvider, Service};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A set of moto session keys and the expiry announced with them.
pub struct Minted {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
}

/// Mints moto session keys for one role, counting how many it handed out.
pub struct Minter {
    admin: AwsProvider,
    role_arn: String,
    lifetime: Mutex<chrono::Duration>,
    minted: AtomicUsize,
}

impl Minter {
    pub fn new(admin: AwsProvider, role_arn: &str, lifetime: chrono::Duration) -> Arc<Minter> {
        Arc::new(Minter {
            admin,
            role_arn: role_arn.into(),
            lifetime: Mutex::new(lifetime),
            minted: AtomicUsize::new(0),
        })
    }

    pub fn set_lifetime(&self, lifetime: chrono::Duration) {
        *self.lifetime.lock().unwrap() = lifetime;
    }

    pub fn minted(&self) -> usize {
        self.minted.load(Ordering::SeqCst)
    }

    async fn mint(&self, action: &str, extra: &[(&str, &str)]) -> Minted {
        let mut params = vec![("RoleArn", self.role_arn.as_str()), ("RoleSessionName", "chain-test")];
        params.extend_from_slice(extra);
        let doc = self.admin.client().query(Service::Sts, action, &params).await.expect("moto mints keys");
        let text = |n: &str| doc.find(n).unwrap_or_else(|| panic!("{n} in {action}'s answer")).text.clone();
        self.minted.fetch_add(1, Ordering::SeqCst);
        let lifetime = *self.lifetime.lock().unwrap();
        Minted {
            access_key_id: text("AccessKeyId"),
            secret_access_key: text("SecretAccessKey"),
            session_token: text("SessionToken"),
            expiration: (Utc::now() + lifetime).to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The container credentials endpoint (ECS task roles, EKS Pod Identity): a GET on the
/// advertised URI, with the `Authorization` header set to the token the platform provided;
/// the answer is `{AccessKeyId, SecretAccessKey, Token, Expiration, RoleArn}`.
pub struct ContainerEndpoint {
    pub url: String,
    pub refused: Arc<AtomicUsize>,
    state: Arc<ContainerState>,
}

struct ContainerState {
    minter: Arc<Minter>,
    token: Mutex<String>,
    refused: Arc<AtomicUsize>,
}

impl ContainerEndpoint {
    /// Serves `/v2/credentials/elevate-task`, answering only calls that carry `token`.
    pub async fn start(minter: Arc<Minter>, token: &str) -> ContainerEndpoint {
        let refused = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(ContainerState { minter, token: Mutex::new(token.into()), refused: refused.clone() });
        let app = axum::Router::new()
            .route("/v2/credentials/elevate-task", axum::routing::get(container))
            .with_state(state.clone());
        ContainerEndpoint { url: format!("{}/v2/credentials/elevate-task", serve(app).await), refused, state }
    }

    /// The platform rotated its token: calls with the old one are refused from now on.
    pub fn rotate_token(&self, token: &str) {
        *self.state.token.lock().unwrap() = token.into();
    }
}

async fn container(State(s): State<Arc<ContainerState>>, headers: HeaderMap) -> Response {
    let expected = s.token.lock().unwrap().clone();
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        let body = json!({"code": "AccessDenied", "message": "Unable to validate the authorization token"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let m = s.minter.mint("AssumeRole", &[]).await;
    axum::Json(json!({
        "AccessKeyId": m.access_key_id,
        "SecretAccessKey": m.secret_access_key,
        "Token": m.session_token,
        "Expiration": m.expiration,
        "RoleArn": s.minter.role_arn,
    }))
    .into_response()
}

/// EC2 instance metadata, IMDSv2 only: `PUT /latest/api/token` with
/// `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600) gives a session token; every GET must
/// carry it in `X-aws-ec2-metadata-token` (401 otherwise). The instance profile's role name is
/// listed under `/latest/meta-data/iam/security-credentials/`, its keys one level below.
pub struct Imds {
    pub url: String,
    state: Arc<ImdsState>,
}

struct ImdsState {
    minter: Arc<Minter>,
    tokens: Mutex<Vec<String>>,
    unauthorized: AtomicUsize,
}

pub const INSTANCE_ROLE: &str = "elevate-instance";

impl Imds {
    pub async fn start(minter: Arc<Minter>) -> Imds {
        let state = Arc::new(ImdsState { minter, tokens: Mutex::new(Vec::new()), unauthorized: AtomicUsize::new(0) });
        let app = axum::Router::new().fallback(imds).with_state(state.clone());
        Imds { url: serve(app).await, state }
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.tokens.lock().unwrap().len()
    }

    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }
}

async fn imds(State(s): State<Arc<ImdsState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    if method == Method::PUT && uri.path() == "/latest/api/token" {
        let ttl = header("x-aws-ec2-metadata-token-ttl-seconds").and_then(|t| t.parse::<u32>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let token = format!("imds-token-{}", s.tokens.lock().unwrap().len() + 1);
        s.tokens.lock().unwrap().push(token.clone());
        // The answer repeats the granted TTL in the same header.
        return ([("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())], token).into_response();
    }
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let known = header("x-aws-ec2-metadata-token").is_some_and(|t| s.tokens.lock().unwrap().contains(&t));
    if !known {
        s.unauthorized.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let listing = "/latest/meta-data/iam/security-credentials/";
    match uri.path().strip_prefix(listing) {
        Some("") => INSTANCE_ROLE.into_response(),
        Some(INSTANCE_ROLE) => {
            let m = s.minter.mint("AssumeRole", &[]).await;
            axum::Json(json!({
                "Code": "Success",
                "LastUpdated": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                "Type": "AWS-HMAC",
                "AccessKeyId": m.access_key_id,
                "SecretAccessKey": m.secret_access_key,
                "Token": m.session_token,
                "Expiration": m.expiration,
            }))
            .into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// STS's `AssumeRoleWithWebIdentity`, which real STS takes unsigned and authenticates by its
/// token. moto, with signature checking on, refuses unsigned calls and never looks at the
/// token, so this front does STS's part: it checks the token against the one the test's
/// identity provider issued (`InvalidIdentityToken` otherwise, as STS answers), then has moto
/// mint the role's keys with a signed call, and answers in STS's shape.
pub struct WebIdentitySts {
    pub url: String,
    pub seen_tokens: Arc<Mutex<Vec<String>>>,
}

struct StsState {
    minter: Arc<Minter>,
    token: String,
    seen_tokens: Arc<Mutex<Vec<String>>>,
}

impl WebIdentitySts {
    pub async fn start(minter: Arc<Minter>, token: &str) -> WebIdentitySts {
        let seen_tokens = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(StsState { minter, token: token.into(), seen_tokens: seen_tokens.clone() });
        let app = axum::Router::new().fallback(web_identity).with_state(state);
        WebIdentitySts { url: serve(app).await, seen_tokens }
    }
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>web-identity-1</RequestId></ErrorResponse>"#
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

async fn web_identity(State(s): State<Arc<StsState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let param = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if param("Action").as_deref() != Some("AssumeRoleWithWebIdentity") {
        return sts_error(StatusCode::BAD_REQUEST, "InvalidAction", "only AssumeRoleWithWebIdentity is served here");
    }
    assert!(headers.get("authorization").is_none(), "AssumeRoleWithWebIdentity is sent unsigned");
    let token = param("WebIdentityToken").unwrap_or_default();
    s.seen_tokens.lock().unwrap().push(token.clone());
    if token != s.token {
        return sts_error(StatusCode::BAD_REQUEST, "InvalidIdentityToken", "Couldn't verify the token's signature");
    }
    if param("RoleArn").as_deref() != Some(s.minter.role_arn.as_str()) {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    let session = param("RoleSessionName").unwrap_or_default();
    let m = s.minter.mint("AssumeRoleWithWebIdentity", &[("WebIdentityToken", &token)]).await;
    let role = s.minter.role_arn.rsplit('/').next().unwrap_or_default();
    let body = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:elevate:elevate</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/{role}/{session}</Arn><AssumedRoleId>AROAEXAMPLE:{session}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><Provider>oidc.eks.example</Provider><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>web-identity-1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#,
        m.access_key_id, m.secret_access_key, m.session_token, m.expiration
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}
