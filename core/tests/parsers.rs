//! Property tests of core's parsers of outside input: whatever a person types (a duration, a
//! command, a reason, a request number, a command's options), parsing never panics, a refusal
//! always says what is wrong, and what is accepted is what the rules allow.

use elevate_core::{
    GrantDuration, Reason,
    chat::{Command, parse_id},
};
use proptest::prelude::*;

/// Text with the characters that matter to these parsers well represented: digits, units,
/// signs, spaces, separators, controls and invisible or bidirectional marks, and anything else.
fn typed() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        "[0-9]{1,9}",
        "[smhdSMHD]",
        "[ .,:;+#-]",
        Just("\u{202E}".to_string()),
        Just("\u{200B}".to_string()),
        Just("\u{FEFF}".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        "[a-z]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_duration_parses_to_a_positive_length_that_reads_back_the_same(s in typed()) {
        match GrantDuration::parse(&s) {
            Ok(d) => {
                prop_assert!(d.as_chrono().num_seconds() > 0);
                prop_assert_eq!(GrantDuration::parse(&d.to_string()), Ok(d));
            }
            Err(e) => prop_assert!(!e.trim().is_empty()),
        }
    }

    #[test]
    fn command_text_parses_or_is_refused_with_a_message(s in typed()) {
        if let Err(e) = Command::parse(&s) {
            prop_assert!(!e.message.trim().is_empty());
            prop_assert!(e.message.chars().count() < 2_000, "a refusal stays readable");
        }
    }

    #[test]
    fn a_word_that_starts_like_a_number_is_a_valid_duration_or_refused(
        role in "[a-z][a-z-]{0,10}", word in "[-+]?[0-9][0-9a-z.]{0,5}", reason in "[A-Za-z][A-Za-z0-9 -]{0,30}"
    ) {
        prop_assume!(!elevate_core::chat::USAGES.iter().any(|u| u.name == role) && role != "help");
        // Never silently the first word of the reason with the role's default duration.
        match Command::parse(&format!("{role} {word} {reason}")) {
            Ok(Command::Request { duration, .. }) => {
                prop_assert_eq!(duration.as_deref(), Some(word.as_str()));
                prop_assert!(GrantDuration::parse(&word).is_ok());
            }
            Ok(other) => prop_assert!(false, "not a request: {other:?}"),
            Err(e) => {
                prop_assert!(GrantDuration::parse(&word).is_err(), "{word} is a duration: {}", e.message);
                prop_assert_eq!(e.field, Some(elevate_core::Field::Duration));
            }
        }
    }

    #[test]
    fn an_accepted_reason_shows_exactly_what_it_is(s in typed()) {
        if let Ok(r) = Reason::parse(&s) {
            prop_assert!(!r.as_str().chars().any(|c| c.is_control()));
            for hidden in ['\u{202E}', '\u{200B}', '\u{FEFF}'] {
                prop_assert!(!r.as_str().contains(hidden));
            }
        }
    }

    #[test]
    fn a_request_number_is_a_positive_integer_or_refused(s in typed()) {
        match parse_id(&s) {
            Ok(id) => prop_assert!(id.0 > 0),
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }

    #[test]
    fn options_from_a_form_or_discord_never_panic(name in "[a-z]{0,12}", v in typed()) {
        let _ = Command::from_options(&name, &|_| Some(v.clone()));
        let _ = Command::from_options(&name, &|_| None);
    }
}
