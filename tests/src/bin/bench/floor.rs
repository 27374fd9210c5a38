//! The floor for the ingress figure: the least any Slack endpoint can do, run as its own process
//! like the real server. A bare axum handler that checks the same Slack signature (HMAC-SHA256
//! over `v0:{timestamp}:{body}`, timestamp within five minutes) and does one SQLite insert
//! (WAL, `synchronous = NORMAL`, one writer connection: the settings elevate uses), then
//! answers 200.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;

/// `bench floor-server DB`: serves on a free loopback port and prints `listening PORT`.
pub async fn serve(db: &str) -> anyhow::Result<()> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{db}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at INTEGER NOT NULL)")
        .execute(&pool)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?.port());
    let app = Router::new().route("/slack/commands", post(command)).with_state(pool);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn command(State(pool): State<SqlitePool>, headers: HeaderMap, body: Bytes) -> (StatusCode, Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts = header("x-slack-request-timestamp");
    let fresh = ts.parse::<i64>().is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300);
    let Some(sig) = header("x-slack-signature").strip_prefix("v0=").and_then(|h| hex::decode(h).ok()) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad signature" })));
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(crate::node::SLACK_SIGNING_SECRET.as_bytes()).expect("any key");
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(&body);
    if !fresh || mac.verify_slice(&sig).is_err() {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad signature" })));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match sqlx::query("INSERT INTO commands (body, at) VALUES ($1, $2)")
        .bind(text)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&pool)
        .await
    {
        Ok(_) => (StatusCode::OK, Json(json!({ "response_type": "ephemeral", "text": "ok" }))),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))),
    }
}
