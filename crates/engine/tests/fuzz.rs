//! Fuzzing the workflow definition reader, JSON and TOML, mutated from
//! `fuzz/corpus/workflow_{json,toml}`. A fixed number of cases under `cargo test`;
//! `scripts/fuzz 10m workflow_json workflow_toml` runs them for a time. The engine and
//! its environment variables are described in `fuzz/harness/mod.rs`.

#[path = "../../../fuzz/harness/mod.rs"]
mod harness;
#[path = "../../../fuzz/targets/workflow.rs"]
mod workflow;

use harness::{Grammar, Target, fuzz};

#[test]
fn fuzz_workflow_json() {
    fuzz(&Target {
        name: "workflow_json",
        corpus: "workflow_json",
        grammar: Grammar::Json,
        cases: 2000,
        run: workflow::run_json,
    });
}

#[test]
fn fuzz_workflow_toml() {
    fuzz(&Target {
        name: "workflow_toml",
        corpus: "workflow_toml",
        grammar: Grammar::Toml,
        cases: 2000,
        run: workflow::run_toml,
    });
}
