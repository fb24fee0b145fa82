//! The secrets sweep: a run of the real binary with distinctive key values (client keys
//! of three roles, a provider key, a webhook secret), through model calls (served,
//! streamed, refused), a workflow with a model step, configuration reloads (applied and
//! refused), and the operator views; then every log line (at debug level), `/metrics`,
//! every API answer, the configuration history and the database file (with its WAL)
//! are searched for every secret. Invariant 7: no hit anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, pause};

/// `(variable, value)`: each value is distinctive, so a hit cannot be a coincidence.
const SECRETS: [(&str, &str); 5] = [
    ("HOLDFAST_SWEEP_ADMIN", "hf-admin-SWEEP-7f3a9c1e"),
    ("HOLDFAST_SWEEP_AGENT", "hf-agent-SWEEP-2b8d4e6f"),
    ("HOLDFAST_SWEEP_REVIEWER", "hf-review-SWEEP-5c1a7b3d"),
    ("OPENAI_SWEEP_KEY", "sk-prov-SWEEP-9e2f4a6c"),
    ("HOLDFAST_SWEEP_HOOK", "hook-SWEEP-3d5b7f1a"),
];

/// A key no configuration holds, presented once.
const WRONG_KEY: &str = "hf-wrong-SWEEP-4a4a4a4a";

fn secret(var: &str) -> &'static str {
    SECRETS.iter().find(|(v, _)| *v == var).unwrap().1
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Everything a client saw of a response.
async fn seen(log: &mut String, response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    log.push_str(&format!("{status} {:?}\n", response.headers()));
    let text = response.text().await.unwrap();
    log.push_str(&text);
    log.push('\n');
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_a_metric_an_answer_the_history_or_the_database() {
    let mock = Mock::start_with_env(
        "openai",
        &["--api-key-env", "OPENAI_SWEEP_KEY"],
        &[("OPENAI_SWEEP_KEY", secret("OPENAI_SWEEP_KEY"))],
    );
    let config = ConfigBuilder::new()
        .provider(
            "openai",
            &format!(
                "format = \"openai\"\nbase_url = \"{}\"\nkey_env = \"OPENAI_SWEEP_KEY\"\n",
                mock.base_url()
            ),
        )
        .raw("[targets.a]\nprovider = \"openai\"\nmodel = \"m\"\ncontext_window = 100000\n")
        .route("smart", &["a"], "")
        .client_key_as("ops", "HOLDFAST_SWEEP_ADMIN", "admin", "ops")
        .client_key_as("bot", "HOLDFAST_SWEEP_AGENT", "agent", "ops")
        .client_key_as("ana", "HOLDFAST_SWEEP_REVIEWER", "reviewer", "ops")
        .raw(
            "[alerts]\nwebhooks = [{ url = \"http://127.0.0.1:9/hook\", secret_env = \"HOLDFAST_SWEEP_HOOK\" }]\n",
        );
    let mut env = SECRETS.to_vec();
    env.push(("HOLDFAST_LOG", "debug"));
    let gw = Gateway::start_with_env(&config, &env);
    let admin = secret("HOLDFAST_SWEEP_ADMIN");
    let agent = secret("HOLDFAST_SWEEP_AGENT");
    let mut answers = String::new();
    let chat = |stream: bool| {
        json!({"model": "smart", "stream": stream,
               "messages": [{"role": "user", "content": "Say something scripted."}]})
    };

    for (key, body) in [
        (agent, chat(false)),
        (agent, chat(true)),
        (WRONG_KEY, chat(false)),
        (agent, json!({"model": "nope", "messages": []})),
    ] {
        let response = gw.chat(&body).bearer_auth(key).send().await.unwrap();
        let (_, body) = seen(&mut answers, response).await;
        answers.push_str(&body.to_string());
    }
    let workflow = json!({"name": "sweep", "steps": [
        {"name": "draft", "kind": "llm", "route": "smart", "prompt": "Write about {{ input.topic }}."}]});
    let post = |path: &str, key: &str, body: &Value| {
        gw.client
            .post(gw.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
    };
    seen(
        &mut answers,
        post("/v1/workflows", admin, &workflow).await.unwrap(),
    )
    .await;
    let submitted = json!({"workflow": "sweep", "input": {"topic": "keys"}});
    let (_, task) = seen(
        &mut answers,
        post("/v1/tasks", agent, &submitted).await.unwrap(),
    )
    .await;
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let mut finished = false;
    for _ in 0..100 {
        let response = gw
            .client
            .get(gw.url(&format!("/v1/tasks/{task_id}")))
            .bearer_auth(agent)
            .send()
            .await
            .unwrap();
        if seen(&mut answers, response).await.1["status"] == "succeeded" {
            finished = true;
            break;
        }
        pause(std::time::Duration::from_millis(50)).await;
    }

    assert!(finished, "the task did not succeed:\n{answers}");
    // A reload that applies (a second version in the history) and one refused.
    for text in [
        format!("{}\n[routes.other]\ntargets = [\"a\"]\n", gw.config),
        format!(
            "{}\n[providers.x]\nformat = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nkey_env = \"HOME\"\n",
            gw.config
        ),
    ] {
        let response = gw
            .client
            .post(gw.url("/admin/config"))
            .bearer_auth(admin)
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await
            .unwrap();
        seen(&mut answers, response).await;
    }
    let mut views = vec![
        "/metrics".to_owned(),
        "/v1/holdfast/targets".to_owned(),
        "/v1/holdfast/summary".to_owned(),
        "/v1/holdfast/alerts".to_owned(),
        "/v1/tasks".to_owned(),
        format!("/v1/tasks/{task_id}/steps"),
        format!("/v1/tasks/{task_id}/journal"),
        "/admin/config/history".to_owned(),
        "/v1/models".to_owned(),
    ];
    let (_, history) = seen(
        &mut answers,
        gw.client
            .get(gw.url("/admin/config/history"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    for version in history["data"].as_array().unwrap() {
        views.push(format!("/admin/config/versions/{}", version["version"]));
    }
    assert!(views.len() >= 11, "two versions in the history: {history}");
    for id in answers.clone().split('"').filter(|s| s.starts_with("req_")) {
        views.push(format!("/v1/holdfast/requests/{id}"));
    }
    for view in &views {
        let response = gw
            .client
            .get(gw.url(view))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        let (status, _) = seen(&mut answers, response).await;
        assert!(status < 500, "{view}: {status}");
    }

    let logs = gw.process.output();
    assert!(
        logs.contains("DEBUG"),
        "the sweep reads debug-level logs:\n{logs}"
    );
    let mut database = Vec::new();
    for entry in std::fs::read_dir(gw.process.store_dir()).unwrap() {
        database.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        contains(&database, "Write about") && contains(&database, &task_id),
        "the database holds the run's records"
    );
    let places = [
        ("the logs", logs.as_bytes()),
        ("the answers", answers.as_bytes()),
        ("the database", &database),
    ];
    let mut hits = Vec::new();
    // A key that was refused is a secret too: somebody's mistyped or stolen key.
    let refused = [("a refused key", WRONG_KEY)];
    for (var, value) in SECRETS.into_iter().chain(refused) {
        for (place, bytes) in places {
            if contains(bytes, value) {
                hits.push(format!("{var} in {place}"));
            }
        }
    }
    assert!(hits.is_empty(), "secrets found: {hits:?}");
    assert!(
        mock.total().await > 0,
        "the provider was called with its key"
    );
}
