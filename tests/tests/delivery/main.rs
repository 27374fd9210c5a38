//! Chat delivery end to end: what a failing, rate-limited or absent chat platform does to the
//! notices people wait for. Each destination (a card, a person's DMs, a channel) goes on its
//! own; the audit feed posts every event once, in order, however long the platform is away.
//! Time is the harness's virtual clock: the delivery loops' backoff, the posting rates and the
//! fakes' rate limits all read it, so an outage of minutes takes no real time.
//!
//! `slack`: deleted cards, channels the bot is not in, an outage, a burst. `discord`: the same
//! stories where Discord differs (error codes, nonces).

mod discord;
mod slack;

use chrono::Duration;
use elevate_bot::feed::Mode;
use elevate_core::{Clock, RequestId, render};
use elevate_tests::TestApp;

/// Delivery steps on the virtual clock until nothing waits, moving the clock to each next
/// retry or posting slot; returns how much virtual time it took.
async fn deliver_paced(app: &TestApp, max_steps: usize) -> Duration {
    let start = app.clock.now();
    for _ in 0..max_steps {
        let p = app.app.deliver_step(Mode::Paced).await;
        if p.waiting == 0 {
            app.settle().await;
            return app.clock.now() - start;
        }
        let now = app.clock.now();
        let next = p.wake.filter(|w| *w > now).unwrap_or(now + Duration::milliseconds(100));
        app.clock.set(next + Duration::milliseconds(1));
    }
    panic!("delivery still waiting after {max_steps} steps");
}

/// One paced step at the current virtual time (nothing waits out a backoff).
async fn step_now(app: &TestApp) {
    app.app.deliver_step(Mode::Paced).await;
    app.settle().await;
}

/// Every audit event's feed line, in order, as the feed channel must show them.
async fn expected_feed(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for ev in app.events().await {
        let req = match ev.subject {
            Some(id) => app.store().get_request(RequestId(id)).await.unwrap(),
            None => None,
        };
        out.push(render::feed_line(&ev, req.as_ref()));
    }
    out
}

/// The metrics page as `/metrics` renders this process's series.
fn metrics(app: &TestApp) -> String {
    let mut out = String::new();
    app.app.metrics.render(&mut out);
    out
}
