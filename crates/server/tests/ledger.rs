//! The attempt ledger and the `x-holdfast-*` headers; degraded answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{pair, request};

#[tokio::test]
async fn the_ledger_traces_every_attempt_with_its_decision_and_cost() {
    let policy =
        "[policies.default]\nretry = { max_attempts = 2, base = \"10ms\", cap = \"20ms\" }\n";
    let (gw, _a, _b) = pair("error_rates = { \"503\" = 1.0 }", "", policy).await;
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-holdfast-attempts"], "3");
    let cost: f64 = headers["x-holdfast-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    let ledger = gw.ledger(&headers).await;
    assert_eq!(
        ledger["request_id"],
        headers["x-holdfast-request-id"].to_str().unwrap()
    );
    assert_eq!(ledger["route"], "smart");
    assert_eq!(
        (ledger["status"].as_u64(), ledger["result"].as_str()),
        (Some(200), Some("ok"))
    );
    assert_eq!(ledger["verdict"], "succeeded");
    assert_eq!(ledger["target"], "b");
    let attempts = ledger["attempts"].as_array().unwrap();
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a["number"].clone(),
                a["target"].clone(),
                a["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(1), json!("a"), json!("overloaded")),
            (json!(2), json!("a"), json!("overloaded")),
            (json!(3), json!("b"), json!("ok"))
        ]
    );
    assert_eq!(attempts[0]["next"]["action"], "retry");
    assert_eq!(
        attempts[1]["next"],
        json!({"action": "fall_back", "to": "b", "reason": "attempts_exhausted"})
    );
    assert_eq!(attempts[2]["next"], json!({"action": "done"}));
    assert!(attempts[0]["error"].as_str().unwrap().contains("503"));
    assert!(attempts[1]["waited_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(attempts[0]["cost_usd"], 0.0);
    assert!(attempts[2]["input_tokens"].as_u64().unwrap() > 0);
    assert!((ledger["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    for field in ["latency_ms", "hedge", "output_tokens"] {
        assert!(attempts[2].get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn a_failed_call_is_in_the_ledger_with_its_reason_and_the_error_has_all_headers() {
    let policy = "[policies.default]\nretry = { max_attempts = 1 }\n";
    let (gw, _a, _b) = pair(
        "error_rates = { \"500\" = 1.0 }",
        "error_rates = { \"500\" = 1.0 }",
        policy,
    )
    .await;
    let response = gw.chat(&request(false)).await;
    assert_eq!(response.status(), 502);
    let headers = response.headers().clone();
    assert_eq!(headers["x-holdfast-attempts"], "2");
    assert!(headers.get("x-holdfast-target").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
    let ledger = gw.ledger(&headers).await;
    assert_eq!(
        (
            ledger["verdict"].as_str(),
            ledger["give_up_reason"].as_str()
        ),
        (Some("gave_up"), Some("exhausted"))
    );
    assert_eq!(ledger["error_code"], "upstream_error");
    assert_eq!(
        ledger["attempts"][1]["next"],
        json!({"action": "gave_up", "reason": "exhausted"})
    );
}

#[tokio::test]
async fn an_unknown_request_id_is_a_404() {
    let (gw, _a, _b) = pair("", "", "").await;
    let response = gw
        .client
        .get(gw.url("/v1/holdfast/requests/req_nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_route_degrades_to_its_cached_then_static_answer() {
    let degraded = "degraded = { cache = true, ttl = \"1m\", static_response = \"Busy, try later.\" }\n\
                    [policies.default]\nretry = { max_attempts = 1 }\n";
    let (gw, a, b) = pair("", "", degraded).await;
    let fresh: Value = gw.chat(&request(false)).await.json().await.unwrap();
    a.set_faults("error_rates = { \"503\" = 1.0 }");
    b.set_faults("error_rates = { \"503\" = 1.0 }");
    let cached = gw.chat(&request(false)).await;
    assert_eq!(cached.status(), 200);
    assert_eq!(cached.headers()["x-holdfast-degraded"], "cache");
    let headers = cached.headers().clone();
    let cached: Value = cached.json().await.unwrap();
    assert_eq!(cached["choices"], fresh["choices"]);
    assert_eq!(gw.ledger(&headers).await["result"], "degraded");
    let mut other = request(false);
    other["messages"][0]["content"] = "A question never asked".into();
    let fixed = gw.chat(&other).await;
    assert_eq!(fixed.headers()["x-holdfast-degraded"], "static");
    let fixed: Value = fixed.json().await.unwrap();
    assert_eq!(
        fixed["choices"][0]["message"]["content"],
        "Busy, try later."
    );
    // A streamed request is degraded as a stream.
    let stream = gw.chat(&request(true)).await;
    assert_eq!(stream.headers()["x-holdfast-degraded"], "cache");
    assert!(stream.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn models_lists_the_routes_and_health_is_ok() {
    let (gw, _a, _b) = pair("", "", "").await;
    let models = gw.get_json("/v1/models").await;
    assert_eq!(
        models["data"],
        json!([{"id": "smart", "object": "model", "created": 0, "owned_by": "holdfast"}])
    );
    let health = gw.client.get(gw.url("/health")).send().await.unwrap();
    assert!(health.headers().contains_key("x-holdfast-request-id"));
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}
