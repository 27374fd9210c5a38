//! Property tests of the configuration reader: any text, and the example configurations with
//! bytes changed, is either a configuration or a list of errors that each name where the
//! problem is; nothing panics.

use elevate_bot::config::Config;
use proptest::prelude::*;

const EXAMPLES: &[&str] = &[
    include_str!("../../examples/quickstart.toml"),
    include_str!("../../examples/aws.toml"),
    include_str!("../../examples/gcp.toml"),
    include_str!("../../examples/postgres-roles.toml"),
];

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(errs) = Config::parse(text) {
        prop_assert!(!errs.is_empty());
        for e in errs {
            prop_assert!(!e.message.trim().is_empty(), "an error without a message at {}", e.path);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_config_or_named_errors(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn an_example_with_a_line_changed_is_a_config_or_named_errors(
        which in 0..EXAMPLES.len(), line in any::<prop::sample::Index>(), with in "[ -~]{0,40}"
    ) {
        let lines: Vec<&str> = EXAMPLES[which].lines().collect();
        let at = line.index(lines.len());
        let changed: Vec<&str> = lines.iter().enumerate().map(|(i, l)| if i == at { with.as_str() } else { l }).collect();
        check(&changed.join("\n"))?;
    }
}
