//! Bad input at the gateway, end to end: every malformed request gets a 4xx with a JSON
//! error (OpenAI's shape; Anthropic's on `/v1/messages`), the server keeps serving, and
//! no key ever shows.
//!
//! Invariants 6 and 7 of DESIGN.md over the real binary. The keys are recognisable
//! fakes (`sk-test-SECRET-…`) so that one grep over every response body and over the
//! server's own stdout and stderr (with debug logging on) proves none leaked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, anthropic_error, chat_body, openai_error, serial};

const CLIENT_KEY_ENV: &str = "HOLDFAST_E2E_CLIENT_KEY";
const CLIENT_KEY: &str = "sk-test-SECRET-client-4f1d9c2b7a";
const PROVIDER_KEY_ENV: &str = "HOLDFAST_E2E_PROVIDER_KEY";
const PROVIDER_KEY: &str = "sk-test-SECRET-provider-8e3a61d0c5";
const BODY_LIMIT: usize = 64 * 1024;

/// One malformed request: a name, the path, the headers (the valid key unless
/// replaced) and the body.
struct Case {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    with_key: bool,
    body: Vec<u8>,
    /// Sent on a connection of its own (see `body over the limit`).
    fresh_connection: bool,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        path: "/v1/chat/completions",
        headers: vec![("content-type", "application/json".into())],
        with_key: true,
        body: body.into(),
        fresh_connection: false,
    }
}

fn json_case(name: &'static str, body: Value) -> Case {
    case(name, body.to_string())
}

fn valid() -> Value {
    chat_body("smart", "hello", false)
}

/// `valid()` with `key` set to `value` (or removed when `value` is null and `remove`).
fn with(key: &str, value: Value) -> Value {
    let mut body = valid();
    body[key] = value;
    body
}

fn without(key: &str) -> Value {
    let mut body = valid();
    body.as_object_mut().unwrap().remove(key);
    body
}

fn messages(messages: Value) -> Value {
    with("messages", messages)
}

fn cases() -> Vec<Case> {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut huge = valid();
    huge["messages"][0]["content"] = json!("x".repeat(BODY_LIMIT * 2));
    let mut list = vec![
        case("bad JSON", "{\"model\": \"smart\", \"messages\": ["),
        case("empty body", ""),
        case("trailing garbage", format!("{} garbage", valid())),
        json_case("a JSON array", json!([valid()])),
        json_case("a JSON string", json!("hello")),
        json_case("null", Value::Null),
        case("deeply nested JSON", nested),
        case("invalid UTF-8", b"{\"model\": \"smart\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\xc3\x28\"}]}".to_vec()),
        // The server answers 413 before reading the body and closes the connection, so
        // this one goes on a connection of its own, not one a later case would reuse.
        Case {
            fresh_connection: true,
            ..case("body over the limit", huge.to_string())
        },
        json_case("missing model", without("model")),
        json_case("model is a number", with("model", json!(42))),
        json_case("model is null", with("model", Value::Null)),
        json_case("empty model", with("model", json!(""))),
        json_case("unknown model", with("model", json!("no-such-route"))),
        json_case("missing messages", without("messages")),
        json_case("messages is a string", messages(json!("hello"))),
        json_case("messages is empty", messages(json!([]))),
        json_case("message without a role", messages(json!([{"content": "hi"}]))),
        json_case("unknown role", messages(json!([{"role": "wizard", "content": "hi"}]))),
        json_case("content is a number", messages(json!([{"role": "user", "content": 7}]))),
        json_case("unknown content part", messages(json!([{"role": "user", "content": [{"type": "hologram"}]}]))),
        json_case("negative max_tokens", with("max_tokens", json!(-5))),
        json_case("max_tokens is a string", with("max_tokens", json!("lots"))),
        json_case("fractional max_tokens", with("max_tokens", json!(1.5))),
        json_case("temperature is a string", with("temperature", json!("hot"))),
        json_case("stream is a string", with("stream", json!("yes"))),
        json_case("tools is not a list", with("tools", json!("get_weather"))),
        json_case("n is a string", with("n", json!("two"))),
    ];
    type HeaderCase = (&'static str, Vec<(&'static str, String)>, bool);
    let header_cases: Vec<HeaderCase> = vec![
        ("no key", vec![], false),
        (
            "wrong bearer key",
            vec![("authorization", "Bearer sk-test-wrong-key".into())],
            false,
        ),
        (
            "empty bearer key",
            vec![("authorization", "Bearer ".into())],
            false,
        ),
        (
            "basic auth instead of a key",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            false,
        ),
        (
            "wrong x-api-key",
            vec![("x-api-key", "sk-test-wrong-key".into())],
            false,
        ),
        (
            "deadline is not a number",
            vec![("x-holdfast-deadline-ms", "soon".into())],
            true,
        ),
        (
            "negative deadline",
            vec![("x-holdfast-deadline-ms", "-5".into())],
            true,
        ),
    ];
    for (name, headers, with_key) in header_cases {
        let mut c = json_case(name, valid());
        c.headers.extend(headers);
        c.with_key = with_key;
        list.push(c);
    }
    let mut text_plain = case("text/plain garbage", "model=smart");
    text_plain.headers = vec![("content-type", "text/plain".into())];
    list.push(text_plain);
    for (name, body) in [
        ("anthropic: bad JSON", json!(null).to_string() + "{"),
        ("anthropic: missing max_tokens", json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}).to_string()),
        ("anthropic: messages is a string", json!({"model": "smart", "max_tokens": 10, "messages": "hi"}).to_string()),
        ("anthropic: unknown model", json!({"model": "nope", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string()),
    ] {
        let mut c = case(name, body);
        c.path = "/v1/messages";
        list.push(c);
    }
    list
}

/// The error shape of `path`: Anthropic's on `/v1/messages` (what the Anthropic SDK
/// parses), OpenAI's everywhere else.
fn expected_error(path: &str, text: &str) -> Result<Value, String> {
    if path == "/v1/messages" {
        anthropic_error(text)
    } else {
        openai_error(text)
    }
}

async fn send(gateway: &Gateway, case: &Case) -> (reqwest::StatusCode, String) {
    let mut headers = HeaderMap::new();
    if case.with_key {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {CLIENT_KEY}")).unwrap(),
        );
    }
    for (name, value) in &case.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let client = if case.fresh_connection {
        support::client_without_pool()
    } else {
        gateway.client.clone()
    };
    let response = client
        .post(gateway.url(case.path))
        .headers(headers)
        .body(case.body.clone())
        .send()
        .await;
    match response {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => panic!("{}: the request failed at the transport: {e}", case.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors_and_never_leak_a_key() {
    let _serial = serial().await;
    let provider = Mock::start_with_env(
        "openai",
        &["--api-key-env", PROVIDER_KEY_ENV],
        &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
    );
    let config = ConfigBuilder::new()
        .server(&format!("body_limit = {BODY_LIMIT}"))
        .provider("p-primary", &format!("format = \"openai\"\nbase_url = \"{}\"\nkey_env = \"{PROVIDER_KEY_ENV}\"", provider.base_url()))
        .raw("[targets.primary]\nprovider = \"p-primary\"\nmodel = \"mock-primary\"\ncontext_window = 100000")
        .route("smart", &["primary"], "")
        .client_key("agents", CLIENT_KEY_ENV)
        .raw("[logging]\nfilter = \"debug\"");
    let gateway = Gateway::start_with_env(
        &config,
        &[
            (CLIENT_KEY_ENV, CLIENT_KEY),
            (PROVIDER_KEY_ENV, PROVIDER_KEY),
        ],
    );

    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut bodies = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (status, text) = send(&gateway, case).await;
        eprintln!(
            "{:<32} {status} {}",
            case.name,
            text.chars().take(160).collect::<String>()
        );
        if !status.is_client_error() {
            failures.push(format!("{}: {status} (want 4xx): {text}", case.name));
        } else if let Err(problem) = expected_error(case.path, &text) {
            failures.push(format!("{}: {problem}", case.name));
        }
        bodies.push(text);
    }

    // Other paths and methods answer in the same shape.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/chat/completions"),
        (reqwest::Method::POST, "/v1/no-such-endpoint"),
    ] {
        let response = gateway
            .client
            .request(method.clone(), gateway.url(path))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        eprintln!("{:<32} {status} {text}", format!("{method} {path}"));
        if !status.is_client_error() {
            failures.push(format!("{method} {path}: {status} (want 4xx): {text}"));
        } else if let Err(problem) = openai_error(&text) {
            failures.push(format!("{method} {path}: {problem}"));
        }
        bodies.push(text);
    }

    // Still serving, with either way of presenting the key, and the provider got its key.
    for auth in [
        ("authorization", format!("Bearer {CLIENT_KEY}")),
        ("x-api-key", CLIENT_KEY.to_owned()),
    ] {
        let response = gateway
            .chat(&valid())
            .header(auth.0, &auth.1)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "a valid request after the bad ones ({}): {status}: {text}",
            auth.0
        );
        bodies.push(text);
    }
    assert!(
        provider.total().await == 2,
        "only the valid requests reached the provider: {}",
        provider.stats().await
    );

    for (name, secret) in [("client key", CLIENT_KEY), ("provider key", PROVIDER_KEY)] {
        for body in &bodies {
            assert!(
                !body.contains(secret),
                "the {name} appears in a response body: {body}"
            );
        }
        let output = gateway.process.output();
        assert!(
            !output.contains(secret),
            "the {name} appears in the server's output:\n{output}"
        );
        assert!(
            !output.contains("SECRET"),
            "part of a key appears in the server's output:\n{output}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed requests were answered wrongly:\n{}",
        failures.len(),
        cases.len() + 2,
        failures.join("\n")
    );
}
