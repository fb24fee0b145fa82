//! `holdfast config import litellm` end to end: a LiteLLM config whose groups point at
//! mock providers is converted by the binary, passes `config check`, and the gateway
//! serving it routes as LiteLLM would: the group's deployment with its retries, then its
//! fallback group, across formats.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{ConfigBuilder, Gateway, Mock, TempDir, chat_body, header, run};

#[tokio::test]
async fn an_imported_config_routes_like_litellm() {
    let primary = Mock::start("openai", &["--rate-503", "1.0"]);
    let backup = Mock::start("anthropic", &[]);
    let yaml = format!(
        "model_list:\n\
         \x20 - model_name: chat\n\
         \x20   litellm_params:\n\
         \x20     model: openai/gpt-4o\n\
         \x20     api_base: {}\n\
         \x20     api_key: os.environ/OPENAI_API_KEY\n\
         \x20 - model_name: backup\n\
         \x20   litellm_params:\n\
         \x20     model: anthropic/claude-sonnet-4-5\n\
         \x20     api_base: {}\n\
         router_settings:\n\
         \x20 num_retries: 1\n\
         \x20 fallbacks: [{{\"chat\": [\"backup\"]}}]\n\
         litellm_settings:\n\
         \x20 success_callback: [\"langfuse\"]\n",
        primary.base_url(),
        backup.base_url().trim_end_matches("/v1"),
    );
    let dir = TempDir::new("litellm");
    let input = dir.write("config.yaml", &yaml);
    let output = dir.path().join("holdfast.toml");
    let (code, _, stderr) = run(&[
        "config",
        "import",
        "litellm",
        &input.display().to_string(),
        "--output",
        &output.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("line 15: litellm_settings.success_callback"),
        "what has no equivalent is named with its line: {stderr}"
    );
    let (code, stdout, stderr) = run(&[
        "config",
        "check",
        &output.display().to_string(),
        "--allow-missing-secrets",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let toml = std::fs::read_to_string(&output).unwrap();
    let gateway = Gateway::start_with_env(
        &ConfigBuilder::default().raw(&toml),
        &[
            ("OPENAI_API_KEY", "sk-test-a"),
            ("ANTHROPIC_API_KEY", "sk-test-b"),
        ],
    );
    let answer = gateway
        .chat(&chat_body("chat", "hello", false))
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );
    assert_eq!(
        header(answer.headers(), "x-holdfast-target").as_deref(),
        Some("backup"),
        "the fallback group served it"
    );
    assert_eq!(
        primary.total().await,
        2,
        "num_retries 1: the failing deployment was tried twice before the fallback"
    );
    let direct = gateway
        .chat(&chat_body("backup", "hello", false))
        .send()
        .await
        .unwrap();
    assert!(direct.status().is_success());
    assert_eq!(
        primary.total().await,
        2,
        "the backup group never calls the primary"
    );
    assert_eq!(backup.total().await, 2);
}
