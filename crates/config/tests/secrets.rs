//! Secrets never appear in `Debug` output or in error messages (invariant 7).

mod common;

use common::{SECRETS, errors, example, load};

fn assert_no_secret(text: &str) {
    for (_, value) in SECRETS {
        assert!(!text.contains(value), "a secret leaked into:\n{text}");
    }
}

#[test]
fn debug_of_the_whole_config_shows_no_secret() {
    let config = load(&example(), SECRETS).unwrap();
    let shown = format!("{config:?}\n{config:#?}");
    assert_no_secret(&shown);
    assert!(shown.contains("**REDACTED**"));
    for target in config.targets.values() {
        assert_no_secret(&format!("{:?}", target.endpoint()));
    }
    for key in &config.client_keys {
        assert_no_secret(&format!("{key:?} {}", key.key.as_ref().unwrap()));
    }
}

#[test]
fn errors_never_show_a_secret_value() {
    // Two client keys holding the same value, and unrelated errors around them.
    let text = example()
        .replace(
            "key_env = \"HOLDFAST_BATCH_KEY\"",
            "key_env = \"HOLDFAST_CLIENT_KEY\"",
        )
        .replace("context_window = 200000", "context_window = 0")
        .replace("name = \"batch\"", "name = \"agents\"");
    let all = errors(&text, SECRETS);
    assert!(all.len() >= 3, "{all:#?}");
    let shown: Vec<String> = all.iter().map(|e| format!("{e}\n{e:?}")).collect();
    assert_no_secret(&shown.join("\n"));
    assert!(
        shown
            .iter()
            .any(|s| s.contains("holds the same key as client_keys[0]")),
        "{shown:#?}"
    );
}

#[test]
fn a_missing_secret_names_the_variable_only() {
    let present: Vec<_> = SECRETS
        .iter()
        .copied()
        .filter(|(k, _)| *k != "ANTHROPIC_API_KEY")
        .collect();
    let all = errors(&example(), &present);
    assert_eq!(all.len(), 1, "{all:#?}");
    let shown = all[0].to_string();
    assert!(
        shown.contains(
            "providers.anthropic.key_env: environment variable ANTHROPIC_API_KEY is not set"
        ),
        "{shown}"
    );
    assert_no_secret(&format!("{shown} {:?}", all[0]));
}
