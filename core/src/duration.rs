//! Durations as people type them: `2h`, `90m`, `1h30m`, `1d`, `45s`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A positive length of time, whole seconds. Parsing is strict (no bare numbers, no negative or
/// zero values) because a typo here decides how long someone holds production access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GrantDuration {
    secs: i64,
}

/// Longest duration anyone can type: a year. Roles set their own, much shorter, maximum.
const MAX_SECS: i64 = 366 * 86_400;

impl GrantDuration {
    pub fn from_secs(secs: i64) -> Result<Self, String> {
        if secs <= 0 {
            return Err("a duration must be longer than zero".into());
        }
        if secs > MAX_SECS {
            return Err("a duration cannot be longer than 366 days".into());
        }
        Ok(Self { secs })
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let bad = || {
            format!(
                "`{}` is not a duration: use a number with a unit, like 30m, 2h, 1h30m or 1d",
                s.chars().take(40).collect::<String>()
            )
        };
        if s.is_empty() {
            return Err("a duration is required (like 30m, 2h, 1h30m or 1d)".into());
        }
        let mut total: i64 = 0;
        let mut digits = String::new();
        let mut saw_unit = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c.to_ascii_lowercase() {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            if digits.is_empty() || digits.len() > 7 {
                return Err(bad());
            }
            let n: i64 = digits.parse().map_err(|_| bad())?;
            total = total.checked_add(n * unit).ok_or_else(bad)?;
            digits.clear();
            saw_unit = true;
        }
        if !digits.is_empty() || !saw_unit {
            return Err(bad());
        }
        Self::from_secs(total)
    }

    pub fn secs(self) -> i64 {
        self.secs
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.secs)
    }
}

impl fmt::Display for GrantDuration {
    /// The shortest exact form: `1h30m`, `2d`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.secs;
        for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= len {
                write!(f, "{}{}", rest / len, unit)?;
                rest %= len;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for GrantDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<GrantDuration> for String {
    fn from(d: GrantDuration) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(GrantDuration::parse("2h").unwrap().secs(), 7200);
        assert_eq!(GrantDuration::parse("90m").unwrap().secs(), 5400);
        assert_eq!(GrantDuration::parse("1h30m").unwrap().secs(), 5400);
        assert_eq!(GrantDuration::parse("1d").unwrap().secs(), 86400);
        assert_eq!(GrantDuration::parse("45s").unwrap().secs(), 45);
        assert_eq!(GrantDuration::parse("2H").unwrap().secs(), 7200);
    }

    #[test]
    fn refuses_what_is_not_a_positive_duration() {
        for bad in ["", "0h", "0m0s", "2", "h", "-1h", "1.5h", "2x", "1h30", "99999999h", "400d"] {
            assert!(GrantDuration::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn displays_the_shortest_exact_form() {
        assert_eq!(GrantDuration::parse("90m").unwrap().to_string(), "1h30m");
        assert_eq!(GrantDuration::parse("48h").unwrap().to_string(), "2d");
    }
}
