//! Text that displays as what it is. Free text people type (reasons, notes, tickets) reaches
//! approvers' cards, the audit feed and the audit log; a character that changes how the text is
//! shown without being seen (a right-to-left override, a zero-width space) could make a reason
//! or a ticket read differently from what was stored, so such text is refused with the class of
//! the character named, never silently cleaned.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a character is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// C0/C1 controls: newlines and tabs forge lines in logs and the feed.
    Control,
    /// U+202A–U+202E, U+2066–U+2069 (and the marks U+200E, U+200F, U+061C): reorder what is
    /// displayed.
    Bidi,
    /// The rest of Unicode category Cf (format): zero-width spaces and joiners, word joiner,
    /// byte-order mark, invisible operators, tags.
    Invisible,
}

impl Hidden {
    pub fn of(c: char) -> Option<Hidden> {
        if c.is_control() {
            return Some(Hidden::Control);
        }
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}') {
            return Some(Hidden::Bidi);
        }
        (c.general_category() == GeneralCategory::Format).then_some(Hidden::Invisible)
    }

    fn describe(self) -> &'static str {
        match self {
            Hidden::Control => "a control character (such as a newline or tab)",
            Hidden::Bidi => "a bidirectional control character, which reorders how text is displayed",
            Hidden::Invisible => "an invisible formatting character (such as a zero-width space)",
        }
    }
}

/// Refuses text with a character that displays differently from what it is; `what` names the
/// text ("the reason").
pub fn check(s: &str, what: &str) -> Result<(), String> {
    match s.chars().find_map(|c| Hidden::of(c).map(|h| (c, h))) {
        None => Ok(()),
        Some((c, h)) => {
            Err(format!("{what} contains {} (U+{:04X}); type it as plain text on one line", h.describe(), c as u32))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_refused_and_named() {
        let cases = [
            ("fix\nlag", Hidden::Control, "U+000A"),
            ("fix\u{7}", Hidden::Control, "U+0007"),
            ("\u{85}x", Hidden::Control, "U+0085"),
            ("INC-1 \u{202E}gal xif", Hidden::Bidi, "U+202E"),
            ("a\u{2066}b", Hidden::Bidi, "U+2066"),
            ("a\u{2069}b", Hidden::Bidi, "U+2069"),
            ("a\u{200F}b", Hidden::Bidi, "U+200F"),
            ("INC\u{200B}-1", Hidden::Invisible, "U+200B"),
            ("a\u{200D}b", Hidden::Invisible, "U+200D"),
            ("a\u{2060}b", Hidden::Invisible, "U+2060"),
            ("\u{FEFF}a", Hidden::Invisible, "U+FEFF"),
            ("a\u{00AD}b", Hidden::Invisible, "U+00AD"),
            ("a\u{E0041}b", Hidden::Invisible, "U+E0041"),
            ("a\u{2062}b", Hidden::Invisible, "U+2062"),
        ];
        for (text, class, code) in cases {
            let c = text.chars().find(|c| Hidden::of(*c).is_some()).unwrap();
            assert_eq!(Hidden::of(c), Some(class), "{text:?}");
            let e = check(text, "the reason").unwrap_err();
            assert!(e.contains(code) && e.starts_with("the reason contains"), "{e}");
        }
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for ok in
            ["fix replication lag", "INC-4211 ünïcödé", "修复复制延迟", "إصلاح التأخير", "emoji 🔥 ok", "a—b “quoted”"]
        {
            assert_eq!(check(ok, "the reason"), Ok(()), "{ok}");
        }
    }
}
