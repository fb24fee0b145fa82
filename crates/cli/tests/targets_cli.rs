//! `holdfast targets`: an operator drains a target of a running gateway and restores
//! it, from the command line, while traffic flows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{ConfigBuilder, Gateway, Mock, chat_body, header, run};

#[tokio::test]
async fn an_operator_drains_a_target_and_traffic_moves_until_it_is_restored() {
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);
    let served_by = || async {
        let response = gateway
            .chat(&chat_body("smart", "hello", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        header(response.headers(), "x-holdfast-target").unwrap()
    };
    assert_eq!(served_by().await, "primary");

    let server = ["--server", gateway.base.as_str()];
    let (code, out, err) = run(&[
        &["targets", "drain", "primary", "--for", "30s"],
        &server[..],
    ]
    .concat());
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("primary: drained for"), "{out}");
    for _ in 0..3 {
        assert_eq!(served_by().await, "fallback");
    }
    let (code, out, err) = run(&[&["targets", "list"], &server[..]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let primary_row = out.lines().find(|l| l.starts_with("primary")).unwrap();
    assert!(
        primary_row.contains("closed") && primary_row.ends_with('s'),
        "{out}"
    );

    let (code, out, err) = run(&[&["targets", "restore", "primary"], &server[..]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("primary: in rotation"), "{out}");
    assert_eq!(served_by().await, "primary");

    // Refusals name what is wrong and change nothing.
    let (code, _, err) =
        run(&[&["targets", "drain", "nope", "--for", "30s"], &server[..]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("nope"), "{err}");
    let (code, _, err) =
        run(&[&["targets", "drain", "primary", "--for", "2d"], &server[..]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("400") && err.contains("2d"), "{err}");
    assert_eq!(served_by().await, "primary");
}

/// `retry_after_ms` of `name` in `holdfast targets list --json`.
fn retry_after_ms(server: &[&str], name: &str) -> f64 {
    let (code, out, err) = run(&[&["targets", "list", "--json"], server].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let body: serde_json::Value = serde_json::from_str(&out).unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["retry_after_ms"].as_f64())
        .unwrap_or_else(|| panic!("no retry_after_ms for {name}: {out}"))
}

#[tokio::test]
async fn a_day_long_retry_after_is_capped_and_an_operator_reset_clears_it() {
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);
    let server = ["--server", gateway.base.as_str()];
    let served_by = || async {
        let response = gateway
            .chat(&chat_body("smart", "hello", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        header(response.headers(), "x-holdfast-target").unwrap()
    };

    primary
        .set_faults(serde_json::json!({"error_rates": {"429": 1.0, "retry_after": "86400s"}}))
        .await;
    assert_eq!(served_by().await, "fallback");
    let held = retry_after_ms(&server, "primary");
    assert!(
        held > 250_000.0 && held <= 300_000.0,
        "a Retry-After of one day holds the target for max_retry_after (5 min) at most: {held} ms"
    );

    primary.set_faults(serde_json::json!({})).await;
    assert_eq!(served_by().await, "fallback", "the hold still applies");
    let (code, out, err) = run(&[&["targets", "reset", "primary"], &server[..]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("primary: breaker closed"), "{out}");
    assert_eq!(retry_after_ms(&server, "primary"), 0.0);
    assert_eq!(served_by().await, "primary");
    assert!(
        gateway.process.output().contains("target reset"),
        "the reset is logged:\n{}",
        gateway.process.output()
    );

    let (code, _, err) = run(&[&["targets", "reset", "nope"], &server[..]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("nope"), "{err}");
}
