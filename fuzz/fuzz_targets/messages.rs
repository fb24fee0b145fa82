//! libFuzzer entry point for the `messages` target (`fuzz/targets/messages.rs`).
#![no_main]

#[path = "../targets/chat.rs"]
mod chat;
#[path = "../targets/messages.rs"]
mod messages;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    messages::run(data);
});
