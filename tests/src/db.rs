//! Databases for tests: a SQLite file in a temporary directory, or a fresh PostgreSQL database
//! on the server named by `ELEVATE_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`).

use sqlx::{Connection, Executor, PgConnection};

/// Which dialect a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub dialect: Dialect,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("elevate.db").display().to_string();
        TestDb { url, dialect: Dialect::Sqlite, _dir: Some(dir) }
    }

    /// Another handle on a database some other test app already uses (a second replica).
    pub fn existing(url: &str, dialect: Dialect) -> TestDb {
        TestDb { url: url.to_string(), dialect, _dir: None }
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured. Under CI a missing
    /// server is a failure, not a skip: the suite must run on both dialects there.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var("ELEVATE_TEST_POSTGRES_URL") else {
            if std::env::var("CI").is_ok() {
                panic!("CI is set but ELEVATE_TEST_POSTGRES_URL is not: the PostgreSQL suite must run in CI");
            }
            eprintln!("SKIPPED (PostgreSQL): set ELEVATE_TEST_POSTGRES_URL to run this test on PostgreSQL");
            return None;
        };
        let name = format!("elevate_t_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&admin).await.expect("connect to ELEVATE_TEST_POSTGRES_URL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(TestDb { url: format!("{base}/{name}"), dialect: Dialect::Postgres, _dir: None })
    }
}

/// Runs a test body on SQLite and on PostgreSQL: `on_both_dbs!(name, |db| async move { … })`.
#[macro_export]
macro_rules! on_both_dbs {
    ($name:ident, |$db:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = $crate::TestDb::sqlite();
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = $crate::TestDb::postgres().await else {
                    return;
                };
                $body.await
            }
        }
    };
}
