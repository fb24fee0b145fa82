//! Bad input never crashes anything: every malformed request gets a clear 4xx JSON
//! error, and the gateway serves a valid request afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{Gw, Mock, openai_provider, request, target};

const KEY: &str = "sk-test-SECRET123";

struct Case {
    path: &'static str,
    method: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

fn post(path: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        path,
        method: "POST",
        body: body.into(),
        headers: Vec::new(),
    }
}

fn chat(body: &str) -> Case {
    post("/v1/chat/completions", body)
}

fn with_header(name: &'static str, value: &[u8]) -> Case {
    let mut case = chat(r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#);
    case.headers.push((name, value.to_vec()));
    case
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        chat(""),
        chat("{"),
        chat("[]"),
        chat("null"),
        chat("\"a string\""),
        chat(r#"{"model": 5, "messages": []}"#),
        chat(r#"{"messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart"}"#),
        chat(r#"{"model":"smart","messages":[]}"#),
        chat(r#"{"model":"no-such-route","messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","max_tokens":1e20,"messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","temperature":5,"messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","messages":"hi"}"#),
        chat(r#"{"model":"smart","messages":[{"content":"hi"}]}"#),
        chat(r#"{"model":"smart","messages":[{"role":"wizard","content":"hi"}]}"#),
        chat(r#"{"model":"smart","messages":[{"role":"user","content":42}]}"#),
        chat(r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]} trailing"#),
        chat(r#"{"model":"smart","stream":"yes","messages":[{"role":"user","content":"hi"}]}"#),
        chat(r#"{"model":"smart","n":0,"messages":[{"role":"user","content":"hi"}]}"#),
        chat(
            r#"{"model":"smart","stop":["a","b","c","d","e"],"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        chat(r#"{"model":"smart","messages":[{"role":"tool","content":"x","tool_call_id":""}]}"#),
        chat(
            r#"{"model":"smart","response_format":{"type":"json_schema"},"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        post(
            "/v1/chat/completions",
            b"{\"model\":\"smart\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
                .to_vec(),
        ),
        post("/v1/chat/completions", "[".repeat(100_000)),
        post("/v1/chat/completions", vec![b' '; 5 << 20]),
        with_header("x-holdfast-deadline-ms", b"soon"),
        with_header("x-holdfast-deadline-ms", b"0"),
        with_header("x-holdfast-deadline-ms", b"-5"),
        with_header("x-holdfast-deadline-ms", b"\xff"),
        with_header("x-holdfast-agent", &[b'a'; 300]),
        with_header("idempotency-key", b""),
        post(
            "/v1/messages",
            r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        post(
            "/v1/messages",
            r#"{"model":"smart","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        post(
            "/v1/messages",
            r#"{"model":"smart","max_tokens":10,"messages":[]}"#,
        ),
        post("/v1/messages", "not json"),
        post("/v1/nope", "{}"),
        Case {
            path: "/v1/chat/completions",
            method: "GET",
            body: Vec::new(),
            headers: Vec::new(),
        },
    ];
    let mut wrong = chat("{}");
    wrong
        .headers
        .push(("authorization", b"Bearer sk-test-WRONG999".to_vec()));
    cases.push(wrong);
    let mut garbled = chat("{}");
    garbled
        .headers
        .push(("authorization", b"Bearer \xff\xfe".to_vec()));
    cases.push(garbled);
    cases
}

#[tokio::test]
async fn every_malformed_request_gets_a_4xx_json_error_and_the_server_keeps_serving() {
    let mock = Mock::openai("").await;
    let toml = format!(
        "[server]\nbody_limit = \"1MiB\"\n[[client_keys]]\nname = \"tests\"\nkey_env = \"CLIENT_KEY\"\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start_with_env(&toml, &[("CLIENT_KEY", KEY)]).await;
    let cases = cases();
    assert!(cases.len() >= 30);
    for (i, case) in cases.into_iter().enumerate() {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut builder = gw.client.request(method, gw.url(case.path)).body(case.body);
        let has_auth = case
            .headers
            .iter()
            .any(|(name, _)| *name == "authorization");
        if !has_auth {
            builder = builder.bearer_auth(KEY);
        }
        for (name, value) in case.headers {
            builder = builder.header(
                name,
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            );
        }
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "case {i}: status {status}");
        assert!(
            response.headers().contains_key("x-holdfast-request-id"),
            "case {i}"
        );
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("case {i}: not JSON: {e}"));
        let code = body["error"]["code"].as_str();
        assert!(code.is_some_and(|c| !c.is_empty()), "case {i}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "case {i}: {body}"
        );
    }
    assert_eq!(mock.calls(), 0, "no malformed request reached the provider");
    let ok = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn anthropic_errors_have_the_anthropic_shape() {
    let mock = Mock::openai("").await;
    let toml = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start(&toml).await;
    let response = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let response = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(r#"{"model":"x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
}

/// Regression: a 413 left the unread body on a kept-alive connection, and the client's
/// next request on that socket failed.
#[tokio::test]
async fn an_oversized_body_closes_its_connection_so_the_next_request_gets_a_fresh_one() {
    let mock = Mock::openai("").await;
    let toml = format!(
        "[server]\nbody_limit = \"1KiB\"\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start_with_env(&toml, &[]).await;
    let huge = vec![b'x'; 512 * 1024];
    let refused = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    assert_eq!(refused.headers()["connection"], "close");
    let ok = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
