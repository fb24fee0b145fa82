//! `import_litellm` on LiteLLM configurations in the shapes its documentation gives
//! (fixtures in `fixtures/litellm/`): each converts to a configuration that loads, routes
//! as LiteLLM would (a group's deployments, then its fallbacks), and lists with its line
//! every key it could not carry over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use holdfast_config::{Config, Imported, Role, import_litellm};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/litellm/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap()
}

/// Imports `name` with `env` and loads the result with every key variable set.
fn import(name: &str, env: &[(&str, &str)]) -> (Imported, Config) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = |var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
    let imported = import_litellm(&fixture(name), &lookup).unwrap();
    // Every key variable set; nothing else.
    let keys = |var: &str| {
        (var.ends_with("_KEY") || var.ends_with("_KEY_CA")).then(|| "sk-test".to_owned())
    };
    let config = Config::from_toml_str(&imported.toml, name, &keys)
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    (imported, config)
}

fn chain(config: &Config, route: &str) -> Vec<String> {
    config.routes[route].targets.clone()
}

fn noted(imported: &Imported, line: usize, key: &str) -> bool {
    imported
        .notes
        .iter()
        .any(|n| n.line == line && n.key.contains(key))
}

#[test]
fn fallbacks_retries_cooldown_and_azure_deployments() {
    let (imported, config) = import("fallbacks.yaml", &[]);
    // gpt-3.5-turbo: its deployment, then gpt-4's two.
    assert_eq!(
        chain(&config, "gpt-3.5-turbo"),
        ["gpt-3.5-turbo", "gpt-4-1", "gpt-4-2"]
    );
    assert_eq!(chain(&config, "gpt-4"), ["gpt-4-1", "gpt-4-2"]);
    let azure = &config.targets["gpt-3.5-turbo"];
    assert_eq!(
        azure.base_url,
        "https://my-endpoint-europe.openai.azure.com/openai/deployments/chatgpt-v-2"
    );
    assert_eq!(
        azure.azure_api_version.as_deref(),
        Some("2024-02-15-preview")
    );
    assert_eq!(azure.model, "chatgpt-v-2");
    assert_eq!(azure.settings.requests.map(|r| r.limit), Some(6));
    let canada = &config.targets["gpt-4-1"];
    assert_eq!(canada.azure_api_version.as_deref(), Some("2024-10-21"));
    assert!(config.providers[&canada.provider].key.is_some());
    let openai = &config.targets["gpt-4-2"];
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.context_window, 8_192);
    assert_eq!(openai.timeouts.total, Duration::from_secs(30));
    assert_eq!(openai.timeouts.first_byte, Duration::from_secs(10));
    // num_retries 2 → 3 attempts; allowed_fails 3, cooldown 30 s → the breaker.
    let policy = &config.routes["gpt-4"].policy;
    assert_eq!(policy.backoff.max_attempts(), 3);
    let breaker = openai.settings.breaker.unwrap();
    assert_eq!(breaker.min_calls, 4);
    assert_eq!(breaker.open_for, Duration::from_secs(30));
    assert_eq!(breaker.max_open_for, Duration::from_secs(30));
    assert!(
        noted(&imported, 26, "allowed_fails"),
        "{:#?}",
        imported.notes
    );
}

#[test]
fn a_retry_policy_becomes_one_count_and_the_rest_is_named() {
    let (imported, config) = import("retry_policy.yaml", &[]);
    // The largest retryable count, 4 (rate limits), plus the first attempt.
    assert_eq!(config.routes["claude"].policy.backoff.max_attempts(), 5);
    assert!(noted(
        &imported,
        17,
        "retry_policy.AuthenticationErrorRetries"
    ));
    assert!(noted(&imported, 23, "router_settings.routing_strategy"));
    let claude = &config.targets["claude"];
    assert_eq!(claude.base_url, "https://api.anthropic.com/v1");
    assert_eq!(claude.context_window, 200_000);
    assert!((claude.price.input_per_mtok() - 3.0).abs() < 1e-9);
    assert!((claude.price.output_per_mtok() - 15.0).abs() < 1e-9);
    assert_eq!(claude.timeouts.total, Duration::from_secs(45));
    // default_fallbacks: every group without fallbacks of its own.
    assert_eq!(chain(&config, "claude"), ["claude", "fast"]);
    assert_eq!(chain(&config, "fast"), ["fast"]);
}

#[test]
fn context_window_and_content_policy_fallbacks_join_the_chain() {
    let (imported, config) = import("context_window.yaml", &[]);
    assert_eq!(chain(&config, "small"), ["small", "large"]);
    assert_eq!(config.targets["small"].context_window, 16_385);
    assert_eq!(config.targets["large"].context_window, 128_000);
    assert_eq!(chain(&config, "large"), ["large", "claude"]);
    assert!(config.targets["claude"].takes_filtered);
    assert!(!config.targets["large"].takes_filtered);
    let local = &config.targets["local"];
    assert_eq!(local.base_url, "http://localhost:8000/v1");
    assert_eq!(local.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(local.context_window, 32_768);
    assert_eq!(local.timeouts.total, Duration::from_secs(600));
    assert_eq!(config.routes["small"].policy.backoff.max_attempts(), 4);
    assert!(noted(&imported, 27, "litellm_settings.drop_params"));
    assert!(noted(&imported, 28, "litellm_settings.success_callback"));
}

#[test]
fn a_proxy_config_keeps_its_alias_and_master_key_and_never_copies_a_key() {
    let (imported, config) = import(
        "proxy.yaml",
        &[("AZURE_API_BASE", "https://prod.openai.azure.com")],
    );
    assert_eq!(chain(&config, "gpt-4o"), ["gpt-4o-azure", "gpt-4o-2"]);
    assert_eq!(chain(&config, "gpt-4"), chain(&config, "gpt-4o"));
    assert_eq!(
        config.targets["gpt-4o-azure"].base_url,
        "https://prod.openai.azure.com/openai/deployments/gpt-4o-prod"
    );
    let master = &config.client_keys[0];
    assert_eq!(master.role, Role::Admin);
    assert!(imported.toml.contains("key_env = \"LITELLM_MASTER_KEY\""));
    assert!(
        !imported.toml.contains("sk-ant-literal-key-in-the-file"),
        "a key written in the file is never copied"
    );
    assert!(noted(&imported, 15, "model_list[1].litellm_params.api_key"));
    assert!(
        noted(&imported, 18, "model_list[2].litellm_params.model"),
        "bedrock"
    );
    assert!(noted(&imported, 22, "router_settings.redis_host"));
    assert!(noted(&imported, 26, "general_settings.database_url"));
    assert!(noted(&imported, 29, "environment_variables.AZURE_API_BASE"));
    for note in &imported.notes {
        assert!(
            !note.to_string().contains("user:pass"),
            "a note never repeats a value: {note}"
        );
    }
}

#[test]
fn an_azure_base_from_an_unset_variable_is_named_not_guessed() {
    let imported = import_litellm(&fixture("proxy.yaml"), &|_| None).unwrap();
    assert!(noted(&imported, 7, "model_list[0].litellm_params.api_base"));
    assert!(!imported.toml.contains("azure"), "{}", imported.toml);
}

#[test]
fn broken_input_is_refused_with_its_line() {
    let error = import_litellm(
        "model_list:\n  - model_name: a\n    litellm_params: [\n",
        &|_| None,
    )
    .unwrap_err();
    assert!(error.line >= 3, "{error}");
    assert!(error.to_string().contains("not valid YAML"), "{error}");
    let error = import_litellm("router_settings:\n  num_retries: 2\n", &|_| None).unwrap_err();
    assert!(error.message.contains("no `model_list`"), "{error}");
    let error = import_litellm("- a\n- b\n", &|_| None).unwrap_err();
    assert!(error.message.contains("mapping"), "{error}");
    let error = import_litellm(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: bedrock/titan\n",
        &|_| None,
    )
    .unwrap_err();
    assert!(error.message.contains("no deployment"), "{error}");
}
