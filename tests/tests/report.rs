//! The usage report's figures, checked against a known history.

use chrono::Duration;
use elevate_core::{Clock, report::Usage, service::report_from_store};
use elevate_tests::{Fault, TestApp, policy};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_report_counts_what_happened() {
    let rules = r#"
[rules.march-freeze]
kind = "freeze"
from = "2026-03-01T00:00:00Z"
until = "2026-03-31T00:00:00Z"
roles = ["prod"]
"#;
    let app = TestApp::builder().config(&(policy::config("{WEBHOOK_URL}") + rules)).spawn().await;
    let start = app.clock.now();
    // 09:00 alice takes db for 1h (bob approves) and db for 2h (carol approves).
    let one = app.alice().request("db", "1h", "INC-1 one").await.id();
    app.bob().approve(one).await.ok();
    let two = app.alice().request("db", "2h", "INC-1 two").await.id();
    app.carol().approve(two).await.ok();
    app.run_due().await;
    // 09:30 she releases the second; erin breaks glass for 20m.
    app.advance(Duration::minutes(30));
    app.alice().release(two).await.ok();
    app.run_due().await;
    let bg = app
        .person("erin")
        .call(
            Method::POST,
            "/api/v1/breakglass",
            Some(json!({ "role": "db", "duration": "20m", "justification": "prod down" })),
        )
        .await
        .id();
    app.run_due().await;
    // A denial by a person and one by a rule.
    let sandbox = app.alice().request("sandbox", "1h", "poke around").await.id();
    app.carol().deny(sandbox, "not needed").await.ok();
    app.alice().request("prod", "30m", "deploy").await.refused(403);
    // 09:50 and 10:00 both grants expire, but each revoke fails once (with its inline retry)
    // before it goes through.
    app.receiver.fail_next(std::iter::repeat_n(Fault::Status(500, None), 4));
    app.after(Duration::minutes(30)).await;
    app.after(Duration::seconds(5)).await;
    assert_eq!(app.state(one).await, "expired");
    assert_eq!(app.state(bg).await, "expired");

    let r = report_from_store(app.store(), start - Duration::hours(1), app.clock.now()).await.unwrap();
    let usage = |name: &str, n: u64, total: i64, median: i64| Usage {
        name: name.into(),
        elevations: n,
        total_secs: total,
        median_secs: median,
    };
    assert_eq!(r.by_role, [usage("db", 3, 3600 + 1800 + 1200, 1800)]);
    assert_eq!(r.by_person, [usage("alice", 2, 5400, 2700), usage("erin", 1, 1200, 1200)]);
    assert_eq!(r.approvals.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("bob", 1), ("carol", 1)]);
    assert_eq!(r.denials.len(), 2);
    assert_eq!((r.denials[0].0.as_str(), r.denials[0].1.as_str(), r.denials[0].2), ("carol", "not needed", 1));
    assert_eq!(r.denials[1].0, "rule march-freeze");
    assert_eq!(r.breakglass.len(), 1);
    assert_eq!((r.breakglass[0].person.as_str(), r.breakglass[0].review.as_str()), ("erin", "open"));
    assert_eq!((r.revoke_failures, r.revoke_failed_requests.clone()), (2, vec![one, bg]));
    let table = r.table();
    assert!(table.contains("db                                3      1h50m      0h30m"), "{table}");

    elevate_bot::scheduler::run_job(&app.app.service, app.store(), "report").await.unwrap();
    let posted = app.events().await.into_iter().rfind(|e| e.kind == "report.posted").expect("posted to the feed");
    let line = elevate_core::render::feed_line(&posted, None);
    assert!(line.starts_with("elevate usage report, last 7d\n```\n") && line.contains("break-glass uses: 1"), "{line}");
}
