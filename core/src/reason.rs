//! The free text a requester gives. It ends up in chat cards, DMs, the audit feed and the audit
//! log, so it is checked once here.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A reason or justification: trimmed, non-empty, at most [`Reason::MAX_CHARS`] characters and
/// free of characters that display differently from what they are ([`crate::visible`]). Escaping
/// for a particular chat platform is the adapter's job, at render time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    pub const MAX_CHARS: usize = 1000;

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a reason is required: say what you need the access for".into());
        }
        let n = s.chars().count();
        if n > Self::MAX_CHARS {
            return Err(format!("the reason is {n} characters long; keep it to {} or fewer", Self::MAX_CHARS));
        }
        crate::visible::check(s, "the reason")?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Reason {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_length_emptiness_and_control_characters() {
        assert!(Reason::parse("INC-1 fix lag").is_ok());
        assert!(Reason::parse("   ").is_err());
        assert!(Reason::parse(&"x".repeat(1000)).is_ok());
        assert!(Reason::parse(&"x".repeat(1001)).is_err());
        assert!(Reason::parse("line\nbreak").is_err());
        assert!(Reason::parse("bell\u{7}").is_err());
        assert_eq!(Reason::parse("  padded ").unwrap().as_str(), "padded");
    }
}
