//! Fuzzing the gateway's request readers (`POST /v1/chat/completions` and
//! `POST /v1/messages` bodies, mutated from `fuzz/corpus/{chat,messages}`) and the
//! gateway's build of a configuration (`fuzz/corpus/config`). A fixed number of cases
//! under `cargo test`; `scripts/fuzz 10m chat messages gateway_config` runs them for a
//! time. The engine and its environment variables are described in
//! `fuzz/harness/mod.rs`.

#[path = "../../../fuzz/targets/chat.rs"]
mod chat;
#[path = "../../../fuzz/targets/gateway_config.rs"]
mod gateway_config;
#[path = "../../../fuzz/harness/mod.rs"]
mod harness;
#[path = "../../../fuzz/targets/messages.rs"]
mod messages;

use harness::{Grammar, Target, fuzz};

#[test]
fn fuzz_chat() {
    fuzz(&Target {
        name: "chat",
        corpus: "chat",
        grammar: Grammar::Json,
        cases: 3000,
        run: chat::run,
    });
}

#[test]
fn fuzz_messages() {
    fuzz(&Target {
        name: "messages",
        corpus: "messages",
        grammar: Grammar::Json,
        cases: 3000,
        run: messages::run,
    });
}

#[test]
fn fuzz_gateway_config() {
    fuzz(&Target {
        name: "gateway_config",
        corpus: "config",
        grammar: Grammar::Toml,
        cases: 400,
        run: gateway_config::run,
    });
}
