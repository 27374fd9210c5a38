//! Reading is scoped like acting: a token sees its own requests, approvers also those of the
//! roles they approve, the security group everything; anyone else gets what a missing request
//! gets, so not even its existence leaks. The CLI's `status` reads through the same API.

use elevate_tests::{TestApp, on_both_dbs};
use serde_json::Value;

fn ids(body: &Value, key: &str) -> Vec<i64> {
    let mut v: Vec<i64> = body[key].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    v.sort();
    v
}

on_both_dbs!(each_reader_sees_what_they_ask_for_approve_or_guard, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    // alice asks for `db` (approved by bob and carol) and `busy` (approved by the crowd, p01…).
    let db_req = app.alice().request("db", "1h", "INC-1 look at the lag").await.id();
    let busy_req = app.alice().request("busy", "1h", "INC-2 load test").await.id();
    let erins = app.person("erin").request("db", "1h", "INC-3 erin's own").await.id();
    app.bob().approve(db_req).await.ok();
    app.run_due().await;

    let list = |who: &str| {
        let p = app.person(who);
        async move { ids(&p.call(reqwest::Method::GET, "/api/v1/requests", None).await.ok(), "requests") }
    };
    let grants = |who: &str| {
        let p = app.person(who);
        async move { ids(&p.call(reqwest::Method::GET, "/api/v1/grants", None).await.ok(), "grants") }
    };
    assert_eq!(list("alice").await, vec![db_req, busy_req], "the requester: her own");
    assert_eq!(list("erin").await, vec![erins], "another engineer: only her own");
    assert_eq!(list("bob").await, vec![db_req, erins], "an approver of db: db requests, not busy");
    assert_eq!(list("p01").await, vec![busy_req], "an approver of busy only");
    assert_eq!(list("dave").await, vec![db_req, busy_req, erins], "security: everything");
    assert!(list("mallory").await.is_empty(), "known, in no group: nothing");
    assert_eq!(grants("erin").await, Vec::<i64>::new(), "alice's active grant is not erin's business");
    assert_eq!(grants("carol").await, vec![db_req]);

    // One request: the same answer as for one that does not exist.
    let show = |who: &str, id: i64| {
        let p = app.person(who);
        async move { p.show(id).await }
    };
    assert_eq!(show("alice", db_req).await.ok()["id"], db_req);
    assert_eq!(show("bob", db_req).await.ok()["id"], db_req);
    assert_eq!(show("dave", busy_req).await.ok()["id"], busy_req);
    let hidden = show("erin", db_req).await.refused(404);
    let missing = show("erin", 999).await.refused(404);
    assert_eq!(hidden, missing.replace("999", &db_req.to_string()), "indistinguishable from a missing request");
    show("bob", busy_req).await.refused(404);
    show("mallory", erins).await.refused(404);
});
