//! Failures upstream, met by the policy: fallback, Retry-After, fail-fast auth,
//! context overflow, invalid output, deadlines, breakers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use holdfast_policy::{Clock, SystemClock};

use serde_json::{Value, json};
use support::{Gw, Mock, openai_provider, pair, request, target};

#[tokio::test]
async fn primary_503_falls_back_to_the_next_target() {
    let (gw, a, b) = pair("error_rates = { \"503\" = 1.0 }", "", "").await;
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    let attempts: u32 = response.headers()["x-holdfast-attempts"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(attempts >= 2, "{attempts}");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Holdfast mock")
    );
    assert!(a.calls() >= 1 && b.calls() == 1);
}

#[tokio::test]
async fn a_long_retry_after_sends_the_call_to_the_fallback_without_waiting() {
    let faults = "error_rates = { \"429\" = 1.0, retry_after = \"5s\" }";
    let (gw, a, b) = pair(faults, "", "").await;
    let clock = SystemClock::new();
    let started = clock.now();
    let response = gw.chat(&request(false)).await;
    let took = clock.now().saturating_duration_since(started);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    assert!(took < Duration::from_secs(2), "waited {took:?}");
    assert_eq!((a.calls(), b.calls()), (1, 1));
    let ledger = gw.ledger(response.headers()).await;
    assert_eq!(ledger["attempts"][0]["outcome"], "rate_limited");
    assert_eq!(
        ledger["attempts"][0]["next"],
        json!({"action": "fall_back", "to": "b", "reason": "retry_after_too_long"})
    );
    // The primary's Retry-After is still pending: the targets endpoint shows it.
    let targets = gw.get_json("/v1/holdfast/targets").await;
    let primary = &targets["data"][0];
    assert_eq!(primary["name"], "a");
    assert!(
        primary["retry_after_ms"].as_f64().unwrap() > 3_000.0,
        "{primary}"
    );
    assert!(primary["not_before"].is_u64());
}

#[tokio::test]
async fn an_auth_error_on_the_only_target_fails_fast_with_a_clear_error() {
    let mock = Mock::openai("auth = true").await;
    let toml = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start(&toml).await;
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_auth_failed");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test]
async fn a_context_overflow_goes_to_the_larger_context_target() {
    let small = Mock::openai("context_window = 50").await;
    let large = Mock::openai("").await;
    let toml = format!(
        "{}{}{}{}[routes.smart]\ntargets = [\"small\", \"large\"]\n",
        openai_provider("ps", &small),
        openai_provider("pl", &large),
        target("small", "ps", 4_000),
        target("large", "pl", 200_000),
    );
    let gw = Gw::start(&toml).await;
    let long = "many words in a long prompt ".repeat(40);
    let body = json!({"model": "smart", "messages": [{"role": "user", "content": long}]});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-holdfast-target"], "large");
    assert_eq!(
        small.calls(),
        1,
        "a context overflow is not retried on the same target"
    );
    let ledger = gw.ledger(response.headers()).await;
    assert_eq!(ledger["attempts"][0]["outcome"], "context_overflow");
}

#[tokio::test]
async fn schema_invalid_output_falls_back() {
    let bad = "json_answer = { wrong = 1 }";
    let (gw, a, b) = pair(bad, "", "").await;
    let mut body = request(false);
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}
    }}});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    let answer: Value = response.json().await.unwrap();
    let content: Value =
        serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(content["answer"].is_string());
    assert!(a.calls() >= 1 && b.calls() == 1);
}

#[tokio::test]
async fn an_invalid_schema_is_refused_before_any_upstream_call() {
    let (gw, a, b) = pair("", "", "").await;
    let mut body = request(false);
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 42}}});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_response_format");
    assert_eq!((a.calls(), b.calls()), (0, 0));
}

#[tokio::test]
async fn a_passed_deadline_is_a_504() {
    let (gw, _a, _b) = pair("latency = \"3s\"", "latency = \"3s\"", "").await;
    let response = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("x-holdfast-deadline-ms", "300")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "deadline_exceeded");
}

#[tokio::test]
async fn a_failing_target_opens_its_breaker_and_the_targets_endpoint_shows_it() {
    let policy = "[policies.default]\nretry = { max_attempts = 1 }\n\
                  breaker = { min_calls = 2, failure_rate = 0.5, open_for = \"30s\" }\n";
    let a = Mock::openai("error_rates = { \"500\" = 1.0 }").await;
    let b = Mock::openai("").await;
    // No active probes: the test counts the client calls that reach `a`.
    let toml = format!(
        "{}{}{}probe = {{ enabled = false }}\n{}[routes.smart]\ntargets = [\"a\", \"b\"]\n{policy}",
        openai_provider("pa", &a),
        openai_provider("pb", &b),
        target("a", "pa", 100_000),
        target("b", "pb", 100_000),
    );
    let gw = Gw::start(&toml).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(&request(false)).await.status(), 200);
    }
    let targets = gw.get_json("/v1/holdfast/targets").await;
    assert_eq!(targets["data"][0]["breaker"], "open", "{targets}");
    assert!(targets["data"][0]["open_until"].is_u64());
    assert_eq!(targets["data"][1]["breaker"], "closed");
    let calls = a.calls();
    let response = gw.chat(&request(false)).await;
    assert_eq!(a.calls(), calls, "an open breaker sends nothing");
    let ledger = gw.ledger(response.headers()).await;
    assert_eq!(
        ledger["skipped"][0],
        json!({"target": "a", "reason": "breaker_open"})
    );
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_configuration_reload() {
    let a = Mock::openai("error_rates = { \"500\" = 1.0 }").await;
    let b = Mock::openai("").await;
    let toml = |a_model: &str, extra: &str| {
        format!(
            "{}{}{}{}[routes.smart]\ntargets = [\"a\", \"b\"]\n\
             [policies.default]\nretry = {{ max_attempts = 1 }}\n\
             breaker = {{ min_calls = 2, failure_rate = 0.5, open_for = \"30s\" }}\n{extra}",
            openai_provider("pa", &a),
            openai_provider("pb", &b),
            // No active probes: the test counts every call that reaches `a`.
            target("a", "pa", 100_000).replace("a-model", a_model)
                + "probe = { enabled = false }\n",
            target("b", "pb", 100_000),
        )
    };
    let gw = Gw::start(&toml("a-model", "")).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(&request(false)).await.status(), 200);
    }
    let breaker_of_a = |targets: &Value| targets["data"][0]["breaker"].clone();
    assert_eq!(
        breaker_of_a(&gw.get_json("/v1/holdfast/targets").await),
        "open"
    );

    // A reload that leaves `a` as it was (a route added): the breaker stays open, the
    // gauge says so, and the next call still skips `a`.
    let applied = gw
        .gateway
        .reload_text(&toml("a-model", "[routes.other]\ntargets = [\"b\"]\n"))
        .await
        .unwrap();
    assert!(applied.changed);
    assert_eq!(
        breaker_of_a(&gw.get_json("/v1/holdfast/targets").await),
        "open"
    );
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("holdfast_breaker_state{target=\"a\"} 2"),
        "{metrics}"
    );
    let calls = a.calls();
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    assert_eq!(a.calls(), calls, "the reload did not reopen the way to `a`");

    // `a` now names another model: another deployment, whose health is unknown.
    gw.gateway
        .reload_text(&toml("a-model-2", ""))
        .await
        .unwrap();
    assert_eq!(
        breaker_of_a(&gw.get_json("/v1/holdfast/targets").await),
        "closed"
    );
    gw.chat(&request(false)).await;
    assert_eq!(a.calls(), calls + 1);
}

async fn drain(gw: &Gw, name: &str, body: &Value) -> reqwest::Response {
    gw.post(&format!("/admin/targets/{name}/drain"), body).await
}

#[tokio::test]
async fn a_drained_target_is_passed_over_until_it_is_restored() {
    let (gw, a, b) = pair("", "", "").await;
    let drained = drain(&gw, "a", &json!({"for": "30s"})).await;
    assert_eq!(drained.status(), 200);
    let drained: Value = drained.json().await.unwrap();
    assert_eq!(drained["name"], "a");
    assert!(drained["drained_until_ms"].is_u64(), "{drained}");
    assert!(drained["drained_remaining_ms"].as_f64().unwrap() > 29_000.0);

    for _ in 0..3 {
        let response = gw.chat(&request(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-holdfast-target"], "b");
        let ledger = gw.ledger(response.headers()).await;
        assert_eq!(
            ledger["skipped"][0],
            json!({"target": "a", "reason": "drained"})
        );
    }
    assert_eq!((a.calls(), b.calls()), (0, 3));
    let targets = gw.get_json("/v1/holdfast/targets").await;
    assert!(targets["data"][0]["drained_until"].is_u64(), "{targets}");
    assert_eq!(
        targets["data"][0]["breaker"], "closed",
        "a drain leaves the breaker be"
    );
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("holdfast_skipped_total{target=\"a\",reason=\"drained\"} 3"),
        "{metrics}"
    );

    // Back in rotation: the first target serves again.
    let restored: Value = gw
        .post("/admin/targets/a/restore", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(restored["drained_until_ms"], Value::Null);
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.headers()["x-holdfast-target"], "a");

    // Refused, with the field named: nothing is drained.
    for (name, body, status, param) in [
        ("nope", json!({"for": "30s"}), 404, Value::Null),
        ("a", json!({"for": "0s"}), 400, json!("for")),
        ("a", json!({"for": "25h"}), 400, json!("for")),
        ("a", json!({"for": "soon"}), 400, json!("for")),
        ("a", json!({"for": 30}), 400, Value::Null),
        ("a", json!({"for": "30s", "why": "x"}), 400, Value::Null),
        ("a", json!({}), 400, Value::Null),
    ] {
        let response = drain(&gw, name, &body).await;
        assert_eq!(response.status(), status, "{name} {body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
        if !param.is_null() {
            assert_eq!(error["error"]["param"], param, "{error}");
        }
    }
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.headers()["x-holdfast-target"], "a");
}

/// On a `retry_on = "next"` route, a primary failing 30% of its calls keeps only the
/// share of new calls that holds its waste to 0.05 round trips per request (about one
/// in six; the others start on the fallback), every call is still answered, and the
/// ledger of a call sent past it says why.
#[tokio::test]
async fn load_shifts_off_a_primary_failing_part_of_its_calls_on_retry_on_next() {
    let (gw, a, _b) = pair(
        "error_rates = { \"503\" = 0.3 }",
        "",
        "retry_on = \"next\"\n",
    )
    .await;
    // Enough verdicts for the primary's failure rate to be judged.
    for _ in 0..40 {
        assert_eq!(gw.chat(&request(false)).await.status(), 200);
    }
    let before = a.calls();
    let mut ledger = None;
    for _ in 0..100 {
        let response = gw.chat(&request(false)).await;
        assert_eq!(response.status(), 200);
        if ledger.is_none()
            && response.headers()["x-holdfast-target"] == "b"
            && response.headers()["x-holdfast-attempts"] == "1"
        {
            ledger = Some(gw.ledger(response.headers()).await);
        }
    }
    let primary = a.calls() - before;
    assert!(
        primary < 50,
        "the primary got {primary} of 100 calls; without shifting it gets all 100"
    );
    let ledger = ledger.expect("a call that started on the fallback");
    assert_eq!(
        ledger["skipped"][0],
        json!({"target": "a", "reason": "shifted"}),
        "{ledger}"
    );
}
