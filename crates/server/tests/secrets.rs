//! Secrets never leak into responses or logs.
//!
//! Alone in its test binary: a thread-local `tracing` subscriber set while other tests
//! run on other threads can miss callsites whose interest those threads cached first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::{Gw, Mock, openai_provider, request, target};

const CLIENT_KEY: &str = "sk-test-SECRET123";
const PROVIDER_KEY: &str = "sk-prov-SECRET456";
const OTHER_PROVIDER_KEY: &str = "sk-prov-SECRET789";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Everything the client saw of a response: status, headers and body.
async fn seen(response: reqwest::Response) -> String {
    let mut text = format!("{} {:?}\n", response.status(), response.headers());
    text.push_str(&response.text().await.unwrap());
    text
}

// Current-thread runtime: the gateway's and the mocks' tasks run on this thread, so the
// thread-local subscriber sees every log line they write.
#[tokio::test(flavor = "current_thread")]
async fn no_key_appears_in_any_response_or_log_line() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let refusing = Mock::openai("api_key = \"sk-prov-DIFFERENT-000\"").await;
    let accepting = Mock::openai(&format!("api_key = \"{OTHER_PROVIDER_KEY}\"")).await;
    let toml = format!(
        "[[client_keys]]\nname = \"agents\"\nkey_env = \"CLIENT_KEY\"\n\
         {}key_env = \"PA_KEY\"\n{}key_env = \"PB_KEY\"\n{}{}[routes.smart]\ntargets = [\"a\", \"b\"]\n",
        openai_provider("pa", &refusing),
        openai_provider("pb", &accepting),
        target("a", "pa", 100_000),
        target("b", "pb", 100_000),
    );
    let env = [
        ("CLIENT_KEY", CLIENT_KEY),
        ("PA_KEY", PROVIDER_KEY),
        ("PB_KEY", OTHER_PROVIDER_KEY),
    ];
    let gw = Gw::start_with_env(&toml, &env).await;
    let post = |key: &str, stream: bool| {
        gw.client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&request(stream))
            .send()
    };
    let mut transcript = String::new();
    let ok = post(CLIENT_KEY, false).await.unwrap();
    assert_eq!(ok.status(), 200);
    let headers = ok.headers().clone();
    transcript += &seen(ok).await;
    transcript += &seen(post(CLIENT_KEY, true).await.unwrap()).await;
    transcript += &seen(post("sk-test-WRONG999", false).await.unwrap()).await;
    let id = headers["x-holdfast-request-id"].to_str().unwrap();
    let ledger = gw
        .client
        .get(gw.url(&format!("/v1/holdfast/requests/{id}")))
        .header("x-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap();
    let ledger_text = seen(ledger).await;
    assert!(
        ledger_text.contains("auth"),
        "the refused key shows as an auth outcome: {ledger_text}"
    );
    transcript += &ledger_text;
    transcript += &seen(
        gw.client
            .get(gw.url("/v1/holdfast/targets"))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    gw.stop().await;
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request refused"),
        "the gateway's own logs were captured:\n{logs}"
    );
    for secret in ["SECRET123", "SECRET456", "SECRET789", "WRONG999"] {
        assert!(
            !transcript.contains(secret),
            "{secret} in a response:\n{transcript}"
        );
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}
