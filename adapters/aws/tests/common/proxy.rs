//! A fault-injecting proxy in front of moto: answers the next matching calls with AWS-shaped
//! errors, delays them past the client's timeout, or rewrites moto's answer; everything else is
//! forwarded unchanged (Host kept, so moto's signature check still applies).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with one call.
pub enum Fault {
    /// Answer with this status, headers and body; moto never sees the call.
    Reply { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, then pass moto's answer body through this function.
    Rewrite(Box<dyn Fn(&str) -> String + Send>),
}

impl Fault {
    /// The query API's error shape (IAM, STS).
    pub fn query_error(status: u16, code: &str, message: &str) -> Fault {
        let body = format!(
            r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-1</RequestId></ErrorResponse>"#
        );
        Fault::Reply { status, headers: vec![("content-type", "text/xml".into())], body }
    }

    /// The JSON protocol's error shape (Identity Center).
    pub fn json_error(status: u16, code: &str, message: &str) -> Fault {
        let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        Fault::Reply {
            status,
            headers: vec![("content-type", "application/x-amz-json-1.1".into()), ("x-amzn-errortype", code.into())],
            body,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Fault {
        if let Fault::Reply { headers, .. } = &mut self {
            headers.push((name, value.to_string()));
        }
        self
    }
}

struct Planned {
    action: Option<&'static str>,
    fault: Fault,
}

struct Inner {
    upstream: String,
    plan: Mutex<VecDeque<Planned>>,
    seen: Mutex<Vec<String>>,
    http: reqwest::Client,
}

/// A running proxy; dropped with the test's runtime.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    inner: Arc<Inner>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        super::tls();
        let inner = Arc::new(Inner {
            upstream: upstream.to_string(),
            plan: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            http: reqwest::Client::new(),
        });
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Proxy { url, inner }
    }

    /// Applies `fault` to the next call of `action` (`None`: the next call of any action).
    /// Faults apply in the order planned.
    pub fn plan(&self, action: Option<&'static str>, fault: Fault) {
        self.inner.plan.lock().unwrap().push_back(Planned { action, fault });
    }

    /// Every action that reached the proxy, in order.
    pub fn seen(&self) -> Vec<String> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn count(&self, action: &str) -> usize {
        self.seen().iter().filter(|a| *a == action).count()
    }
}

fn action_of(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    form_urlencoded::parse(body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let action = action_of(&parts.headers, &body);
    inner.seen.lock().unwrap().push(action.clone());
    let fault = {
        let mut plan = inner.plan.lock().unwrap();
        let at = plan.iter().position(|p| p.action.is_none_or(|a| a == action));
        at.and_then(|i| plan.remove(i)).map(|p| p.fault)
    };
    let mut rewrite = None;
    match fault {
        Some(Fault::Reply { status, headers, body }) => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                r.headers_mut().insert(HeaderName::from_static(k), HeaderValue::from_str(&v).unwrap());
            }
            return r;
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Rewrite(f)) => rewrite = Some(f),
        None => {}
    }
    let mut fwd = inner.http.request(parts.method.clone(), format!("{}{}", inner.upstream, parts.uri.path()));
    for (k, v) in parts.headers.iter() {
        fwd = fwd.header(k, v);
    }
    let answer = fwd.body(body.to_vec()).send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut text = answer.text().await.unwrap();
    if let Some(f) = rewrite {
        text = f(&text);
    }
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    for (k, v) in headers.iter() {
        if k != "content-length" && k != "transfer-encoding" {
            r.headers_mut().insert(k, v.clone());
        }
    }
    r
}
