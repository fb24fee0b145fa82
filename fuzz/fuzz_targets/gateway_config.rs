//! libFuzzer entry point for the `gateway_config` target (`fuzz/targets/gateway_config.rs`).
#![no_main]

#[path = "../targets/gateway_config.rs"]
mod gateway_config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gateway_config::run(data);
});
