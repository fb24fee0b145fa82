//! The gateway benchmarks' setup: the configuration `holdfast serve` runs with and the
//! request they send, shared so that every gateway figure is measured on the same
//! policy (`bin/gateway.rs`, `bin/telemetry.rs`).

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;

/// The client key the benchmark presents (a fake; the gateway checks it on every call).
pub const KEY_ENV: &str = "HOLDFAST_BENCH_CLIENT_KEY";
/// See [`KEY_ENV`].
pub const KEY: &str = "sk-bench-not-a-secret";

/// A chat request for `model`.
pub fn chat(model: &str, stream: bool) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"Say something scripted."}}]}}"#
    ))
}

/// The gateway's config: a two-target chain on the mock, with breakers, budgets, retries,
/// rate limits and the key's cap on requests in flight (set high, so they are checked
/// but never bite: the streams phase holds 1,000 at once) and a client key; `extra`
/// is appended (more sections).
pub fn config(mock: SocketAddr, dir: &Path, extra: &str) -> String {
    let base = format!("http://{mock}/v1");
    let target = |name: &str| {
        format!(
            "[targets.{name}]\nprovider = \"mock\"\nmodel = \"mock-{name}\"\ncontext_window = 128000\n\
             requests_per_minute = 60000000\ntokens_per_minute = 6000000000\n\
             price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}\n\
             timeouts = {{ connect = \"2s\", first_byte = \"30s\", idle = \"30s\", total = \"120s\" }}\n\n"
        )
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{store}/holdfast.db\"\n\n\
         [[client_keys]]\nname = \"bench\"\nkey_env = \"{KEY_ENV}\"\nrequests_per_minute = 60000000\n\
         max_concurrent_requests = 2000\n\n\
         [providers.mock]\nformat = \"openai\"\nbase_url = \"{base}\"\n\n{primary}{secondary}\
         [routes.bench]\ntargets = [\"primary\", \"secondary\"]\npolicy = \"default\"\n\n\
         [policies.default]\nretry = {{ max_attempts = 3, base = \"50ms\", cap = \"1s\", jitter = \"full\" }}\n\
         budget = {{ ratio = 0.2, min_per_second = 10 }}\n\
         breaker = {{ failure_rate = 0.5, slow_call_rate = 0.8, slow_call = \"20s\", window = \"30s\", \
         min_calls = 20, open_for = \"30s\", half_open_probes = 3 }}\n\
         fail_over_when_retry_after_exceeds = \"2s\"\n\n{extra}",
        store = dir.display(),
        primary = target("primary"),
        secondary = target("secondary"),
    )
}
