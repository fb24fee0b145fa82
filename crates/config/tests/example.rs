//! The commented example file loads, and resolves into the settings the server uses.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{SECRETS, example, load};
use holdfast_config::{MidStream, Summary};
use holdfast_engine::egress::Rules;
use holdfast_llm::Format;
use holdfast_policy::backoff::Jitter;
use holdfast_policy::rate_limit;

#[test]
fn example_loads_and_resolves() {
    let config = load(&example(), SECRETS).unwrap();
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.body_limit, 4 << 20);
    let listener = config.server.listener;
    assert_eq!(listener.header_read_timeout, Duration::from_secs(10));
    assert_eq!(listener.body_read_timeout, Duration::from_secs(60));
    assert_eq!(listener.idle_timeout, Duration::from_secs(75));
    assert_eq!(
        (listener.max_connections, listener.max_header_bytes),
        (10_000, 64 << 10)
    );
    assert_eq!(config.store.url, "sqlite://holdfast-data/holdfast.db");
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.targets.len(), 3);
    assert_eq!(config.providers.len(), 2);
    assert!(config.missing_secrets.is_empty());

    let smart = &config.routes["smart"];
    assert_eq!(smart.targets, ["gpt-4o", "claude-sonnet", "gpt-4o-mini"]);
    assert_eq!(smart.policy_name, "default");
    assert_eq!(smart.policy.backoff.max_attempts(), 3);
    assert_eq!(smart.policy.hedge.map(|h| h.after_percentile), Some(95.0));
    assert_eq!(smart.mid_stream, MidStream::Continue);
    let degraded = smart.degraded.as_ref().unwrap();
    assert!(degraded.cache && degraded.ttl == Duration::from_secs(600));

    let cheap = &config.routes["cheap"];
    assert_eq!(cheap.policy.backoff.config().jitter, Jitter::Decorrelated);
    assert_eq!(
        cheap.policy.fail_over_when_retry_after_exceeds,
        Duration::from_secs(10)
    );
    assert_eq!(cheap.mid_stream, MidStream::Error);
}

#[test]
fn targets_carry_provider_price_timeouts_and_limits() {
    let config = load(&example(), SECRETS).unwrap();
    let gpt = &config.targets["gpt-4o"];
    assert_eq!(
        (gpt.format, gpt.provider.as_str()),
        (Format::OpenAi, "openai")
    );
    assert_eq!(gpt.base_url, "https://api.openai.com/v1");
    assert_eq!(gpt.key.as_ref().unwrap().expose(), "sk-openai-SECRET-1");
    assert_eq!(gpt.context_window, 128_000);
    assert_eq!(
        (gpt.price.input_per_mtok(), gpt.price.output_per_mtok()),
        (2.5, 10.0)
    );
    assert_eq!(gpt.timeouts.first_byte, Duration::from_secs(10));
    assert!(
        gpt.timeouts.learns_first_byte,
        "a first_byte left out is learned"
    );
    assert_eq!(
        gpt.settings.requests,
        Some(rate_limit::Config::per_minute(10_000))
    );
    assert_eq!(
        gpt.settings.tokens,
        Some(rate_limit::Config::per_minute(2_000_000))
    );
    assert!(!gpt.supports_prefill);

    let claude = &config.targets["claude-sonnet"];
    assert!(
        claude.supports_prefill,
        "anthropic targets take a prefill by default"
    );
    assert!(claude.takes_filtered);
    assert_eq!(claude.timeouts.total, Duration::from_secs(180));
    assert_eq!(
        claude.timeouts.connect,
        Duration::from_secs(2),
        "unset timeouts keep their default"
    );

    let endpoint = claude.endpoint();
    assert_eq!(endpoint.model, "claude-sonnet-4-5");
    assert_eq!(endpoint.api_key.unwrap().expose(), "sk-ant-SECRET-2");
}

#[test]
fn shared_settings_and_client_keys() {
    let config = load(&example(), SECRETS).unwrap();
    // The default policy's budget is the global one; the breaker from the example.
    let budget = config.pipeline.global_budget.unwrap();
    assert_eq!(budget.ratio, 0.2);
    let agent = config.pipeline.agent_breaker.unwrap();
    assert_eq!(agent.open_for, Duration::from_secs(60));
    assert_eq!(config.pipeline.hedge_ratio, 0.05);
    // Breakers come from the policy of the first route listing the target.
    let breaker = config.targets["gpt-4o-mini"].settings.breaker.unwrap();
    assert_eq!(
        breaker.slow_call,
        Duration::from_secs(20),
        "smart (default policy) comes first"
    );

    let names: Vec<_> = config.client_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["agents", "batch"]);
    let agents = &config.client_keys[0];
    assert!(agents.key.as_ref().unwrap().matches("hf-client-SECRET-3"));
    assert_eq!(agents.requests, Some(rate_limit::Config::per_minute(600)));
    assert_eq!(config.client_keys[1].requests, None);
    assert_eq!(agents.max_concurrent_requests, 1000);
    assert_eq!(
        config.client_keys[1].max_concurrent_requests, 1000,
        "the default"
    );

    assert_eq!(config.idempotency.capacity, 10_000);
    assert_eq!(config.idempotency.max_bytes, 64 << 20);
    assert_eq!(config.logging.filter, "info");
}

#[test]
fn keeps_the_text_and_a_stable_version() {
    let text = example();
    let a = load(&text, SECRETS).unwrap();
    let b = load(&text, SECRETS).unwrap();
    assert_eq!(&*a.source.text, text.as_str());
    assert_eq!(a.source.name, "holdfast.toml");
    assert_eq!(a.source.version, b.source.version);
    assert_eq!(a.source.version.len(), 16);
    let changed = load(
        &text.replace("capacity = 10000", "capacity = 10001"),
        SECRETS,
    )
    .unwrap();
    assert_ne!(a.source.version, changed.source.version);
}

#[test]
fn check_summarises_and_can_run_without_secrets() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/holdfast.toml"
    ));
    let summary = holdfast_config::check(path, true).unwrap();
    assert_eq!(
        (
            summary.routes,
            summary.targets,
            summary.providers,
            summary.client_keys
        ),
        (2, 3, 2, 2)
    );
    let clean = Summary {
        missing_secrets: Vec::new(),
        ..summary
    };
    assert_eq!(clean.to_string(), "ok: 2 routes, 3 targets, 2 providers");
}

#[test]
fn an_empty_file_is_the_defaults() {
    let config = load("", &[]).unwrap();
    assert_eq!(config.server.listen.port(), 8080);
    assert!(config.routes.is_empty() && config.client_keys.is_empty());
    let default = config.pipeline.global_budget.unwrap();
    assert_eq!(default, holdfast_policy::budget::Config::default());
    assert_eq!(config.source.name, "holdfast.toml");
}

#[test]
fn a_target_in_routes_with_different_policies_takes_the_first_routes() {
    let text = r#"
[providers.p]
format = "anthropic"
base_url = "http://localhost:9000"

[targets.t]
provider = "p"
model = "m"
context_window = 10

[routes.zeta]
targets = ["t"]
policy = "strict"

[routes.alpha]
targets = ["t"]

[policies.strict]
breaker = { min_calls = 5, short_window = "0s" }
budget = { enabled = false }
"#;
    let config = load(text, &[]).unwrap();
    let settings = &config.targets["t"].settings;
    assert_eq!(
        settings.breaker.unwrap().min_calls,
        5,
        "zeta is first in the file"
    );
    assert_eq!(
        settings.breaker.unwrap().short_window,
        Duration::ZERO,
        "a zero short window turns it off"
    );
    assert_eq!(settings.budget, None);
}

#[test]
fn the_engine_section_resolves_with_its_defaults() {
    let config = load(&example(), SECRETS).unwrap();
    let engine = &config.engine;
    assert_eq!(engine.node_id, "node-1");
    assert_eq!(engine.lease, Duration::from_secs(10));
    assert_eq!(engine.poll_interval, Duration::from_millis(50));
    assert_eq!(engine.max_concurrent_tasks, 1024);
    assert_eq!(engine.max_input_bytes, 262_144);
    assert!(engine.workflows.is_empty());
    assert_eq!(
        engine.egress,
        Rules::default(),
        "public addresses, no redirects"
    );

    let defaults = load("", &[]).unwrap().engine;
    assert_eq!(defaults.egress, Rules::default());
    assert_eq!(defaults.lease, Duration::from_secs(10));
    assert_eq!(defaults.max_input_bytes, 262_144);
}

#[test]
fn workflow_files_are_relative_to_the_config_file() {
    let text = "[engine]\nworkflows = [\"flows/a.json\", \"/abs/b.toml\"]\n";
    let config =
        holdfast_config::Config::from_toml_str(text, "conf/holdfast.toml", &|_| None).unwrap();
    assert_eq!(
        config.engine.workflows,
        [
            std::path::PathBuf::from("conf/flows/a.json"),
            std::path::PathBuf::from("/abs/b.toml")
        ]
    );
}

#[test]
fn gate_suites_are_relative_to_the_config_file_and_refuse_by_default() {
    let text = "[quality]\ngate = { suites = [\"evals/support.toml\"] }\n";
    let config =
        holdfast_config::Config::from_toml_str(text, "conf/holdfast.toml", &|_| None).unwrap();
    let gate = config.quality.gate.unwrap();
    assert_eq!(
        gate.suites,
        [std::path::PathBuf::from("conf/evals/support.toml")]
    );
    assert_eq!(gate.on_fail, holdfast_config::OnFail::Refuse);
    let bad = "[quality]\ngate = { suites = [\"a.json\"], on_fail = \"ignore\" }\n";
    let err = holdfast_config::Config::from_toml_str(bad, "h.toml", &|_| None).unwrap_err();
    assert!(err.to_string().contains("quality.gate"), "{err}");
    let bad = "[quality]\ngate = { suites = [\"a.json\"] }\n";
    let err = holdfast_config::Config::from_toml_str(bad, "h.toml", &|_| None).unwrap_err();
    assert!(
        err.to_string()
            .contains("quality.gate.suites[0]: must be a suite file ending in .toml"),
        "{err}"
    );
}
