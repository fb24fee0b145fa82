//! libFuzzer entry point for the `config` target (`fuzz/targets/config.rs`).
#![no_main]

#[path = "../targets/config.rs"]
mod config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    config::run(data);
});
