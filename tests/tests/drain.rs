//! Shutting down and dying mid-work: a draining shutdown lets the provider calls in flight
//! finish, and gives back at once what outlasts its timeout; leases are short and renewed while
//! an item runs, so a slow call keeps its item and a dead replica's work is taken over soon;
//! a re-run after a lease was lost never makes a grant last longer than its window.

use chrono::Duration;
use elevate_core::{Clock, ports::DueKind};
use elevate_tests::{TestApp, on_both_dbs, policy};
use std::time::Duration as StdDuration;

/// The lease every test app runs with (the default).
const LEASE: StdDuration = StdDuration::from_secs(30);

/// The test policy with these `[scheduler]` settings.
fn with_scheduler(settings: &str) -> String {
    format!("{}\n[scheduler]\n{settings}\n", policy::config("http://127.0.0.1:9/elevate"))
}

/// An approved `db` request whose apply is due now.
async fn approved(app: &TestApp) -> i64 {
    let id = app.alice().request("db", "1h", "INC-1 fix lag").await.id();
    app.bob().approve(id).await.ok();
    id
}

on_both_dbs!(a_shutdown_lets_a_grant_in_flight_finish, |db| async move {
    // The background loops run, as in `elevate serve`: the claim loop starts the apply.
    let mut app = TestApp::builder().db(db).background().spawn().await;
    app.receiver.hold();
    let id = approved(&app).await;
    app.receiver.wait_held(1).await;
    // SIGTERM arrives while the provider is still answering; it answers during the drain.
    // Meanwhile HTTP still answers, and says it is not ready for more.
    let (receiver, readyz) = (app.receiver.clone(), format!("{}/readyz", app.base));
    let (drained, ready) = tokio::join!(app.app.drain(), async move {
        let status = reqwest::get(&readyz).await.map(|r| r.status().as_u16());
        receiver.let_go();
        status
    });
    assert_eq!(ready.ok(), Some(503), "not ready once the drain began");
    assert_eq!(drained.items.finished, 1, "{drained:?}");
    assert!(drained.items.released.is_empty(), "nothing left to give back: {drained:?}");
    assert_eq!(app.state(id).await, "active");
    assert!(app.receiver.holds(&TestApp::grant_id(id)));
    assert!(app.due_kinds(id).await.contains(&"expire"), "the apply item is done, its expiry due");
});

on_both_dbs!(a_grant_that_outlasts_the_drain_is_given_back_and_taken_over_at_once, |db| async move {
    let config = with_scheduler("drain_timeout = \"1s\"").replace("http://127.0.0.1:9/elevate", "{WEBHOOK_URL}");
    let mut app = TestApp::builder().db(db).config(&config).spawn().await;
    let id = approved(&app).await;
    app.receiver.hold();
    app.app.scheduler.start_due_now().await.unwrap();
    app.receiver.wait_held(1).await;
    let claimed_at = app.clock.now();
    // The provider does not answer within the drain timeout.
    let drained = app.app.drain().await;
    assert_eq!(drained.items.finished, 0);
    assert_eq!(drained.items.released.len(), 1);
    assert_eq!(drained.items.released[0].kind, DueKind::Apply);
    assert_eq!(drained.items.released[0].request.map(|r| r.0), Some(id));
    assert_eq!(drained.items.unleased, 1, "its lease given back in the database");
    assert_eq!(app.app.scheduler.in_flight(), 0);
    // Another replica finds it at once, without waiting for the lease: no time has passed.
    let taken = app.store().claim_due(app.clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(
        taken.iter().map(|d| (d.kind, d.request.map(|r| r.0))).collect::<Vec<_>>(),
        [(DueKind::Apply, Some(id))]
    );
    assert_eq!(taken[0].claim.map(|c| c.since), Some(claimed_at), "the first claim is remembered");
    app.receiver.let_go();
    app.app.service.run_due(taken.into_iter().next().unwrap()).await.unwrap();
    assert_eq!(app.state(id).await, "active");
    assert_eq!(app.request(id).await.expires_at, Some(claimed_at + Duration::hours(1)));
});

on_both_dbs!(a_renewed_lease_keeps_a_slow_call_owned_and_a_lost_one_is_taken_over, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = approved(&app).await;
    let first_claim = app.clock.now();
    app.receiver.hold();
    app.app.scheduler.start_due_now().await.unwrap();
    app.receiver.wait_held(1).await;
    // The heartbeat renews the lease while the call is slow: 40 s on, longer than one lease,
    // another replica still cannot take the item.
    app.advance(Duration::seconds(20));
    assert_eq!(app.app.scheduler.renew_leases().await, (1, 0));
    app.advance(Duration::seconds(20));
    assert!(app.store().claim_due(app.clock.now(), 10, LEASE).await.unwrap().is_empty(), "still owned");
    // This process stalls: no beat for longer than the lease, and another replica takes over.
    app.advance(Duration::seconds(40));
    let taken = app.store().claim_due(app.clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(taken.len(), 1, "taken over once the renewed lease ran out");
    // The stalled process's next beat finds the lease gone and stops its own run.
    assert_eq!(app.app.scheduler.renew_leases().await, (0, 1));
    assert_eq!(app.app.scheduler.in_flight(), 0);
    app.receiver.let_go();
    app.app.service.run_due(taken.into_iter().next().unwrap()).await.unwrap();
    assert_eq!(app.state(id).await, "active");
    // The re-run, a minute after the first claim, does not move the end of the grant later.
    let r = app.request(id).await;
    assert_eq!(r.granted_at, Some(first_claim));
    assert_eq!(r.expires_at, Some(first_claim + Duration::hours(1)));
});

on_both_dbs!(a_re_apply_that_loses_the_race_to_the_first_run_leaves_its_grant_alone, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = approved(&app).await;
    let first_claim = app.clock.now();
    app.receiver.hold();
    // The first run's call is slow; its lease ends (no beat) and a second run takes over.
    app.app.scheduler.start_due_now().await.unwrap();
    app.receiver.wait_held(1).await;
    app.advance(Duration::seconds(31));
    let taken = app.store().claim_due(app.clock.now(), 10, LEASE).await.unwrap();
    let service = app.app.service.clone();
    let second = tokio::spawn(async move { service.run_due(taken.into_iter().next().unwrap()).await });
    app.receiver.wait_held(2).await;
    // Both calls are answered; whichever commits second finds the grant active and must not
    // undo it (the same grant, recorded by the other run).
    app.receiver.let_go();
    second.await.unwrap().unwrap();
    for _ in 0..200 {
        if app.app.scheduler.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert_eq!(app.app.scheduler.in_flight(), 0, "the first run ended");
    assert_eq!(app.state(id).await, "active");
    assert!(app.receiver.holds(&TestApp::grant_id(id)), "the grant is still applied");
    assert!(!app.event_kinds(id).await.contains(&"grant_undone".to_string()));
    assert_eq!(app.request(id).await.expires_at, Some(first_claim + Duration::hours(1)));
});

on_both_dbs!(work_claimed_by_a_replica_that_was_killed_is_taken_over_when_its_short_lease_ends, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = approved(&app).await;
    // A replica claimed the apply and was killed (SIGKILL: no drain, nothing released).
    assert_eq!(app.store().claim_due(app.clock.now(), 10, LEASE).await.unwrap().len(), 1);
    assert_eq!(app.run_due().await, 0, "held by the dead replica's lease");
    app.advance(Duration::seconds(29));
    assert_eq!(app.run_due().await, 0);
    app.advance(Duration::seconds(1));
    assert!(app.run_due().await >= 1, "the default lease is 30 s: taken over as it ends");
    assert_eq!(app.state(id).await, "active");
});

#[tokio::test]
async fn lease_and_drain_settings_are_checked_at_load() {
    let Err(errs) = elevate_bot::config::Config::parse(&with_scheduler("lease = \"1s\"\ndrain_timeout = \"1h\""))
    else {
        panic!("a 1 s lease and a 1 h drain are refused")
    };
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(text.iter().any(|e| e.contains("scheduler.lease") && e.contains("at least 3s")), "{text:?}");
    assert!(text.iter().any(|e| e.contains("scheduler.drain_timeout") && e.contains("at most 10m")), "{text:?}");
}
