//! Fuzzing the SSE reader: provider event streams, mutated from `fuzz/corpus/sse`, fed
//! whole and in pieces, decoded as both providers' formats. A fixed number of cases
//! under `cargo test`; `scripts/fuzz 10m sse` runs it for a time. The engine and its
//! environment variables are described in `fuzz/harness/mod.rs`.

#[path = "../../../fuzz/harness/mod.rs"]
mod harness;
#[path = "../../../fuzz/targets/sse.rs"]
mod sse;

use harness::{Grammar, Target, fuzz};

#[test]
fn fuzz_sse() {
    fuzz(&Target {
        name: "sse",
        corpus: "sse",
        grammar: Grammar::Sse,
        cases: 2000,
        run: sse::run,
    });
}
