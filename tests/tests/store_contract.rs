//! The Store's contract, run against SQLite and PostgreSQL alike: atomic writes, compare-and-set
//! transitions, leases, cron claims, cursors and the audit chain.

use chrono::{Duration, TimeZone, Utc};
use elevate_core::{
    GrantDuration, PersonId, Reason, RequestId, RoleName, State, UserError,
    audit::{Actor, EventKind, NewEvent},
    ports::{Change, Decided, Decision, DueKind, Linked, NewDue, Patch, RequestQuery, Store},
    request::{NewRequest, RequestKind, Source},
    service::verify_store,
};
use elevate_sql::SqlStore;
use elevate_tests::on_both_dbs;
use serde_json::json;
use std::time::Duration as StdDuration;

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn new_request(kind: RequestKind) -> NewRequest {
    NewRequest {
        kind,
        role: RoleName::parse("db").unwrap(),
        requester: PersonId::parse("alice").unwrap(),
        duration: GrantDuration::parse("1h").unwrap(),
        reason: Reason::parse("INC-1 fix").unwrap(),
        ticket: Some("INC-1".into()),
        source: Source::api("t"),
        state: State::Pending,
        created_at: t0(),
        extra_approvals: 0,
        rules: Vec::new(),
        closed_by: None,
        note: None,
        starts_at: None,
    }
}

fn event(kind: EventKind) -> NewEvent {
    NewEvent::new(t0(), Actor::System, kind, None, json!({ "k": "v" }))
}

async fn create(store: &SqlStore) -> RequestId {
    let due = vec![NewDue {
        kind: DueKind::PendingTimeout,
        request: None,
        due_at: t0() + Duration::hours(1),
        payload: json!(null),
    }];
    store.create_request(new_request(RequestKind::Normal), event(EventKind::RequestCreated), due).await.unwrap().id
}

on_both_dbs!(creating_a_request_writes_it_its_event_and_its_due_items_together, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let r = store.get_request(id).await.unwrap().unwrap();
    assert_eq!((r.state, r.ticket.as_deref(), r.created_at), (State::Pending, Some("INC-1"), t0()));
    let events = store.events(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, Some(id.0), "the event's subject is the new id");
    let due = store.due_items(id).await.unwrap();
    assert_eq!((due.len(), due[0].request), (1, Some(id)));
});

on_both_dbs!(a_refusal_writes_only_its_audit_event, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let refused = store
        .decide(id, Box::new(|_| Decision::Refuse(UserError::conflict("no"), Some(event(EventKind::ApprovalRefused)))))
        .await
        .unwrap();
    assert!(matches!(refused, Decided::Refused(_)));
    assert_eq!(store.events(0, 10).await.unwrap().len(), 2);
    let silent = store.decide(id, Box::new(|_| Decision::Refuse(UserError::conflict("no"), None))).await.unwrap();
    assert!(matches!(silent, Decided::Refused(_)));
    assert_eq!(store.events(0, 10).await.unwrap().len(), 2);
    assert_eq!(store.get_request(id).await.unwrap().unwrap().state, State::Pending);
});

on_both_dbs!(a_transition_changes_state_patch_approvals_items_and_chain_at_once, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let out = store
        .decide(
            id,
            Box::new(move |r| {
                assert_eq!(r.state, State::Pending);
                Change {
                    to: Some(State::Approved),
                    approval: Some(PersonId::parse("bob").unwrap()),
                    event: Some(event(EventKind::RequestApproved)),
                    schedule: vec![NewDue::new(DueKind::Apply, id, t0())],
                    cancel: vec![DueKind::PendingTimeout],
                    ..Change::default()
                }
                .into()
            }),
        )
        .await
        .unwrap();
    let Decided::Changed(r) = out else { panic!("{out:?}") };
    assert_eq!(r.state, State::Approved);
    assert_eq!(r.approvers(), [PersonId::parse("bob").unwrap()]);
    let kinds: Vec<_> = store.due_items(id).await.unwrap().iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DueKind::Apply]);
    assert!(verify_store(&store).await.unwrap().broken.is_none());
});

on_both_dbs!(a_claimed_item_can_become_the_next_step_still_held_by_its_lease, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let lease = StdDuration::from_secs(60);
    // The pending timeout is claimed, then turned into an apply item by the transition.
    let now = t0() + Duration::hours(2);
    let claimed = store.claim_due(now, 10, lease).await.unwrap();
    let item = claimed[0].id;
    let out = store
        .decide(
            id,
            Box::new(move |_| {
                Change {
                    to: Some(State::Approved),
                    event: Some(event(EventKind::RequestApproved)),
                    then: Some((item, DueKind::Apply)),
                    ..Change::default()
                }
                .into()
            }),
        )
        .await
        .unwrap();
    assert!(matches!(out, Decided::Changed(_)));
    let due = store.due_items(id).await.unwrap();
    assert_eq!(due.iter().map(|d| (d.id, d.kind, d.attempts)).collect::<Vec<_>>(), [(item, DueKind::Apply, 0)]);
    assert!(store.claim_due(now, 10, lease).await.unwrap().is_empty(), "still held by the lease");
    let after_lease = store.claim_due(now + Duration::minutes(2), 10, lease).await.unwrap();
    assert_eq!(
        after_lease.iter().map(|d| (d.id, d.kind)).collect::<Vec<_>>(),
        [(item, DueKind::Apply)],
        "a crash loses nothing"
    );
});

on_both_dbs!(an_illegal_transition_or_a_missing_event_is_an_error_and_writes_nothing, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let illegal = store
        .decide(
            id,
            Box::new(|_| {
                Change { to: Some(State::Expired), event: Some(event(EventKind::GrantExpired)), ..Change::default() }
                    .into()
            }),
        )
        .await;
    assert!(illegal.is_err());
    let silent = store.decide(id, Box::new(|_| Change { to: Some(State::Denied), ..Change::default() }.into())).await;
    assert!(silent.is_err(), "a transition without an audit event is refused");
    assert_eq!(store.get_request(id).await.unwrap().unwrap().state, State::Pending);
    assert_eq!(store.events(0, 10).await.unwrap().len(), 1);
});

on_both_dbs!(a_linked_conflict_rolls_the_whole_decision_back, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let parent = create(&store).await;
    let other = create(&store).await;
    let out = store
        .decide(
            parent,
            Box::new(move |_| {
                Change {
                    to: Some(State::Denied),
                    event: Some(event(EventKind::RequestDenied)),
                    linked: Some(Linked {
                        id: other,
                        from: State::Approved,
                        to: State::Extended,
                        event: event(EventKind::GrantExtended),
                    }),
                    ..Change::default()
                }
                .into()
            }),
        )
        .await
        .unwrap();
    assert_eq!(out, Decided::LinkedConflict);
    assert_eq!(store.get_request(parent).await.unwrap().unwrap().state, State::Pending, "rolled back");
    assert_eq!(store.events(0, 10).await.unwrap().len(), 2);
});

on_both_dbs!(only_the_holder_of_a_lease_renews_or_releases_it, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    store.schedule(vec![NewDue::new(DueKind::Apply, id, t0())]).await.unwrap();
    let lease = StdDuration::from_secs(30);
    let mine = store.claim_due(t0(), 10, lease).await.unwrap().remove(0);
    let claim = mine.claim.expect("a claimed item carries its lease");
    assert_eq!((claim.since, claim.until), (t0(), t0() + Duration::seconds(30)));
    // Renewed by its holder: nobody else can claim it past the first lease.
    let renewed_to = t0() + Duration::seconds(50);
    assert_eq!(store.renew_claims(&[(mine.id, claim.until)], renewed_to).await.unwrap(), [mine.id]);
    assert!(store.claim_due(t0() + Duration::seconds(40), 10, lease).await.unwrap().is_empty(), "renewed");
    // The holder stalls; once the renewed lease is over another claimer takes the item, and the
    // old holder's renewal and release (with its old token) touch nothing.
    let theirs = store.claim_due(t0() + Duration::seconds(51), 10, lease).await.unwrap().remove(0);
    assert_eq!(theirs.claim.map(|c| c.since), Some(t0()), "the first claim is kept across a take-over");
    assert!(store.renew_claims(&[(mine.id, renewed_to)], t0() + Duration::seconds(90)).await.unwrap().is_empty());
    assert_eq!(store.release_held(&[(mine.id, renewed_to)]).await.unwrap(), 0);
    assert!(store.claim_due(t0() + Duration::seconds(60), 10, lease).await.unwrap().is_empty(), "still theirs");
    // Its holder gives it back: claimable at once.
    let token = theirs.claim.unwrap().until;
    assert_eq!(store.release_held(&[(theirs.id, token)]).await.unwrap(), 1);
    let again = store.claim_due(t0() + Duration::seconds(60), 10, lease).await.unwrap();
    assert_eq!(again.len(), 1, "released: claimable without waiting for the lease");
    // A retry starts a new attempt: its window is counted from its own first claim.
    store.retry_due(again[0].id, t0() + Duration::seconds(70), 1, None).await.unwrap();
    let retried = store.claim_due(t0() + Duration::seconds(80), 10, lease).await.unwrap();
    assert_eq!(retried[0].claim.map(|c| c.since), Some(t0() + Duration::seconds(80)));
});

on_both_dbs!(claims_are_leases_and_due_order_is_kept, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    store
        .schedule(vec![
            NewDue::new(DueKind::Reminder, id, t0() + Duration::minutes(5)),
            NewDue::new(DueKind::Apply, id, t0()),
        ])
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(t0()));
    let now = t0() + Duration::minutes(10);
    let claimed = store.claim_due(now, 10, StdDuration::from_secs(60)).await.unwrap();
    let kinds: Vec<_> = claimed.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DueKind::Apply, DueKind::Reminder], "earliest first; the 1h timeout is not due");
    assert!(store.claim_due(now, 10, StdDuration::from_secs(60)).await.unwrap().is_empty(), "leased");
    let later = now + Duration::seconds(61);
    assert_eq!(
        store.claim_due(later, 10, StdDuration::from_secs(60)).await.unwrap().len(),
        2,
        "lease over: runs again"
    );
    store
        .retry_due(claimed[0].id, later + Duration::seconds(5), 3, Some(event(EventKind::GrantApplyRetry)))
        .await
        .unwrap();
    let item = store.due_items(id).await.unwrap().into_iter().find(|d| d.id == claimed[0].id).unwrap();
    assert_eq!((item.attempts, item.due_at), (3, later + Duration::seconds(5)));
    store.finish_due(claimed[1].id).await.unwrap();
    store.finish_due(claimed[1].id).await.unwrap();
    assert_eq!(store.due_items(id).await.unwrap().len(), 2);
    // Retrying a finished item records nothing.
    let before = store.events(0, 100).await.unwrap().len();
    store.retry_due(claimed[1].id, later, 1, Some(event(EventKind::GrantApplyRetry))).await.unwrap();
    assert_eq!(store.events(0, 100).await.unwrap().len(), before);
});

on_both_dbs!(lockdowns_are_kept_replaced_and_lifted_with_their_events, |db| async move {
    use elevate_core::ports::Lockdown;
    let store = SqlStore::connect(&db.url).await.unwrap();
    let l = |reason: &str| Lockdown {
        scope: "db".into(),
        reason: reason.into(),
        locked_by: "dave".into(),
        locked_at: t0(),
        blocks_breakglass: false,
    };
    // Each read comes after a read that SQLite's store keeps: every write must be seen at once.
    assert!(store.lockdowns().await.unwrap().is_empty());
    store.set_lockdown(l("leak"), event(EventKind::SecurityLockdown)).await.unwrap();
    assert_eq!(store.lockdowns().await.unwrap(), [l("leak")]);
    store.set_lockdown(l("leak, worse"), event(EventKind::SecurityLockdown)).await.unwrap();
    assert_eq!(store.lockdowns().await.unwrap(), [l("leak, worse")]);
    assert!(store.clear_lockdown("db", event(EventKind::SecurityUnlock)).await.unwrap());
    assert!(!store.clear_lockdown("db", event(EventKind::SecurityUnlock)).await.unwrap());
    assert!(store.lockdowns().await.unwrap().is_empty());
    assert_eq!(store.events(0, 10).await.unwrap().len(), 3, "no event for lifting what was not there");
});

on_both_dbs!(a_cron_firing_is_claimed_once_and_cursors_only_move_forward, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    assert!(store.claim_cron("reconcile", t0()).await.unwrap());
    assert!(!store.claim_cron("reconcile", t0()).await.unwrap());
    assert!(store.claim_cron("reconcile", t0() + Duration::minutes(10)).await.unwrap());
    assert_eq!(store.cursor("feed:log").await.unwrap(), 0);
    store.set_cursor("feed:log", 5).await.unwrap();
    store.set_cursor("feed:log", 3).await.unwrap();
    assert_eq!(store.cursor("feed:log").await.unwrap(), 5);
});

on_both_dbs!(concurrent_appends_keep_one_linear_chain, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let writes = (0..40).map(|_| {
        let s = store.clone();
        tokio::spawn(async move { s.append_event(event(EventKind::RequestReminder)).await.unwrap() })
    });
    let mut seqs: Vec<i64> = futures::future::join_all(writes).await.into_iter().map(|r| r.unwrap().seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    let report = verify_store(&store).await.unwrap();
    assert_eq!((report.checked, report.broken), (40, None));
});

on_both_dbs!(transitions_at_once_commit_together_each_with_its_event_and_a_failing_one_alone, |db| async move {
    // On SQLite they land in the writer thread's batches, on PostgreSQL in transactions of
    // their own: either way each keeps its own compare-and-set and its one event, and one that
    // fails in the database (the same approver twice) is undone alone.
    let store = SqlStore::connect(&db.url).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(create(&store).await);
    }
    let approve = |id: RequestId| -> elevate_core::ports::DecideFn {
        Box::new(move |_| {
            Change {
                approval: Some(PersonId::parse("bob").unwrap()),
                event: Some(NewEvent::new(t0(), Actor::System, EventKind::ApprovalAdded, Some(id), json!({}))),
                ..Change::default()
            }
            .into()
        })
    };
    let refuse = || -> elevate_core::ports::DecideFn {
        Box::new(|_| Decision::Refuse(UserError::conflict("no"), Some(event(EventKind::ApprovalRefused))))
    };
    let tasks = ids.iter().flat_map(|id| [(*id, 0), (*id, 1), (*id, 2)]).map(|(id, what)| {
        let s = store.clone();
        tokio::spawn(async move { (what, s.decide(id, if what == 2 { refuse() } else { approve(id) }).await) })
    });
    let (mut changed, mut refused, mut failed) = (0, 0, 0);
    for out in futures::future::join_all(tasks).await {
        match out.unwrap() {
            (_, Ok(Decided::Changed(r))) => {
                assert_eq!(r.approvers(), [PersonId::parse("bob").unwrap()]);
                changed += 1;
            }
            (2, Ok(Decided::Refused(_))) => refused += 1,
            (_, Err(e)) => {
                assert!(e.to_string().contains("approvals"), "{e}");
                failed += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((changed, refused, failed), (40, 40, 40), "one approval per request, the second refused by the key");
    for id in &ids {
        assert_eq!(store.get_request(*id).await.unwrap().unwrap().approvals.len(), 1);
    }
    let report = verify_store(&store).await.unwrap();
    assert_eq!((report.checked, report.broken), (40 * 3, None), "creations, approvals, refusals: one chain");
});

/// Creates a request of `role` by `who`, `minutes` after t0, and moves it to `state` (approved
/// by `approvers`, in that order, a minute apart, for the states past pending).
async fn create_as(
    store: &SqlStore,
    role: &str,
    who: &str,
    minutes: i64,
    state: State,
    approvers: &[&str],
) -> RequestId {
    let mut new = new_request(RequestKind::Normal);
    new.role = RoleName::parse(role).unwrap();
    new.requester = PersonId::parse(who).unwrap();
    new.created_at = t0() + Duration::minutes(minutes);
    let id = store.create_request(new, event(EventKind::RequestCreated), Vec::new()).await.unwrap().id;
    for (i, a) in approvers.iter().enumerate() {
        let approver = PersonId::parse(a).unwrap();
        let at = t0() + Duration::minutes(minutes + 1 + i as i64);
        let last = i + 1 == approvers.len() && state != State::Pending;
        let out = store
            .decide(
                id,
                Box::new(move |_| {
                    Change {
                        to: last.then_some(State::Approved),
                        approval: Some(approver.clone()),
                        event: Some(NewEvent::new(at, Actor::System, EventKind::ApprovalAdded, Some(id), json!({}))),
                        ..Change::default()
                    }
                    .into()
                }),
            )
            .await
            .unwrap();
        let Decided::Changed(r) = out else { panic!("{out:?}") };
        let so_far: Vec<PersonId> = approvers[..=i].iter().map(|a| PersonId::parse(a).unwrap()).collect();
        assert_eq!(r.approvers(), so_far, "decide returns every approval so far, in order");
    }
    if state == State::Active {
        let out = store
            .decide(
                id,
                Box::new(|_| {
                    Change { to: Some(State::Active), event: Some(event(EventKind::GrantApplied)), ..Change::default() }
                        .into()
                }),
            )
            .await
            .unwrap();
        assert!(matches!(out, Decided::Changed(_)), "{out:?}");
    }
    id
}

on_both_dbs!(listing_filters_by_every_field_and_brings_each_requests_approvals, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let a1 = create_as(&store, "db", "alice", 0, State::Active, &["dana", "bob"]).await;
    let a2 = create_as(&store, "web", "alice", 10, State::Approved, &["carol"]).await;
    let a3 = create_as(&store, "ssh", "alice", 20, State::Pending, &[]).await;
    let b1 = create_as(&store, "db", "bob", 30, State::Active, &["alice"]).await;
    let b2 = create_as(&store, "web", "bob", 40, State::Pending, &["dana"]).await;
    let ids = |rs: Vec<elevate_core::request::Request>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let list = |q: RequestQuery| {
        let store = store.clone();
        async move { store.list_requests(&q).await.unwrap() }
    };

    let all = list(RequestQuery::default()).await;
    assert_eq!(ids(all.clone()), [b2, b1, a3, a2, a1], "newest first");
    for r in &all {
        assert_eq!(Some(r), store.get_request(r.id).await.unwrap().as_ref(), "a listed request is as read alone");
    }
    let by_id = |id: RequestId| all.iter().find(|r| r.id == id).unwrap().clone();
    let names = |id: RequestId| by_id(id).approvers().iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(names(a1), ["dana", "bob"], "approvals in the order given, not by name");
    assert_eq!(
        (names(a2), names(a3), names(b1), names(b2)),
        (vec!["carol".to_string()], vec![], vec!["alice".into()], vec!["dana".into()])
    );
    assert_eq!(by_id(a1).approvals[1].at, t0() + Duration::minutes(2));
    let bare = list(RequestQuery { skip_approvals: true, ..RequestQuery::default() }).await;
    assert_eq!(ids(bare.clone()), [b2, b1, a3, a2, a1], "the same rows without approvals");
    for r in bare {
        assert_eq!(r, elevate_core::request::Request { approvals: Vec::new(), ..by_id(r.id) });
    }

    let alice = Some(PersonId::parse("alice").unwrap());
    let q = |states: &[State], requester: Option<PersonId>, role: Option<&str>, roles: &[&str]| RequestQuery {
        states: states.to_vec(),
        requester,
        role: role.map(|r| RoleName::parse(r).unwrap()),
        roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
        ..RequestQuery::default()
    };
    assert_eq!(ids(list(q(&[State::Active, State::Approved], None, None, &[])).await), [b1, a2, a1]);
    assert_eq!(ids(list(q(&[State::Pending], alice.clone(), None, &[])).await), [a3]);
    assert_eq!(ids(list(q(&[], alice.clone(), None, &[])).await), [a3, a2, a1]);
    assert_eq!(ids(list(q(&[], None, Some("db"), &[])).await), [b1, a1]);
    assert_eq!(ids(list(q(&[], None, None, &["db", "web"])).await), [b2, b1, a2, a1]);
    assert_eq!(ids(list(q(&[], alice.clone(), None, &["web", "ssh"])).await), [a3, a2]);
    assert_eq!(
        ids(list(q(&[State::Active, State::Approved], alice.clone(), None, &["db", "web", "ssh"])).await),
        [a2, a1]
    );
    assert!(list(q(&[], None, Some("db"), &["web"])).await.is_empty(), "role and roles must both match");
    assert!(list(q(&[State::Expired], None, None, &[])).await.is_empty());
    assert!(list(q(&[], None, None, &["nope"])).await.is_empty());
    let since = RequestQuery { created_since: Some(t0() + Duration::minutes(20)), ..RequestQuery::default() };
    assert_eq!(ids(list(since).await), [b2, b1, a3], "created_since is inclusive");
    let limited = RequestQuery { limit: Some(2), ..RequestQuery::default() };
    let limited = list(limited).await;
    assert_eq!(ids(limited.clone()), [b2, b1], "the limit counts requests, not approvals");
    assert_eq!(limited[1].approvers(), [PersonId::parse("alice").unwrap()]);
    let q = RequestQuery { states: vec![State::Active], limit: Some(1), ..RequestQuery::default() };
    assert_eq!(ids(list(q).await), [b1]);
});

on_both_dbs!(a_decision_returns_the_request_as_it_was_written, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create_as(&store, "db", "alice", 0, State::Approved, &["bob"]).await;
    store
        .schedule(vec![NewDue::new(DueKind::ExpiryWarning, id, t0()), NewDue::new(DueKind::Refresh, id, t0())])
        .await
        .unwrap();
    let granted = t0() + Duration::milliseconds(1234);
    let out = store
        .decide(
            id,
            Box::new(move |_| {
                Change {
                    to: Some(State::Active),
                    patch: Patch {
                        granted_at: Some(granted),
                        expires_at: Some(granted + Duration::hours(1)),
                        grant_handle: Some(json!({ "arn": "x", "n": [1, 2] })),
                        note: Some("applied".into()),
                        ..Patch::default()
                    },
                    event: Some(event(EventKind::GrantApplied)),
                    schedule: vec![
                        NewDue::new(DueKind::Expire, id, granted + Duration::hours(1)),
                        NewDue::new(DueKind::ExpiryWarning, id, granted + Duration::minutes(50)),
                    ],
                    cancel: vec![DueKind::ExpiryWarning, DueKind::Refresh],
                    ..Change::default()
                }
                .into()
            }),
        )
        .await
        .unwrap();
    let Decided::Changed(after) = out else { panic!("{out:?}") };
    assert_eq!((after.state, after.granted_at, after.note.as_deref()), (State::Active, Some(granted), Some("applied")));
    assert_eq!(after.approvers(), [PersonId::parse("bob").unwrap()], "approvals carried over");
    assert_eq!(Some(*after), store.get_request(id).await.unwrap(), "what decide returns is what is stored");
    let due: Vec<_> = store.due_items(id).await.unwrap().into_iter().map(|d| (d.kind, d.due_at)).collect();
    assert_eq!(
        due,
        [(DueKind::ExpiryWarning, granted + Duration::minutes(50)), (DueKind::Expire, granted + Duration::hours(1))],
        "both cancelled kinds are gone; both new items are there"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(granted + Duration::minutes(50)));
    let claimed = store.claim_due(granted + Duration::hours(2), 10, StdDuration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(granted + Duration::hours(2) + Duration::seconds(60)),
        "a lease's end"
    );
    assert_eq!(store.get_request(RequestId(9999)).await.unwrap(), None);
});

on_both_dbs!(request_states_reads_many_at_once_and_skips_the_unknown, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let pending = create_as(&store, "db", "alice", 0, State::Pending, &[]).await;
    let active = create_as(&store, "db", "bob", 1, State::Active, &["alice"]).await;
    let mut ids: Vec<RequestId> = (1..=2500).map(RequestId).collect();
    ids.reverse();
    ids.push(active);
    let states = store.request_states(&ids).await.unwrap();
    assert_eq!(states, [(pending, State::Pending), (active, State::Active)], "in id order, once each, across chunks");
    assert!(store.request_states(&[]).await.unwrap().is_empty());
});

/// Moves a request to `to` with an event, as core would.
async fn move_to(store: &SqlStore, id: RequestId, to: State) {
    let f = Box::new(move |_: &elevate_core::Request| -> Decision {
        Change { to: Some(to), event: Some(event(EventKind::GrantRevoking)), ..Change::default() }.into()
    });
    assert!(matches!(store.decide(id, f).await.unwrap(), Decided::Changed(_)));
}

on_both_dbs!(still_needed_sees_only_the_persons_other_live_grants_of_the_roles_named, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let roles = |names: &[&str]| names.iter().map(|r| RoleName::parse(r).unwrap()).collect::<Vec<_>>();
    let alice = PersonId::parse("alice").unwrap();
    let bob = PersonId::parse("bob").unwrap();
    let needed = |except: RequestId, who: &PersonId, names: &[&str]| {
        let (store, who, names) = (store.clone(), who.clone(), roles(names));
        async move { store.still_needed(except, &who, &names).await.unwrap() }
    };
    let first = create_as(&store, "db", "alice", 0, State::Active, &["bob"]).await;
    let second = create_as(&store, "db", "alice", 1, State::Active, &["bob"]).await;
    let web = create_as(&store, "web", "alice", 2, State::Approved, &["bob"]).await;
    let ssh = create_as(&store, "ssh", "alice", 3, State::Pending, &[]).await;
    let bobs = create_as(&store, "db", "bob", 4, State::Active, &["alice"]).await;
    // An approved extension of `first` holds nothing itself.
    let mut ext = new_request(RequestKind::Extension(first));
    (ext.role, ext.state) = (RoleName::parse("vpn").unwrap(), State::Approved);
    let ext = store.create_request(ext, event(EventKind::RequestCreated), Vec::new()).await.unwrap().id;

    assert!(needed(first, &alice, &["db"]).await, "the second db grant");
    assert!(needed(second, &alice, &["db"]).await, "the first db grant");
    assert!(!needed(web, &alice, &["web"]).await, "a request does not need itself");
    assert!(needed(web, &alice, &["web", "db"]).await, "an approved one counts, so does a sharing role");
    assert!(!needed(ssh, &alice, &["ssh"]).await, "a pending request gives nothing");
    assert!(!needed(bobs, &bob, &["db"]).await, "alice's grants are not bob's");
    assert!(!needed(ext, &alice, &["vpn"]).await, "an extension request gives nothing");
    assert!(!needed(first, &alice, &[]).await);

    move_to(&store, second, State::Revoking).await;
    assert!(!needed(first, &alice, &["db"]).await, "a grant being revoked no longer counts");
    move_to(&store, first, State::Revoking).await;
    assert!(!needed(second, &alice, &["db"]).await);

    // At any count: hundreds of newer live grants of another role do not hide an older one of
    // the role asked about (a list cut at 500, newest first, did).
    let old = create_as(&store, "db", "alice", 5, State::Active, &["bob"]).await;
    for i in 0..520 {
        let mut new = new_request(RequestKind::Normal);
        (new.role, new.state, new.created_at) =
            (RoleName::parse("web").unwrap(), State::Active, t0() + Duration::minutes(10 + i));
        store.create_request(new, event(EventKind::RequestCreated), Vec::new()).await.unwrap();
    }
    let newest = create_as(&store, "db", "alice", 600, State::Approved, &["bob"]).await;
    assert!(needed(newest, &alice, &["db"]).await, "the oldest live db grant ({old}) is found");
    move_to(&store, newest, State::Revoked).await;
    assert!(!needed(old, &alice, &["db"]).await);
    assert!(needed(old, &alice, &["db", "web"]).await);
});

// On SQLite, writes that arrive together are committed together (one transaction, a savepoint
// each): a write that fails half-way must still write nothing, and the others everything.
on_both_dbs!(writes_committed_together_fail_and_succeed_on_their_own, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(create(&store).await);
    }
    let writes = ids.iter().enumerate().map(|(i, id)| {
        let (s, id, other) = (store.clone(), *id, ids[i ^ 1]);
        tokio::spawn(async move {
            // Even ones deny; odd ones deny too but also move a linked request that is not in the
            // state named, so the store has already updated the row and appended the event when
            // it finds the conflict and rolls the decision back.
            let linked = (i % 2 == 1).then(|| Linked {
                id: other,
                from: State::Approved,
                to: State::Extended,
                event: event(EventKind::GrantExtended),
            });
            let f = Box::new(move |_: &elevate_core::Request| -> Decision {
                Change {
                    to: Some(State::Denied),
                    event: Some(event(EventKind::RequestDenied)),
                    linked: linked.clone(),
                    ..Change::default()
                }
                .into()
            });
            s.decide(id, f).await
        })
    });
    let results = futures::future::join_all(writes).await;
    for (i, (r, id)) in results.into_iter().zip(&ids).enumerate() {
        let r = r.unwrap().unwrap();
        let state = store.get_request(*id).await.unwrap().unwrap().state;
        if i % 2 == 0 {
            assert!(matches!(r, Decided::Changed(_)), "write {i}: {r:?}");
            assert_eq!(state, State::Denied);
        } else {
            assert_eq!(r, Decided::LinkedConflict, "write {i}");
            assert_eq!(state, State::Pending, "a write rolled back half-way changes nothing");
        }
    }
    let report = verify_store(&store).await.unwrap();
    assert_eq!((report.checked, report.broken), (30, None), "20 creations and 10 denials, one chain");
});

/// A decision that panics (a bug in core) on SQLite's writer thread is rolled back and answered
/// with an error; the writer keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_on_sqlite_is_rolled_back_and_the_writer_carries_on() {
    let db = elevate_tests::TestDb::sqlite();
    let store = SqlStore::connect(&db.url).await.unwrap();
    let id = create(&store).await;
    let boom = store.decide(id, Box::new(|_| panic!("bug in a decision"))).await;
    assert!(boom.is_err());
    let f = Box::new(|_: &elevate_core::Request| -> Decision {
        Change { to: Some(State::Denied), event: Some(event(EventKind::RequestDenied)), ..Change::default() }.into()
    });
    assert!(matches!(store.decide(id, f).await, Ok(Decided::Changed(_))));
    assert_eq!(store.get_request(id).await.unwrap().unwrap().state, State::Denied);
    assert_eq!(verify_store(&store).await.unwrap().broken, None);
}

on_both_dbs!(listing_by_ids_brings_exactly_those_requests, |db| async move {
    let store = SqlStore::connect(&db.url).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&store).await);
    }
    let wanted = vec![ids[4], ids[1], RequestId(9_999)];
    let q = RequestQuery { ids: wanted, ..RequestQuery::default() };
    let got: Vec<RequestId> = store.list_requests(&q).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(got, vec![ids[4], ids[1]], "newest first; unknown ids are skipped");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_url_with_options_reads_and_writes_one_file_and_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join("elevate.db");
    let store = SqlStore::connect(&format!("sqlite://{}?mode=rwc", file.display())).await.unwrap();
    let id = create(&store).await;
    assert_eq!(store.get_request(id).await.unwrap().map(|r| r.id), Some(id), "the readers see the writer's file");
    assert!(file.exists(), "the file is the one named, without its options");
    assert!(!dir.path().join("sub").join("elevate.db?mode=rwc").exists());
    for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://?mode=memory"] {
        let e = SqlStore::connect(url).await.err().unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(e.to_string().contains("needs a SQLite file"), "{url}: {e}");
    }
}
