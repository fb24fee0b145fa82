//! Fuzzing the gateway's request readers: `POST /v1/chat/completions` and
//! `POST /v1/messages` bodies, mutated from `fuzz/corpus/{chat,messages}`. A fixed
//! number of cases under `cargo test`; `scripts/fuzz 10m chat messages` runs them for
//! a time. The engine and its environment variables are described in
//! `fuzz/harness/mod.rs`.

#[path = "../../../fuzz/targets/chat.rs"]
mod chat;
#[path = "../../../fuzz/harness/mod.rs"]
mod harness;
#[path = "../../../fuzz/targets/messages.rs"]
mod messages;

use harness::{Grammar, Target, fuzz};

#[test]
fn fuzz_chat() {
    fuzz(&Target {
        name: "chat",
        grammar: Grammar::Json,
        cases: 3000,
        run: chat::run,
    });
}

#[test]
fn fuzz_messages() {
    fuzz(&Target {
        name: "messages",
        grammar: Grammar::Json,
        cases: 3000,
        run: messages::run,
    });
}
