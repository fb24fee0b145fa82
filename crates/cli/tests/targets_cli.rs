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
