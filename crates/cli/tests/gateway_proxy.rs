//! Providers behind the environment's proxy: `HTTP_PROXY` (and its family) sends a
//! target's calls through the proxy, `NO_PROXY` exempts it, as curl and most HTTP
//! clients read them.
//!
//! The target's host does not resolve (`.invalid`), so an answer can only have come
//! through the proxy, and a call that bypasses it can only fail; the proxy here is a
//! recording stand-in that answers as an OpenAI provider would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use support::{ConfigBuilder, Gateway, Mock, answer_canned, chat_body};

const PROVIDER_KEY: &str = "sk-proxytest0123456789abcdefghijkl";

/// A plain-HTTP forward proxy that answers every request itself and keeps each
/// request line (absolute-form for a proxied request: `POST http://host/path HTTP/1.1`).
struct RecordingProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    async fn start() -> RecordingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move { answer_canned(stream, "via the proxy", &log).await });
            }
        });
        RecordingProxy { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn config() -> ConfigBuilder {
    ConfigBuilder::new()
        .provider(
            "far",
            "format = \"openai\"\nbase_url = \"http://provider.invalid/v1\"\nkey_env = \"FAR_KEY\"\n",
        )
        .raw(
            "[targets.far]\nprovider = \"far\"\nmodel = \"upstream-model\"\ncontext_window = 100000\n\
             timeouts = { connect = \"2s\", first_byte = \"5s\", idle = \"5s\", total = \"5s\" }\n",
        )
        .route("chat", &["far"], "policy = \"once\"")
        .policy(
            "once",
            r#"retry = { max_attempts = 1, base = "10ms", cap = "50ms" }"#,
        )
}

/// A gateway whose environment sets `HTTP_PROXY` to a recording proxy and `NO_PROXY`
/// to `no_proxy`, asked once: the proxy, the gateway, and the answer's status, target
/// and body.
async fn ask_through(no_proxy: &str) -> (RecordingProxy, Gateway, u16, Option<String>, String) {
    let proxy = RecordingProxy::start().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let gateway = Gateway::start_with_env(
        &config(),
        &[
            ("HTTP_PROXY", &proxy_url),
            ("NO_PROXY", no_proxy),
            ("FAR_KEY", PROVIDER_KEY),
        ],
    );
    let (status, target, text) = gateway.ask("chat").await;
    (proxy, gateway, status, target, text)
}

#[tokio::test]
async fn a_provider_the_environment_proxies_is_called_through_the_proxy() {
    let (proxy, gateway, status, target, text) = ask_through("127.0.0.1,localhost").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(target.as_deref(), Some("far"));
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "via the proxy");
    assert_eq!(
        proxy.seen(),
        ["POST http://provider.invalid/v1/chat/completions HTTP/1.1"],
        "the call went to the proxy, in absolute form"
    );
    assert!(!gateway.process.output().contains(PROVIDER_KEY));
}

#[tokio::test]
async fn no_proxy_exempts_a_provider_from_the_proxy() {
    let (proxy, _gateway, status, _, text) =
        ask_through("127.0.0.1,localhost,provider.invalid").await;
    // Direct, the host does not resolve: a connection error, and the proxy saw nothing.
    assert!(status >= 500, "{status}: {text}");
    let error = support::assert_openai_error(&text, "a call that could not connect");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("connect")),
        "{text}"
    );
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}

#[tokio::test]
async fn a_provider_on_loopback_is_called_directly_whatever_the_proxy_settings() {
    let proxy = RecordingProxy::start().await;
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("local", &mock, "")
        .route("chat", &["local"], "");
    let gateway = Gateway::start_with_env(
        &config,
        &[
            ("HTTP_PROXY", &format!("http://{}", proxy.addr)),
            ("NO_PROXY", ""),
        ],
    );
    let response = gateway
        .chat(&chat_body("chat", "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}
