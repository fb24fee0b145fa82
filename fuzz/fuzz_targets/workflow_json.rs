//! libFuzzer entry point for the `workflow_json` target (`fuzz/targets/workflow.rs`).
#![no_main]

#[path = "../targets/workflow.rs"]
#[allow(dead_code)] // the other format's entry point
mod workflow;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    workflow::run_json(data);
});
