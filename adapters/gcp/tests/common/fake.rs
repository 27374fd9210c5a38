//! A stateful fake of the Google APIs elevate calls, written from Google's REST reference:
//! - the OAuth 2.0 token endpoint's JWT-bearer grant for service accounts (RS256 signature
//!   checked against the test key's public half, `iss`, `aud`, `iat`/`exp` checked), and the
//!   metadata server's token;
//! - Resource Manager v3 `projects|folders|organizations/*:getIamPolicy` and `:setIamPolicy`:
//!   policy versions (conditional bindings hidden from version-1 readers as `_withcond_` roles),
//!   an etag that changes on every write, 409 ABORTED on a stale etag, bindings and conditions
//!   kept verbatim, 403 for a resource that does not exist (Google does not reveal which);
//! - Cloud Identity v1 groups: `groups:lookup`, `memberships` create (a done Operation), get,
//!   lookup, list, delete and `modifyMembershipRoles`, with expiry times honoured by the fake's
//!   clock (an expired membership is gone, as Google removes it);
//! - bearer tokens that expire by the fake's clock (401 UNAUTHENTICATED after), and faults
//!   injected per call (429 with Retry-After, 5xx, 403 with a message).
#![allow(dead_code)]

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A failure to answer the next API call with (token calls are not affected).
#[derive(Debug, Clone)]
pub enum Fault {
    /// An HTTP status with Google's error body, and `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// 403 PERMISSION_DENIED with this message.
    Denied(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub(super) struct Policy {
    pub(super) version: i64,
    pub(super) etag: u64,
    pub(super) bindings: Vec<Value>,
    pub(super) audit_configs: Option<Value>,
}

pub(super) struct Member {
    pub(super) id: String,
    pub(super) email: String,
    pub(super) expires: Option<DateTime<Utc>>,
    pub(super) created: DateTime<Utc>,
}

pub(super) struct Group {
    pub(super) email: String,
    pub(super) members: Vec<Member>,
}

type NowFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub(super) struct Inner {
    pub(super) now: Option<NowFn>,
    pub(super) offset: Duration,
    pub(super) public_key: Vec<u8>,
    pub(super) client_email: String,
    pub(super) token_uri: String,
    pub(super) token_lifetime: i64,
    pub(super) tokens: HashMap<String, DateTime<Utc>>,
    pub(super) issued: u32,
    pub(super) refused_grants: Vec<String>,
    pub(super) metadata_tokens: u32,
    pub(super) sts_exchanges: u32,
    pub(super) policies: BTreeMap<String, Policy>,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) next_id: u64,
    pub(super) faults: VecDeque<Fault>,
    pub(super) outside_changes: HashMap<String, VecDeque<Value>>,
    pub(super) log: Vec<Call>,
}

impl Inner {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.now.as_ref().map_or_else(Utc::now, |f| f()) + self.offset
    }
}

#[derive(Clone)]
pub struct FakeGoogle {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

pub const CLIENT_EMAIL: &str = "elevate@elevate-test.iam.gserviceaccount.com";

pub(super) fn error(http: u16, status: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": http, "message": message, "status": status } });
    (StatusCode::from_u16(http).unwrap(), axum::Json(body)).into_response()
}

pub(super) fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

impl FakeGoogle {
    pub async fn start() -> FakeGoogle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pem = include_str!("TEST-ONLY-service-account-key.pub.b64").trim();
        let inner = Inner {
            now: None,
            offset: Duration::zero(),
            public_key: STANDARD.decode(pem).unwrap(),
            client_email: CLIENT_EMAIL.into(),
            token_uri: format!("{url}/token"),
            token_lifetime: 3600,
            tokens: HashMap::new(),
            issued: 0,
            refused_grants: Vec::new(),
            metadata_tokens: 0,
            sts_exchanges: 0,
            policies: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_id: 1,
            faults: VecDeque::new(),
            outside_changes: HashMap::new(),
            log: Vec::new(),
        };
        let fake = FakeGoogle { url, inner: Arc::new(Mutex::new(inner)) };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Reads the time from the engine's clock (end-to-end tests that move it).
    pub fn follow(&self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) {
        self.lock().now = Some(Arc::new(now));
    }
    pub fn advance(&self, by: Duration) {
        self.lock().offset += by;
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    /// A resource (`projects/p`, `folders/1`, `organizations/2`) with these bindings.
    pub fn add_resource(&self, resource: &str, bindings: Vec<Value>) {
        let version = if bindings.iter().any(|b| b.get("condition").is_some()) { 3 } else { 1 };
        self.lock().policies.insert(resource.into(), Policy { version, etag: 1, bindings, audit_configs: None });
    }
    pub fn bindings(&self, resource: &str) -> Vec<Value> {
        self.lock().policies[resource].bindings.clone()
    }
    /// Someone else's change, made just before elevate's next write (queued: one per write) of `resource` lands (so
    /// that write carries a stale etag).
    pub fn change_before_next_write(&self, resource: &str, binding: Value) {
        self.lock().outside_changes.entry(resource.into()).or_default().push_back(binding);
    }

    /// A group; returns its `groups/ID`.
    pub fn add_group(&self, email: &str) -> String {
        let mut s = self.lock();
        let name = format!("groups/0grp{}", s.next_id);
        s.next_id += 1;
        s.groups.insert(name.clone(), Group { email: email.into(), members: Vec::new() });
        name
    }
    pub fn add_member(&self, group: &str, email: &str, expires: Option<DateTime<Utc>>) {
        let mut s = self.lock();
        let (id, created) = (format!("0m{}", s.next_id), s.now());
        s.next_id += 1;
        s.groups.get_mut(group).unwrap().members.push(Member { id, email: email.into(), expires, created });
    }
    /// Current members and their expiry, as Google would list them now.
    pub fn members(&self, group: &str) -> Vec<(String, Option<DateTime<Utc>>)> {
        let mut s = self.lock();
        expire_members(&mut s);
        s.groups[group].members.iter().map(|m| (m.email.clone(), m.expires)).collect()
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }
    pub fn calls(&self) -> Vec<Call> {
        self.lock().log.clone()
    }
    /// `(method suffix or path part, status)` of calls whose path contains `part`.
    pub fn statuses(&self, part: &str) -> Vec<u16> {
        self.lock().log.iter().filter(|c| c.path.contains(part)).map(|c| c.status).collect()
    }
    /// Service-account tokens issued after a valid signed grant.
    pub fn tokens_issued(&self) -> u32 {
        self.lock().issued
    }
    pub fn refused_grants(&self) -> Vec<String> {
        self.lock().refused_grants.clone()
    }
    pub fn metadata_tokens(&self) -> u32 {
        self.lock().metadata_tokens
    }
    /// Security Token Service exchanges of the external account's subject token.
    pub fn sts_exchanges(&self) -> u32 {
        self.lock().sts_exchanges
    }
    pub fn set_token_lifetime(&self, secs: i64) {
        self.lock().token_lifetime = secs;
    }
}

pub(super) fn expire_members(s: &mut Inner) {
    let now = s.now();
    for g in s.groups.values_mut() {
        g.members.retain(|m| m.expires.is_none_or(|e| e > now));
    }
}

async fn handle(State(fake): State<FakeGoogle>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let mut s = fake.lock();
    let resp = route(&mut s, &method, &path, &query, &headers, &body);
    let status = resp.status().as_u16();
    s.log.push(Call { method: method.to_string(), path, status });
    resp
}

fn route(
    s: &mut Inner,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if path == "/token" && method == Method::POST {
        return token_grant(s, body);
    }
    if path == "/v1/token" && method == Method::POST {
        return sts_exchange(s, body);
    }
    if path.starts_with("/computeMetadata/") && path.ends_with("/token") {
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
        }
        s.metadata_tokens += 1;
        return issue(s);
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let now = s.now();
    if s.tokens.get(token).is_none_or(|exp| *exp <= now) {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        );
    }
    if let Some(f) = s.faults.pop_front() {
        return fault(f);
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(rest) = path.strip_prefix("/v3/") {
        return super::fake_apis::iam(s, method, rest, &body);
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        expire_members(s);
        return super::fake_apis::groups(s, method, rest, query, &body);
    }
    error(404, "NOT_FOUND", &format!("no such method: {path}"))
}

fn fault(f: Fault) -> Response {
    match f {
        Fault::Denied(m) => error(403, "PERMISSION_DENIED", &m),
        Fault::Status(code, retry_after) => {
            let status = match code {
                429 => "RESOURCE_EXHAUSTED",
                500 => "INTERNAL",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "UNKNOWN",
            };
            let mut r = error(code, status, "injected fault");
            if let Some(secs) = retry_after {
                r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            }
            r
        }
    }
}

fn issue(s: &mut Inner) -> Response {
    let token = format!("ya29.fake-{}", s.next_id);
    s.next_id += 1;
    let exp = s.now() + Duration::seconds(s.token_lifetime);
    s.tokens.insert(token.clone(), exp);
    ok(json!({ "access_token": token, "expires_in": s.token_lifetime, "token_type": "Bearer" }))
}

/// RFC 7523 JWT-bearer grant as Google's token endpoint takes it from a service account.
fn token_grant(s: &mut Inner, body: &[u8]) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let refuse = |s: &mut Inner, why: &str| {
        s.refused_grants.push(why.to_string());
        let body = json!({ "error": "invalid_grant", "error_description": why });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(s, "unsupported grant_type");
    }
    let jwt = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return refuse(s, "malformed JWT");
    }
    // base64url; some signers keep the `=` padding, which Google tolerates.
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok();
    let header: Value = decode(parts[0]).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    let claims: Value = decode(parts[1]).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    let Some(sig) = decode(parts[2]) else { return refuse(s, "malformed signature") };
    if header["alg"] != "RS256" {
        return refuse(s, "alg must be RS256");
    }
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &s.public_key);
    if key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).is_err() {
        return refuse(s, "Invalid JWT Signature.");
    }
    if claims["iss"] != s.client_email.as_str() {
        return refuse(s, "Invalid JWT: unknown issuer");
    }
    if claims["aud"] != s.token_uri.as_str() {
        return refuse(s, "Invalid JWT: aud is not the token endpoint");
    }
    if !claims["scope"].as_str().is_some_and(|sc| sc.split(' ').any(|x| x == elevate_gcp::SCOPE)) {
        return refuse(s, "Invalid JWT: no scope");
    }
    // The assertion is judged against wall time, as Google does: it was signed just now, while
    // the fake's clock may have been moved to expire what the fake issued.
    let (iat, exp, wall) =
        (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0), Utc::now().timestamp());
    if exp <= iat || exp - iat > 3600 || iat > wall + 300 || exp < wall - 300 {
        return refuse(s, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    s.issued += 1;
    issue(s)
}

/// The subject token the fake's workload identity pool trusts.
pub const SUBJECT_TOKEN: &str = "test-oidc-token-from-the-ci-system";

/// RFC 8693 token exchange as Google's Security Token Service takes it from an external
/// account (form-encoded).
fn sts_exchange(s: &mut Inner, body: &[u8]) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = |m: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_request", "error_description": m })))
            .into_response()
    };
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return bad("Invalid grant_type.");
    }
    if get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
        || !get("audience").starts_with("//iam.googleapis.com/")
    {
        return bad("Invalid requested_token_type or audience.");
    }
    if get("subject_token") != SUBJECT_TOKEN {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant", "error_description": "The subject token is invalid." })),
        )
            .into_response();
    }
    s.sts_exchanges += 1;
    let token = format!("ya29.sts-{}", s.next_id);
    s.next_id += 1;
    let exp = s.now() + Duration::seconds(s.token_lifetime);
    s.tokens.insert(token.clone(), exp);
    ok(json!({ "access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
               "token_type": "Bearer", "expires_in": s.token_lifetime }))
}
