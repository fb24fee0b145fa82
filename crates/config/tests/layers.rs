//! Layered loading: defaults, then the file, then the environment, then flags.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::env;
use holdfast_config::{ConfigError, LoadOptions, Origin, Overrides, load};

const FILE: &str = "[server]\nlisten = \"127.0.0.1:1111\"\n\n[store]\nurl = \"sqlite://file.db\"\n";

/// Writes `text` to a fresh file and returns its path.
#[allow(clippy::unwrap_used)] // a helper of tests, which panic on failure
fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("holdfast-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("holdfast.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn options<'a>(
    path: Option<PathBuf>,
    env: &'a dyn Fn(&str) -> Option<String>,
    overrides: Overrides,
) -> LoadOptions<'a> {
    LoadOptions {
        path,
        env,
        overrides,
        allow_missing_secrets: false,
    }
}

#[test]
fn file_beats_defaults_env_beats_file_flags_beat_env() {
    let path = file("order", FILE);
    let none = env(&[]);
    let config = load(options(Some(path.clone()), &none, Overrides::default())).unwrap();
    assert_eq!(config.server.listen.port(), 1111);
    assert_eq!(config.store.url, "sqlite://file.db");

    let vars = env(&[
        ("HOLDFAST_LISTEN", "127.0.0.1:2222"),
        ("HOLDFAST_STORE_URL", "postgres://db/h"),
    ]);
    let config = load(options(Some(path.clone()), &vars, Overrides::default())).unwrap();
    assert_eq!(config.server.listen.port(), 2222);
    assert_eq!(config.store.url, "postgres://db/h");

    let flags = Overrides {
        listen: Some("127.0.0.1:3333".into()),
        store_url: Some("sqlite://flag.db".into()),
    };
    let config = load(options(Some(path), &vars, flags)).unwrap();
    assert_eq!(config.server.listen.port(), 3333);
    assert_eq!(config.store.url, "sqlite://flag.db");
}

#[test]
fn without_a_file_the_defaults_apply_under_env_and_flags() {
    let vars = env(&[("HOLDFAST_STORE_URL", "postgres://db/h")]);
    let flags = Overrides {
        listen: Some("0.0.0.0:4444".into()),
        store_url: None,
    };
    let config = load(options(None, &vars, flags)).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:4444");
    assert_eq!(config.store.url, "postgres://db/h");
    assert_eq!(config.source.name, "<defaults>");
}

#[test]
fn holdfast_config_names_the_file_when_no_path_is_given() {
    let path = file("env-path", FILE);
    let vars = env(&[("HOLDFAST_CONFIG", path.to_str().unwrap())]);
    let config = load(options(None, &vars, Overrides::default())).unwrap();
    assert_eq!(config.server.listen.port(), 1111);
}

#[test]
fn empty_variables_count_as_unset() {
    let path = file("empty-var", FILE);
    let vars = env(&[("HOLDFAST_LISTEN", "")]);
    let config = load(options(Some(path), &vars, Overrides::default())).unwrap();
    assert_eq!(config.server.listen.port(), 1111);
}

#[test]
fn bad_overrides_name_their_origin() {
    let vars = env(&[("HOLDFAST_LISTEN", "nowhere")]);
    let flags = Overrides {
        listen: None,
        store_url: Some("::".into()),
    };
    let errors = load(options(None, &vars, flags)).unwrap_err().into_vec();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        matches!(&errors[0], ConfigError::Override { origin: Origin::Env(v), field, .. }
        if v == "HOLDFAST_LISTEN" && field == "server.listen")
    );
    assert!(
        errors[1]
            .to_string()
            .starts_with("flag --store-url: store.url: \"::\" is not a URL"),
        "{}",
        errors[1]
    );
}

#[test]
fn an_unreadable_file_names_its_path() {
    let missing = std::env::temp_dir().join("holdfast-config-no-such-dir/holdfast.toml");
    let none = env(&[]);
    let errors = load(options(Some(missing), &none, Overrides::default())).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.contains("holdfast-config-no-such-dir/holdfast.toml: cannot read"),
        "{shown}"
    );
}

#[test]
fn allow_missing_secrets_lists_them_instead_of_failing() {
    let path = file(
        "missing",
        "[[client_keys]]\nname = \"a\"\nkey_env = \"NOT_SET_ANYWHERE\"\n",
    );
    let none = env(&[]);
    let strict = load(options(Some(path.clone()), &none, Overrides::default())).unwrap_err();
    assert!(
        matches!(&strict.errors()[0], ConfigError::MissingSecret { var, .. } if var == "NOT_SET_ANYWHERE")
    );
    let lenient = LoadOptions {
        allow_missing_secrets: true,
        ..options(Some(path), &none, Overrides::default())
    };
    let config = load(lenient).unwrap();
    assert_eq!(config.missing_secrets, ["NOT_SET_ANYWHERE"]);
    assert!(config.client_keys[0].key.is_none());
    assert!(
        config
            .summary()
            .to_string()
            .ends_with("(not set: NOT_SET_ANYWHERE)")
    );
}
