//! libFuzzer entry point for the `sse` target (`fuzz/targets/sse.rs`).
#![no_main]

#[path = "../targets/sse.rs"]
mod sse;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sse::run(data);
});
