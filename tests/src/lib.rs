//! elevate-tests: end-to-end tests. The harness builds the real application (real HTTP server
//! on port 0, real SQLite or PostgreSQL, real providers) with a clock the test moves, so a test
//! reads like a story:
//!
//! ```ignore
//! let app = TestApp::spawn().await;
//! let id = app.alice().request("db", "1h", "INC-1 fix lag").await.id();
//! app.bob().approve(id).await.ok();
//! app.run_due().await;
//! assert_eq!(app.state(id).await, "active");
//! ```

pub mod db;
pub mod discord;
pub mod fake_discord;
pub mod fake_jira;
pub mod fake_opsgenie;
pub mod fake_pagerduty;
pub mod fake_slack;
pub mod fake_time;
pub mod harness;
pub mod oncall;
pub mod pg_instance;
pub mod policy;
pub mod receiver;
pub mod render;
pub mod slack;
pub mod tickets;

pub use db::TestDb;
pub use harness::{Answer, Person, TestApp, TestAppBuilder};
pub use receiver::{Fault, Receiver};
