//! Client keys and their rate limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{Gw, Mock, openai_provider, request, target};

#[tokio::test]
async fn a_key_over_its_request_limit_gets_a_429_with_retry_after() {
    let mock = Mock::openai("").await;
    let toml = format!(
        "[[client_keys]]\nname = \"slow\"\nkey_env = \"K1\"\nrequests_per_minute = 2\n\
         [[client_keys]]\nname = \"fast\"\nkey_env = \"K2\"\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start_with_env(&toml, &[("K1", "key-one"), ("K2", "key-two")]).await;
    let send = |key: &'static str| {
        gw.client
            .post(gw.url("/v1/chat/completions"))
            .header("x-api-key", key)
            .json(&request(false))
            .send()
    };
    assert_eq!(send("key-one").await.unwrap().status(), 200);
    assert_eq!(send("key-one").await.unwrap().status(), 200);
    let limited = send("key-one").await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        send("key-two").await.unwrap().status(),
        200,
        "limits are per key"
    );
    assert_eq!(mock.calls(), 3);
}

#[tokio::test]
async fn an_open_gateway_needs_no_key_and_a_closed_one_refuses_a_missing_key() {
    let mock = Mock::openai("").await;
    let base = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let open = Gw::start(&base).await;
    assert_eq!(open.chat(&request(false)).await.status(), 200);
    let closed = Gw::start_with_env(
        &format!("[[client_keys]]\nname = \"k\"\nkey_env = \"K\"\n{base}"),
        &[("K", "the-key")],
    )
    .await;
    let response = closed.chat(&request(false)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_api_key");
}
