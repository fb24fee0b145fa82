//! Broken configurations: each produces an error naming the right line, column and
//! field, and validation reports every semantic error at once.

mod common;

use common::errors;
use holdfast_config::ConfigError;

/// A valid base for the cases: one provider (no key), two targets, one route.
const BASE: &str = r#"[providers.openai]
format = "openai"
base_url = "http://127.0.0.1:9000/v1"

[targets."gpt-4o"]
provider = "openai"
model = "gpt-4o"
context_window = 128000

[targets.claude]
provider = "openai"
model = "claude"
context_window = 200000

[routes.smart]
targets = ["gpt-4o", "claude"]
"#;

/// `BASE` with `extra` appended.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// Asserts exactly one error, at `line`, about `field`, saying `fragment`.
#[track_caller]
fn one(text: &str, line: usize, field: &str, fragment: &str) -> ConfigError {
    let mut all = errors(text, &[]);
    assert_eq!(all.len(), 1, "{all:#?}");
    let error = all.remove(0);
    let shown = error.to_string();
    assert_eq!(error.field(), Some(field), "{shown}");
    assert_eq!(error.line_column().map(|(l, _)| l), Some(line), "{shown}");
    assert!(
        shown.contains(fragment),
        "{shown:?} does not say {fragment:?}"
    );
    assert!(
        shown.starts_with(&format!("holdfast.toml:{line}:")),
        "{shown}"
    );
    error
}

#[test]
fn base_is_valid() {
    common::load(BASE, &[]).unwrap();
}

#[test]
fn unknown_field() {
    one(
        &with("[server]\nlisten = \"127.0.0.1:1\"\nbodylimit = 5\n"),
        19,
        "server.bodylimit",
        "unknown field `bodylimit`",
    );
}

#[test]
fn wrong_type() {
    let text = BASE.replace("context_window = 128000", "context_window = \"big\"");
    one(
        &text,
        8,
        "targets.gpt-4o.context_window",
        "invalid type: string \"big\"",
    );
}

#[test]
fn bad_duration() {
    let e = one(
        &with("[policies.default]\nretry = { base = \"-5s\" }\n"),
        18,
        "policies.default.retry.base",
        "-5s",
    );
    assert_eq!(e.line_column(), Some((18, 18)));
}

#[test]
fn cap_below_base() {
    let text = with("[policies.default]\nretry = { base = \"2s\", cap = \"1s\" }\n");
    let e = one(&text, 18, "policies.default.retry.cap", "below retry.base");
    assert_eq!(e.line_column(), Some((18, 30)));
}

#[test]
fn budget_ratio_out_of_range() {
    one(
        &with("[policies.default]\nbudget = { ratio = 1.5 }\n"),
        18,
        "policies.default.budget.ratio",
        "1.5 is outside 0..=1",
    );
}

#[test]
fn outbox_max_out_of_range() {
    one(
        &with("[store]\noutbox = true\noutbox_max = \"100B\"\n"),
        19,
        "store.outbox_max",
        "\"1KiB\" to \"1TiB\"",
    );
}

#[test]
fn unknown_target_in_route() {
    let text = BASE.replace(r#"["gpt-4o", "claude"]"#, r#"["gpt-4o", "gpt-5"]"#);
    let e = one(&text, 16, "routes.smart.targets[1]", "unknown target");
    assert_eq!(
        e.to_string(),
        r#"holdfast.toml:16:22: routes.smart.targets[1]: unknown target "gpt-5" (known: claude, gpt-4o)"#
    );
}

#[test]
fn unknown_provider() {
    let text = BASE.replace(
        "provider = \"openai\"\nmodel = \"claude\"",
        "provider = \"anthropic\"\nmodel = \"claude\"",
    );
    one(
        &text,
        11,
        "targets.claude.provider",
        r#"unknown provider "anthropic" (known: openai)"#,
    );
}

#[test]
fn unknown_policy() {
    one(
        &with("policy = \"fast\"\n"),
        17,
        "routes.smart.policy",
        r#"unknown policy "fast" (known: default)"#,
    );
}

#[test]
fn empty_targets_list() {
    let text = BASE.replace(r#"["gpt-4o", "claude"]"#, "[]");
    one(&text, 16, "routes.smart.targets", "at least one target");
}

#[test]
fn bad_url() {
    let text = BASE.replace("http://127.0.0.1:9000/v1", "api.openai.com/v1");
    one(&text, 3, "providers.openai.base_url", "is not a URL");
    let ftp = BASE.replace("http://127.0.0.1:9000/v1", "ftp://example.com/v1");
    one(
        &ftp,
        3,
        "providers.openai.base_url",
        "use http:// or https://",
    );
}

#[test]
fn bad_listen_address() {
    one(
        &with("[server]\nlisten = \"localhost\"\n"),
        18,
        "server.listen",
        "not a socket address",
    );
}

#[test]
fn bad_store_url() {
    one(
        &with("[store]\nurl = \"mysql://db/holdfast\"\n"),
        18,
        "store.url",
        "use sqlite:// or postgres://",
    );
}

#[test]
fn duplicate_client_key() {
    let keys = "[[client_keys]]\nname = \"agents\"\nkey_env = \"K1\"\n\n[[client_keys]]\nname = \"agents\"\nkey_env = \"K2\"\n";
    let text = with(keys);
    let all = errors(&text, &[("K1", "one"), ("K2", "two")]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        all[0].to_string(),
        r#"holdfast.toml:22:8: client_keys[1].name: duplicate client key name "agents" (also client_keys[0])"#
    );
}

#[test]
fn missing_env_secret() {
    let text = BASE.replace(
        "format = \"openai\"\n",
        "format = \"openai\"\nkey_env = \"OPENAI_API_KEY\"\n",
    );
    let all = errors(&text, &[]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(matches!(&all[0], ConfigError::MissingSecret { var, .. } if var == "OPENAI_API_KEY"));
    assert_eq!(
        all[0].to_string(),
        "holdfast.toml:3:11: providers.openai.key_env: environment variable OPENAI_API_KEY is not set"
    );
    // Set but empty counts as missing.
    assert_eq!(errors(&text, &[("OPENAI_API_KEY", "")]).len(), 1);
}

#[test]
fn toml_syntax_error() {
    let text = BASE.replace(
        "targets = [\"gpt-4o\", \"claude\"]",
        "targets = [\"gpt-4o\", \"claude\"",
    );
    let all = errors(&text, &[]);
    assert_eq!(
        all.len(),
        1,
        "only the first syntax error, not the parser's guesses: {all:#?}"
    );
    assert!(
        matches!(
            all[0],
            ConfigError::Syntax {
                line: 16,
                column: 30,
                ..
            }
        ),
        "{all:#?}"
    );
    assert_eq!(all[0].field(), Some("routes.smart.targets"), "{}", all[0]);
    let header = errors("[server\nlisten = \"x\"\n", &[]);
    assert_eq!(
        header[0].to_string(),
        "holdfast.toml:1:8: unclosed table, expected `]`"
    );
}

#[test]
fn zero_context_window() {
    let text = BASE.replace("context_window = 200000", "context_window = 0");
    one(
        &text,
        13,
        "targets.claude.context_window",
        "at least 1 token",
    );
}

#[test]
fn negative_price() {
    let text = with(
        "\n[targets.cheap]\nprovider = \"openai\"\nmodel = \"m\"\ncontext_window = 1\nprice = { input_per_mtok = -1.0, output_per_mtok = 1.0 }\n",
    );
    let e = one(
        &text,
        22,
        "targets.cheap.price.input_per_mtok",
        "-1 is not a price",
    );
    assert_eq!(e.line_column(), Some((22, 28)));
}

#[test]
fn missing_required_field_points_at_its_table() {
    let text = BASE.replace("model = \"claude\"\n", "");
    one(&text, 10, "targets.claude", "missing field `model`");
}

#[test]
fn unknown_enum_value() {
    one(
        &with("[policies.default]\nretry = { jitter = \"some\" }\n"),
        18,
        "policies.default.retry.jitter",
        "unknown variant `some`",
    );
}

#[test]
fn target_listed_twice_in_a_route() {
    let text = BASE.replace(
        r#"["gpt-4o", "claude"]"#,
        r#"["gpt-4o", "claude", "gpt-4o"]"#,
    );
    one(
        &text,
        16,
        "routes.smart.targets[2]",
        "listed twice (also at [0])",
    );
}

#[test]
fn timeouts_must_fit_in_total() {
    let text = with(
        "\n[targets.slow]\nprovider = \"openai\"\nmodel = \"m\"\ncontext_window = 1\ntimeouts = { idle = \"5m\", total = \"1m\" }\n",
    );
    one(
        &text,
        22,
        "targets.slow.timeouts.idle",
        "longer than timeouts.total",
    );
}

#[test]
fn a_zero_max_retry_after_is_refused() {
    one(
        &with("[policies.fast]\nmax_retry_after = \"0s\"\n"),
        18,
        "policies.fast.max_retry_after",
        "longer than zero",
    );
}

#[test]
fn agent_breaker_and_hedge_name_their_fields() {
    one(
        &with("[agents]\nbreaker = { max_open_for = \"1s\" }\n"),
        18,
        "agents.breaker.max_open_for",
        "below breaker.open_for",
    );
    one(
        &with("[policies.fast]\nbreaker = { short_window_alpha = 0.5 }\n"),
        18,
        "policies.fast.breaker.short_window_alpha",
        "is not in (0, 0.5)",
    );
    one(
        &with("[policies.fast]\nhedge = { after_percentile = 10 }\n"),
        18,
        "policies.fast.hedge.after_percentile",
        "outside 50..=99.9",
    );
}

#[test]
fn zero_limits_are_refused() {
    one(
        &with("[server]\nbody_limit = 0\n"),
        18,
        "server.body_limit",
        "at least 1 byte",
    );
    let text = BASE.replace(
        "context_window = 128000\n",
        "context_window = 128000\nrequests_per_minute = 0\n",
    );
    one(&text, 9, "targets.gpt-4o.requests_per_minute", "at least 1");
}

#[test]
fn the_listener_guards_cannot_be_turned_off() {
    for (field, value, fragment) in [
        ("header_read_timeout", "\"0s\"", "longer than zero"),
        ("body_read_timeout", "\"0ms\"", "longer than zero"),
        ("idle_timeout", "\"0s\"", "longer than zero"),
        ("max_connections", "0", "not in 1..=1000000"),
        ("max_header_bytes", "\"512B\"", "not in 1KiB..=1MiB"),
        ("max_header_bytes", "\"2MiB\"", "not in 1KiB..=1MiB"),
    ] {
        one(
            &with(&format!("[server]\n{field} = {value}\n")),
            18,
            &format!("server.{field}"),
            fragment,
        );
    }
    one(
        &with("[idempotency]\nmax_bytes = 1000\n"),
        18,
        "idempotency.max_bytes",
        "at least 1KiB",
    );
    let key = "[[client_keys]]\nname = \"a\"\nkey_env = \"K\"\nmax_concurrent_requests = 0\n";
    let all = errors(&with(key), &[("K", "sk-a")]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        all[0].field(),
        Some("client_keys[0].max_concurrent_requests")
    );
    assert!(
        all[0].to_string().contains("not in 1..=1000000"),
        "{}",
        all[0]
    );
}

/// Validation does not stop at the first mistake: every semantic error is reported,
/// in file order.
#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = BASE
        .replace("http://127.0.0.1:9000/v1", "not a url")
        .replace("context_window = 200000", "context_window = 0")
        .replace(r#"["gpt-4o", "claude"]"#, r#"["gpt-4o", "gpt-5"]"#)
        + "policy = \"fast\"\n\n[policies.default]\nbudget = { ratio = 1.5 }\nretry = { max_attempts = 0 }\n";
    let all = errors(&text, &[]);
    let fields: Vec<_> = all
        .iter()
        .map(|e| (e.line_column().unwrap().0, e.field().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (3, "providers.openai.base_url"),
            (13, "targets.claude.context_window"),
            (16, "routes.smart.targets[1]"),
            (17, "routes.smart.policy"),
            (20, "policies.default.budget.ratio"),
            (21, "policies.default.retry.max_attempts"),
        ],
        "{all:#?}"
    );
}

#[test]
fn engine_settings_name_their_line_and_field() {
    // The first line after `[engine]`.
    let line = BASE.lines().count() + 2;
    one(
        &with("[engine]\nnode_id = \"has space\"\n"),
        line,
        "engine.node_id",
        "not allowed",
    );
    one(
        &with("[engine]\nlease = \"10ms\"\npoll_interval = \"5ms\"\n"),
        line,
        "engine.lease",
        "at least",
    );
    one(
        &with("[engine]\nmax_concurrent_tasks = 0\n"),
        line,
        "engine.max_concurrent_tasks",
        "1..=",
    );
    one(
        &with("[engine]\nmax_input_bytes = \"2MiB\"\n"),
        line,
        "engine.max_input_bytes",
        "1MiB",
    );
    one(
        &with("[engine]\nworkflows = [\"a.json\", \"b.yaml\"]\n"),
        line,
        "engine.workflows[1]",
        ".json or .toml",
    );
    one(
        &with("[engine]\nlease = 10\n"),
        line,
        "engine.lease",
        "no unit",
    );
}

#[test]
fn artifact_settings_name_their_line_and_field() {
    // The first line after `[artifacts]`.
    let line = BASE.lines().count() + 2;
    one(
        &with("[artifacts]\nurl = \"ftp://host/x\"\n"),
        line,
        "artifacts.url",
        "use file:// or s3://",
    );
    one(
        &with("[artifacts]\nurl = \"s3://b/p\"\nthreshold = \"2MiB\"\n"),
        line + 1,
        "artifacts.threshold",
        "1MiB",
    );
    one(
        &with("[artifacts]\nurl = \"s3://b/p\"\nmax_output = \"1GiB\"\n"),
        line + 1,
        "artifacts.max_output",
        "256MiB",
    );
    // With artifacts, a task input may pass 1 MiB, up to max_output.
    let ok = with(
        "[engine]\nmax_input_bytes = \"8MiB\"\n[artifacts]\nurl = \"file:///tmp/a\"\nmax_output = \"16MiB\"\n",
    );
    let config = common::load(&ok, &[]).unwrap();
    assert_eq!(config.engine.max_input_bytes, 8 << 20);
    assert_eq!(config.artifacts.unwrap().max_output, 16 << 20);
    one(
        &with(
            "[engine]\nmax_input_bytes = \"32MiB\"\n[artifacts]\nurl = \"file:///tmp/a\"\nmax_output = \"16MiB\"\n",
        ),
        line,
        "engine.max_input_bytes",
        "artifacts.max_output",
    );
}

#[test]
fn a_client_key_names_a_known_role_and_a_valid_tenant() {
    let key = |extra: &str| {
        with(&format!(
            "\n[[client_keys]]\nname = \"ops team\"\nkey_env = \"K\"\n{extra}\n"
        ))
    };
    let vars = [("K", "secret-value")];
    let role = key("role = \"root\"\ntenant = \"ops\"");
    let all = errors(&role, &vars);
    assert_eq!(all.len(), 1, "{all:#?}");
    let shown = all[0].to_string();
    assert!(shown.contains("unknown variant `root`"), "{shown}");
    assert!(
        shown.contains("agent"),
        "the message lists the roles: {shown}"
    );

    let tenant = key("tenant = \"ops team\"");
    let all = errors(&tenant, &vars);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].field(), Some("client_keys[0].tenant"));
    assert_eq!(all[0].line_column().map(|(l, _)| l), Some(21));

    // The name is the default tenant: a name that is no valid tenant asks for one.
    let defaulted = errors(&key(""), &vars);
    assert_eq!(defaulted.len(), 1, "{defaulted:#?}");
    assert!(
        defaulted[0].to_string().contains("set `tenant`"),
        "{}",
        defaulted[0]
    );

    let config = common::load(&key("role = \"reviewer\"\ntenant = \"ops\""), &vars).unwrap();
    let key = &config.client_keys[0];
    assert_eq!(
        (key.role, key.tenant.as_str()),
        (holdfast_config::Role::Reviewer, "ops")
    );
}

#[test]
fn a_posted_configuration_may_read_only_allowed_key_variables() {
    let text = with(
        "\n[providers.stolen]\nformat = \"openai\"\nbase_url = \"https://evil.example/v1\"\n\
         key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
    );
    let read = std::cell::Cell::new(false);
    let env = |name: &str| {
        if name != "AWS_SECRET_ACCESS_KEY" {
            return None;
        }
        read.set(true);
        Some("AKIA-SECRET".to_owned())
    };
    let prefixes: Vec<String> = holdfast_config::DEFAULT_KEY_ENV_PREFIXES
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    let errors = holdfast_config::Config::from_posted_text(&text, "posted", &env, &prefixes)
        .unwrap_err()
        .into_vec();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field(), Some("providers.stolen.key_env"));
    assert_eq!(errors[0].line_column().map(|(l, _)| l), Some(21));
    let shown = errors[0].to_string();
    assert!(shown.contains("OPENAI_"), "{shown}");
    assert!(!shown.contains("AKIA-SECRET"), "{shown}");
    assert!(!read.get(), "a refused variable is never read");
    // The same text from a file (the machine's own) may name it.
    common::load(&text, &[("AWS_SECRET_ACCESS_KEY", "x")]).unwrap();
}

#[test]
fn egress_patterns_name_their_line_and_index() {
    // The first line after `[engine.egress]`.
    let line = BASE.lines().count() + 2;
    one(
        &with("[engine.egress]\nallow = [\"https://api.example.com/*\", \"api.example.com\"]\n"),
        line,
        "engine.egress.allow[1]",
        "must start with http:// or https://",
    );
    one(
        &with("[engine.egress]\nallow = [\"http://0.0.0.0:8080/*\"]\n"),
        line,
        "engine.egress.allow[0]",
        "no rule can open",
    );
    one(
        &with("[engine.egress]\nallow = [\"https://*.example.com/?q\"]\n"),
        line,
        "engine.egress.allow[0]",
        "query",
    );
    // Several lines: each bad pattern on its own line.
    let text = with(
        "[engine.egress]\nallow = [\n  \"http://127.0.0.1:8080/*\",\n  \"http://a*b.example.com/\",\n  \"http://h:99999/\",\n]\n",
    );
    let all = errors(&text, &[]);
    let at: Vec<(usize, &str)> = all
        .iter()
        .map(|e| (e.line_column().unwrap().0, e.field().unwrap()))
        .collect();
    assert_eq!(
        at,
        vec![
            (line + 2, "engine.egress.allow[1]"),
            (line + 3, "engine.egress.allow[2]")
        ],
        "{all:#?}"
    );
    one(
        &with("[engine.egress]\nfollow_redirect = true\n"),
        line,
        "engine.egress.follow_redirect",
        "unknown field",
    );
}

/// Regression (found by `fuzz_config`): a key position holding `{}` inside an inline
/// table made the TOML parser close more tables than it opened, which let later nesting
/// pass its depth limit and overflow the stack (toml_parser before 1.1.6). Now it is a
/// located syntax error, however deep the nesting that follows.
#[test]
fn unbalanced_inline_tables_are_a_syntax_error_not_a_stack_overflow() {
    let n = 20_000;
    let text = format!(
        "x = {{ {} a = {}1{} }}\n",
        "{}".repeat(n),
        "{ a = ".repeat(n),
        " }".repeat(n)
    );
    let all = errors(&text, &[]);
    assert!(!all.is_empty());
    assert_eq!(all[0].line_column().map(|(l, _)| l), Some(1), "{}", all[0]);
}

#[test]
fn few_shot_library_and_k_are_checked() {
    let text = BASE.replace(
        "targets = [\"gpt-4o\", \"claude\"]",
        "targets = [\"gpt-4o\", \"claude\"]\nfew_shot = { library = \"two words\", k = 4 }",
    );
    one(
        &text,
        17,
        "routes.smart.few_shot.library",
        "letters, digits",
    );
    let text = BASE.replace(
        "targets = [\"gpt-4o\", \"claude\"]",
        "targets = [\"gpt-4o\", \"claude\"]\nfew_shot = { library = \"triage\", k = 0 }",
    );
    one(&text, 17, "routes.smart.few_shot.k", "1..=32");
    let text = BASE.replace(
        "targets = [\"gpt-4o\", \"claude\"]",
        "targets = [\"gpt-4o\", \"claude\"]\nfew_shot = { library = \"triage\", mode = \"nearest\" }",
    );
    one(
        &text,
        17,
        "routes.smart.few_shot.mode",
        "unknown variant `nearest`",
    );
}

#[test]
fn a_few_shot_library_using_embeddings_names_an_existing_route() {
    let ok = common::load(
        &with(
            "[quality.few_shot.triage]\nsimilarity = \"embeddings\"\nembedding_route = \"smart\"\n",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(ok.quality.few_shot_embeddings["triage"], "smart");
    one(
        &with(
            "[quality.few_shot.triage]\nsimilarity = \"embeddings\"\nembedding_route = \"embed\"\n",
        ),
        19,
        "quality.few_shot.triage.embedding_route",
        "names no route",
    );
    one(
        &with("[quality.few_shot.triage]\nsimilarity = \"embeddings\"\n"),
        17,
        "quality.few_shot.triage",
        "embedding_route is required",
    );
    one(
        &with("[quality.few_shot.triage]\nembedding_route = \"smart\"\n"),
        18,
        "quality.few_shot.triage.embedding_route",
        "only for similarity",
    );
}
