//! Fuzzing the configuration reader: TOML texts mutated from `fuzz/corpus/config`,
//! loaded as `holdfast serve` and `POST /admin/config` load them. A fixed number of
//! cases under `cargo test`; `scripts/fuzz 10m config` runs it for a time. The engine
//! and its environment variables are described in `fuzz/harness/mod.rs`.

#[path = "../../../fuzz/targets/config.rs"]
mod config;
#[path = "../../../fuzz/harness/mod.rs"]
mod harness;

use harness::{Grammar, Target, fuzz};

#[test]
fn fuzz_config() {
    fuzz(&Target {
        name: "config",
        corpus: "config",
        grammar: Grammar::Toml,
        cases: 1500,
        run: config::run,
    });
}
