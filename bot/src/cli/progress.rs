//! Live progress of a long CLI walk (`audit verify`, `audit export`) on stderr, so that stdout
//! stays machine-readable: on a terminal one line rewritten in place a few times a second, and
//! cleared at the end; otherwise (a log, a CI job) a line every ten seconds. A walk that ends
//! before the first update prints nothing.

use std::{
    io::{IsTerminal, Write},
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Progress {
    what: &'static str,
    tty: bool,
    every: Duration,
    started: Instant,
    /// When a line was last printed (`None`: never).
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(what: &'static str) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let every = if tty { Duration::from_millis(250) } else { Duration::from_secs(10) };
        Progress { what, tty, every, started: Instant::now(), last: Mutex::new(None) }
    }

    /// `done` events so far; prints if it is time to.
    pub fn update(&self, done: u64) {
        let Some(line) = self.due_line(done, Instant::now()) else { return };
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { write!(err, "\r\x1b[K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }

    /// The line to print at `now`, if one is due (the first after `every`, then one per `every`).
    fn due_line(&self, done: u64, now: Instant) -> Option<String> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(last.unwrap_or(self.started)) < self.every {
            return None;
        }
        *last = Some(now);
        let secs = now.saturating_duration_since(self.started).as_secs_f64().max(0.001);
        Some(format!("{}: {done} events, {:.0}/s, {:.0} s", self.what, done as f64 / secs, secs))
    }

    /// Clears the terminal line, so that what follows starts clean.
    pub fn finish(&self) {
        if self.tty && self.last.lock().map(|l| l.is_some()).unwrap_or(false) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_due_once_per_interval_and_never_for_a_short_walk() {
        let p = Progress { tty: false, every: Duration::from_secs(10), ..Progress::new("audit verify") };
        let t0 = p.started;
        assert_eq!(p.due_line(1_000, t0 + Duration::from_secs(9)), None, "a walk shorter than 10 s says nothing");
        assert_eq!(
            p.due_line(50_000, t0 + Duration::from_secs(10)).as_deref(),
            Some("audit verify: 50000 events, 5000/s, 10 s")
        );
        assert_eq!(p.due_line(60_000, t0 + Duration::from_secs(15)), None);
        assert!(p.due_line(90_000, t0 + Duration::from_secs(20)).is_some());
    }
}
