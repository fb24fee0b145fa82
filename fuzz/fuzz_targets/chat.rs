//! libFuzzer entry point for the `chat` target (`fuzz/targets/chat.rs`).
#![no_main]

#[path = "../targets/chat.rs"]
mod chat;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    chat::run(data);
});
