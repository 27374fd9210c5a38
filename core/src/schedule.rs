//! Scheduled access: a request that starts later (`… at 2026-12-05 22:00 Europe/Berlin`, or
//! `… in 3h`). It is approved ahead, holds nothing while `scheduled`, and is checked again and
//! applied when its start comes (a `start` due item: timing from the database, never a timer in
//! memory). Its window is counted from the start.
//!
//! Where the start goes, everywhere the same: at the end of the typed command (after the
//! reason), as Discord's `at` or `in` option, as the request form's "Start" field, as the
//! API's `starts_at` or `starts_in`, and as the CLI's `--at` or `--in`.

use crate::{GrantDuration, UserError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// When a request should start, as given; resolved against the clock by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartSpec {
    /// `YYYY-MM-DD HH:MM` with an optional IANA zone (default UTC), or RFC 3339.
    At(String),
    /// A duration from now: `3h`.
    In(String),
}

impl StartSpec {
    /// The moment it names, `now` being the time of the request. Not checked against limits.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, UserError> {
        match self {
            StartSpec::At(s) => parse_at(s),
            StartSpec::In(s) => {
                let d = GrantDuration::parse(s.trim()).map_err(|e| start_error(format!("`in {s}`: {e}")))?;
                Ok(now + d.as_chrono())
            }
        }
    }
}

fn start_error(msg: String) -> UserError {
    UserError::invalid(msg).on(crate::Field::Start)
}

const AT_FORMAT: &str = "YYYY-MM-DD HH:MM with an optional IANA time zone (e.g. 2026-12-05 22:00 Europe/Berlin)";

/// Parses `2026-12-05 22:00`, `2026-12-05 22:00 Europe/Berlin` or RFC 3339
/// (`2026-12-05T21:00:00Z`). A local time that does not exist (skipped by a clock change) or
/// exists twice (repeated) is refused rather than guessed.
pub fn parse_at(s: &str) -> Result<DateTime<Utc>, UserError> {
    let s = s.trim();
    let shown: String = s.chars().take(80).collect();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    let (date, time, zone) = match words.as_slice() {
        [d, t] => (*d, *t, None),
        [d, t, z] => (*d, *t, Some(*z)),
        _ => return Err(start_error(format!("`{shown}` is not a start time: use {AT_FORMAT}."))),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| start_error(format!("`{shown}`: `{date}` is not a date (YYYY-MM-DD).")))?;
    let time = NaiveTime::parse_from_str(time, "%H:%M")
        .map_err(|_| start_error(format!("`{shown}`: `{time}` is not a time of day (HH:MM, 24 hours).")))?;
    let local = NaiveDateTime::new(date, time);
    let Some(zone) = zone else { return Ok(Utc.from_utc_datetime(&local)) };
    let tz: Tz = zone.parse().map_err(|_| {
        start_error(format!("`{zone}` is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)."))
    })?;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(..) => Err(start_error(format!(
            "`{shown}` happens twice in {zone} (the clocks go back): give the time in UTC instead."
        ))),
        chrono::LocalResult::None => {
            Err(start_error(format!("`{shown}` does not exist in {zone} (the clocks go forward): pick another time.")))
        }
    }
}

/// Splits a start off the end of typed words: `… at 2026-12-05 22:00 [Zone]` or `… in 3h`.
/// Only words shaped like a start are taken (a date after `at`, a number after `in`), so a
/// reason that merely ends in "at the logs" or "in prod" stays a reason; words shaped like a
/// start that are not a valid one are refused, never silently kept in the reason.
pub fn split_start<'a>(words: &'a [&'a str]) -> Result<(&'a [&'a str], Option<StartSpec>), UserError> {
    let n = words.len();
    let looks_like_date =
        |w: &str| w.len() == 10 && w.as_bytes()[4] == b'-' && w[..4].bytes().all(|b| b.is_ascii_digit());
    for k in [4usize, 3] {
        if n > k && words[n - k] == "at" && looks_like_date(words[n - k + 1]) {
            let at = words[n - k + 1..].join(" ");
            parse_at(&at)?;
            return Ok((&words[..n - k], Some(StartSpec::At(at))));
        }
    }
    if n >= 2 && words[n - 2] == "in" && words[n - 1].starts_with(|c: char| c.is_ascii_digit()) {
        let d = words[n - 1];
        GrantDuration::parse(d).map_err(|e| start_error(format!("`in {d}`: {e}")))?;
        return Ok((&words[..n - 2], Some(StartSpec::In(d.to_string()))));
    }
    Ok((words, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_are_read_in_their_zone() {
        let berlin = parse_at("2026-12-05 22:00 Europe/Berlin").unwrap();
        assert_eq!(berlin.to_rfc3339(), "2026-12-05T21:00:00+00:00");
        assert_eq!(parse_at("2026-12-05 22:00").unwrap().to_rfc3339(), "2026-12-05T22:00:00+00:00");
        assert_eq!(parse_at("2026-12-05T21:00:00Z").unwrap(), berlin);
        for bad in ["2026-13-05 22:00", "2026-12-05 25:00", "2026-12-05 22:00 Mars/Base", "tomorrow"] {
            let e = parse_at(bad).unwrap_err();
            assert_eq!(e.field, Some(crate::Field::Start), "{bad}");
        }
        assert!(parse_at("2026-03-29 02:30 Europe/Berlin").unwrap_err().message.contains("does not exist"));
        assert!(parse_at("2026-10-25 02:30 Europe/Berlin").unwrap_err().message.contains("twice"));
    }

    #[test]
    fn a_start_is_only_taken_from_words_shaped_like_one() {
        let split = |s: &'static str| {
            let words: Vec<&str> = s.split_whitespace().collect();
            split_start(&words).map(|(rest, start)| (rest.join(" "), start))
        };
        assert_eq!(
            split("INC-1 fix at 2026-12-05 22:00 Europe/Berlin").unwrap(),
            ("INC-1 fix".into(), Some(StartSpec::At("2026-12-05 22:00 Europe/Berlin".into())))
        );
        assert_eq!(split("INC-1 fix in 3h").unwrap(), ("INC-1 fix".into(), Some(StartSpec::In("3h".into()))));
        assert_eq!(split("look at the logs").unwrap(), ("look at the logs".into(), None));
        assert_eq!(split("fix it in prod").unwrap(), ("fix it in prod".into(), None));
        assert!(split("fix at 2026-12-05 9pm").is_err(), "a date after `at` must be a start");
        assert!(split("fix in 3x").is_err());
    }
}
