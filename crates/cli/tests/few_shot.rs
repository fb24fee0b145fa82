//! The few-shot loop end to end over real sockets: `holdfast serve` in front of a mock
//! provider scripted to answer a ticket right only when the prompt shows an example of
//! it. A workflow's wrong answer goes to the inbox, a reviewer edits it, the candidate
//! is approved, and the next similar request is answered right, with the ledger and
//! the task journal naming the example used, and the route's evaluation suite fails
//! before the correction and passes after it; feedback on a request adds a candidate;
//! an unknown request or another tenant's is a 404; another tenant never gets the
//! example.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, TempDir};

const WORKFLOW: &str = r#"{
  "name": "ticket", "version": 1,
  "steps": [
    {"name": "classify", "kind": "llm", "route": "triage",
     "prompt": "Ticket: {{ input.ticket }}", "timeout": "10s"},
    {"name": "review", "kind": "human", "prompt": "Right category?",
     "payload": {"classify": "{{ steps.classify.output }}"}, "timeout": "1h"}
  ]
}"#;

const KEYS: [(&str, &str); 3] = [
    ("HF_AGENT", "agent-key-acme"),
    ("HF_REVIEWER", "reviewer-key-acme"),
    ("HF_OTHER", "agent-key-globex"),
];

struct Caller<'a> {
    gateway: &'a Gateway,
    key: &'static str,
}

impl Caller<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, body, _) = self.exchange(method, path, body).await;
        (status, body)
    }

    /// The status, the JSON answer and the request id the gateway gave.
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, String) {
        let mut request = self
            .gateway
            .client
            .request(method, self.gateway.url(path))
            .bearer_auth(self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let id = support::header(response.headers(), "x-holdfast-request-id").unwrap_or_default();
        (status, response.json().await.unwrap_or(Value::Null), id)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// A ticket sent to the route: the answer's text and its request id.
    async fn classify(&self, ticket: &str) -> (String, String) {
        let body = json!({"model": "triage", "messages": [
            {"role": "system", "content": "Answer with the ticket's category."},
            {"role": "user", "content": format!("Ticket: {ticket}")}
        ]});
        let (status, answer, id) = self
            .exchange(reqwest::Method::POST, "/v1/chat/completions", Some(&body))
            .await;
        assert_eq!(status, 200, "{answer}");
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        (text, id)
    }
}

/// `holdfast eval run` of a two-case suite of the route, as acme's agent: its exit code
/// (0 passed, 1 failed), stdout and stderr.
fn eval_run(gateway: &Gateway, dir: &TempDir, run_id: &str) -> (Option<i32>, String, String) {
    let suite = dir.write(
        "triage.toml",
        "name = \"triage\"\ndataset = \"triage.jsonl\"\n[task]\nroute = \"triage\"\n\
         [thresholds]\npass_rate = { all = 1.0 }\n",
    );
    let case = |id: &str, ticket: &str| {
        json!({"id": id, "tags": ["labeled"],
               "input": [{"role": "user", "content": format!("Ticket: {ticket}")}],
               "assert": [{"type": "equals", "value": "billing"}]})
        .to_string()
    };
    dir.write(
        "triage.jsonl",
        &format!(
            "{}\n{}\n",
            case("twice", "charged twice this month"),
            case("card", "my card was charged twice")
        ),
    );
    let store = format!("sqlite://{}/evals.db", dir.path().display());
    support::run(&[
        "eval",
        "run",
        &suite.display().to_string(),
        "--server",
        &gateway.base,
        "--key",
        "agent-key-acme",
        "--run-id",
        run_id,
        "--store-url",
        &store,
        "--tenant",
        "acme",
    ])
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        support::pause(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewers_edit_teaches_the_route_and_the_next_similar_ticket_is_answered_right() {
    let mock = Mock::start("openai", &[]);
    // Right only when an earlier turn shows the category; wrong otherwise.
    mock.set_faults(json!({"replies": [
        {"contains": "charged twice", "and_contains": "billing", "answer": "billing"},
        {"contains": "charged twice", "answer": "shipping"}
    ]}))
    .await;
    let dir = TempDir::new("few-shot");
    let flow = dir.write("ticket.json", WORKFLOW);
    let config = ConfigBuilder::new()
        .target("m", &mock, "")
        .route(
            "triage",
            &["m"],
            "few_shot = { library = \"triage\", k = 2 }",
        )
        .client_key_as("agent", "HF_AGENT", "agent", "acme")
        .client_key_as("reviewer", "HF_REVIEWER", "reviewer", "acme")
        .client_key_as("other", "HF_OTHER", "agent", "globex")
        .raw(&format!("[engine]\nworkflows = [\"{}\"]", flow.display()));
    let gateway = Gateway::start_with_env(&config, &KEYS);
    let agent = Caller {
        gateway: &gateway,
        key: "agent-key-acme",
    };
    let reviewer = Caller {
        gateway: &gateway,
        key: "reviewer-key-acme",
    };
    let other = Caller {
        gateway: &gateway,
        key: "agent-key-globex",
    };

    // The model gets it wrong, and the task waits for a reviewer.
    let ticket =
        json!({"workflow": "ticket", "input": {"ticket": "I was charged twice for my order"}});
    let (status, task) = agent.post("/v1/tasks", &ticket).await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let escalation = eventually("the escalation", async || {
        let list = reviewer.get("/v1/escalations").await;
        list["escalations"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(
        escalation["payload"]["classify"], "shipping",
        "{escalation}"
    );

    // The reviewer edits it: a candidate, not used before it is approved.
    let id = escalation["escalation_id"].as_str().unwrap();
    let edit = json!({"action": "edit", "value": {"classify": "billing"}});
    let (status, body) = reviewer
        .post(&format!("/v1/escalations/{id}/resolve"), &edit)
        .await;
    assert_eq!(status, 200, "{body}");
    let candidates = reviewer.get("/v1/holdfast/examples?status=candidate").await;
    let example = candidates["examples"][0].clone();
    assert_eq!(
        (
            &example["input"],
            &example["output"],
            &example["source"],
            &example["author"]
        ),
        (
            &json!("Ticket: I was charged twice for my order"),
            &json!("billing"),
            &json!("escalation"),
            &json!("reviewer")
        ),
        "{candidates}"
    );
    assert_eq!(example["origin"], format!("task:{task_id}/classify"));
    let (answer, _) = agent.classify("charged twice on my card").await;
    assert_eq!(answer, "shipping", "a candidate is not retrieved");
    let (code, out, err) = eval_run(&gateway, &dir, "before");
    assert_eq!(
        code,
        Some(1),
        "the suite fails before the correction:\n{out}\n{err}"
    );

    // Approved: the next similar ticket is answered right, and the ledger says why.
    let example_id = example["id"].as_u64().unwrap();
    let (status, approved) = reviewer
        .post(
            &format!("/v1/holdfast/examples/{example_id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, &approved["status"]),
        (200, &json!("active")),
        "{approved}"
    );
    let (answer, request_id) = agent.classify("charged twice on my card").await;
    assert_eq!(answer, "billing");
    let (code, out, err) = eval_run(&gateway, &dir, "after");
    assert_eq!(code, Some(0), "the suite passes after it:\n{out}\n{err}");
    let entry = agent
        .get(&format!("/v1/holdfast/requests/{request_id}"))
        .await;
    assert_eq!(
        entry["few_shot"],
        json!({"library": "triage", "examples": [example_id]}),
        "{entry}"
    );

    // A new task's llm step gets it too, and its journal names it.
    let (_, task) = agent
        .post(
            "/v1/tasks",
            &json!({"workflow": "ticket", "input": {"ticket": "charged twice again"}}),
        )
        .await;
    let second = task["task_id"].as_str().unwrap().to_owned();
    let used = eventually("the step's journal", async || {
        let journal = agent.get(&format!("/v1/tasks/{second}/journal")).await;
        journal["entries"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "step_succeeded")
            .cloned()
    })
    .await;
    assert_eq!(
        used["data"]["few_shot"]["examples"],
        json!([example_id]),
        "{used}"
    );
    let steps = agent.get(&format!("/v1/tasks/{second}/steps")).await;
    assert_eq!(steps["steps"][0]["output"], "billing", "{steps}");

    // Another tenant never gets acme's example, nor its requests.
    let (answer, _) = other.classify("charged twice on my card").await;
    assert_eq!(answer, "shipping");
    let bad = json!({"request_id": request_id, "verdict": "bad", "correction": "fraud"});
    let (status, _) = other.post("/v1/holdfast/feedback", &bad).await;
    assert_eq!(status, 404);
    let unknown = json!({"request_id": "req_0000", "verdict": "good"});
    let (status, body) = agent.post("/v1/holdfast/feedback", &unknown).await;
    assert_eq!(status, 404, "{body}");

    // Feedback with a correction on a request: a candidate of the route's library.
    let (_, request_id) = agent.classify("my parcel never arrived").await;
    let bad = json!({"request_id": request_id, "verdict": "bad", "correction": "shipping delay"});
    let (status, body) = agent.post("/v1/holdfast/feedback", &bad).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            &body["example"]["status"],
            &body["example"]["source"],
            &body["example"]["input"]
        ),
        (
            &json!("candidate"),
            &json!("feedback"),
            &json!("Ticket: my parcel never arrived")
        )
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics
            .contains("holdfast_few_shot_library_examples{library=\"triage\",status=\"active\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("holdfast_few_shot_feedback_total{library=\"triage\",verdict=\"bad\"} 1"),
        "{metrics}"
    );
}

/// Runs `holdfast examples ARGS --server URL` and returns (exit code, stdout, stderr).
fn examples(gateway: &Gateway, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["examples"];
    all.extend(args);
    all.extend(["--server", &gateway.base]);
    support::run(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_whole_or_nothing_approves_retires_and_exports() {
    let mock = Mock::start("openai", &[]);
    let dir = TempDir::new("few-shot-cli");
    let config = ConfigBuilder::new().target("m", &mock, "").route(
        "triage",
        &["m"],
        "few_shot = { library = \"triage\", k = 2, mode = \"fixed\" }",
    );
    let gateway = Gateway::start(&config);

    // A broken line is named, and nothing of the file is imported.
    let broken = dir.write(
        "broken.jsonl",
        "{\"input\": \"refund please\", \"output\": \"billing\"}\n{\"input\": \"no output\"}\n",
    );
    let (code, _, err) = examples(
        &gateway,
        &[
            "import",
            &broken.display().to_string(),
            "--library",
            "triage",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("broken.jsonl:2"), "{err}");
    let (_, out, _) = examples(&gateway, &["list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["examples"], json!([]), "{out}");

    // A good file: active at once, merged where lines are near-duplicates.
    let good = dir.write(
        "good.jsonl",
        "{\"input\": \"Refund please!\", \"output\": \"billing\"}\n\
         {\"input\": \"refund, please\", \"output\": \"billing\"}\n\
         {\"input\": \"where is my parcel\", \"output\": \"shipping\", \"status\": \"candidate\"}\n",
    );
    let (code, out, err) = examples(
        &gateway,
        &["import", &good.display().to_string(), "--library", "triage"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 new, 1 merged"), "{out}");

    // `fixed` gives every call the active example, whatever it asks.
    let body = support::chat_body("triage", "hello", false);
    let response = gateway.chat(&body).send().await.unwrap();
    let entry = gateway.ledger_of(response.headers()).await;
    let (_, out, _) = examples(&gateway, &["list", "--status", "active", "--json"]);
    let active: Value = serde_json::from_str(&out).unwrap();
    let id = active["examples"][0]["id"].as_u64().unwrap();
    assert_eq!(entry["few_shot"]["examples"], json!([id]), "{entry}");

    // Approve the candidate, retire the first: export shows what is left.
    let (_, out, _) = examples(&gateway, &["list", "--status", "candidate", "--json"]);
    let candidate: Value = serde_json::from_str(&out).unwrap();
    let candidate = candidate["examples"][0]["id"].as_u64().unwrap().to_string();
    let (code, out, _) = examples(&gateway, &["approve", &candidate]);
    assert_eq!(code, Some(0));
    assert!(out.contains("is active"), "{out}");
    let (code, _, _) = examples(&gateway, &["retire", &id.to_string()]);
    assert_eq!(code, Some(0));
    let (_, exported, _) = examples(&gateway, &["export", "--library", "triage"]);
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"library": "triage", "input": "where is my parcel", "output": "shipping", "status": "active"})
        ]
    );
    let (code, out, _) = examples(&gateway, &["show", &candidate]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"source\": \"import\""), "{out}");
}

/// The workflow of the test below: its llm step has its own library, its route none.
const STEP_WORKFLOW: &str = r#"{
  "name": "ticket-step", "version": 1,
  "steps": [
    {"name": "classify", "kind": "llm", "route": "triage",
     "prompt": "Ticket: {{ input.ticket }}", "timeout": "10s",
     "few_shot": {"library": "step-tickets", "k": 2, "mode": "similar"}},
    {"name": "review", "kind": "human", "prompt": "Right category?",
     "payload": {"classify": "{{ steps.classify.output }}"}, "timeout": "1h"}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_step_with_its_own_few_shot_learns_from_its_corrections_and_its_route_does_not() {
    let mock = Mock::start("openai", &[]);
    mock.set_faults(json!({"replies": [
        {"contains": "charged twice", "and_contains": "billing", "answer": "billing"},
        {"contains": "charged twice", "answer": "shipping"}
    ]}))
    .await;
    let dir = TempDir::new("few-shot-step");
    let flow = dir.write("ticket-step.json", STEP_WORKFLOW);
    let config = ConfigBuilder::new()
        .target("m", &mock, "")
        .route("triage", &["m"], "")
        .client_key_as("agent", "HF_AGENT", "agent", "acme")
        .client_key_as("reviewer", "HF_REVIEWER", "reviewer", "acme")
        .client_key_as("other", "HF_OTHER", "agent", "globex")
        .raw(&format!("[engine]\nworkflows = [\"{}\"]", flow.display()));
    let gateway = Gateway::start_with_env(&config, &KEYS);
    let agent = Caller {
        gateway: &gateway,
        key: "agent-key-acme",
    };
    let reviewer = Caller {
        gateway: &gateway,
        key: "reviewer-key-acme",
    };
    let submit = async |ticket: &str| {
        let body = json!({"workflow": "ticket-step", "input": {"ticket": ticket}});
        let (status, task) = agent.post("/v1/tasks", &body).await;
        assert_eq!(status, 201, "{task}");
        task["task_id"].as_str().unwrap().to_owned()
    };

    // Wrong at first; the reviewer's edit becomes a candidate of the step's library.
    submit("I was charged twice for my order").await;
    let escalation = eventually("the escalation", async || {
        let list = reviewer.get("/v1/escalations").await;
        list["escalations"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(
        escalation["payload"]["classify"], "shipping",
        "{escalation}"
    );
    let id = escalation["escalation_id"].as_str().unwrap();
    let edit = json!({"action": "edit", "value": {"classify": "billing"}});
    let (status, body) = reviewer
        .post(&format!("/v1/escalations/{id}/resolve"), &edit)
        .await;
    assert_eq!(status, 200, "{body}");
    let candidates = reviewer.get("/v1/holdfast/examples?status=candidate").await;
    let example = candidates["examples"][0].clone();
    assert_eq!(example["library"], "step-tickets", "{candidates}");
    let example_id = example["id"].as_u64().unwrap();
    let path = format!("/v1/holdfast/examples/{example_id}/approve");
    let (status, approved) = reviewer.post(&path, &json!({})).await;
    assert_eq!(status, 200, "{approved}");

    // The step now gets the example and answers right; its journal names it.
    let second = submit("charged twice again").await;
    let used = eventually("the step's journal", async || {
        let journal = agent.get(&format!("/v1/tasks/{second}/journal")).await;
        journal["entries"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "step_succeeded")
            .cloned()
    })
    .await;
    assert_eq!(
        used["data"]["few_shot"],
        json!({"library": "step-tickets", "examples": [example_id],
               "input": "Ticket: charged twice again"}),
        "{used}"
    );
    let steps = agent.get(&format!("/v1/tasks/{second}/steps")).await;
    assert_eq!(steps["steps"][0]["output"], "billing", "{steps}");

    // The route itself has no library: a client's request gets no example.
    let (answer, request_id) = agent.classify("charged twice on my card").await;
    assert_eq!(answer, "shipping");
    let entry = agent
        .get(&format!("/v1/holdfast/requests/{request_id}"))
        .await;
    assert!(entry["few_shot"].is_null(), "{entry}");
}

#[test]
fn a_step_few_shot_with_a_bad_library_or_k_is_refused_naming_the_field() {
    let dir = TempDir::new("few-shot-step-bad");
    let flow = dir.write(
        "bad.json",
        r#"{"name": "bad", "steps": [{"name": "s", "kind": "llm", "route": "r",
            "prompt": "p", "few_shot": {"library": "no spaces", "k": 0}}]}"#,
    );
    let config = dir.write(
        "holdfast.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{}/h.db\"\n\n[engine]\nworkflows = [{:?}]\n",
            dir.path().display(),
            flow.display().to_string()
        ),
    );
    let (code, out, err) = support::run(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("few_shot.library"), "{err}");
    assert!(err.contains("few_shot.k"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_correction_becomes_a_labeled_case_of_the_routes_gate_suite() {
    let mock = Mock::start("openai", &[]);
    mock.set_faults(json!({"replies": [{"contains": "charged twice", "answer": "shipping"}]}))
        .await;
    let dir = TempDir::new("few-shot-label");
    let flow = dir.write("ticket.json", WORKFLOW);
    let first = json!({"id": "seed", "tags": ["labeled"],
        "input": [{"role": "user", "content": "Ticket: refund please"}],
        "assert": [{"type": "equals", "value": "billing"}]});
    let dataset = dir.write("triage.jsonl", &format!("{first}\n"));
    let suite = dir.write(
        "triage.toml",
        "name = \"triage\"\ndataset = \"triage.jsonl\"\n[task]\nroute = \"triage\"\n",
    );
    let config = ConfigBuilder::new()
        .target("m", &mock, "")
        .route("triage", &["m"], "few_shot = { library = \"triage\" }")
        .client_key_as("agent", "HF_AGENT", "agent", "acme")
        .client_key_as("reviewer", "HF_REVIEWER", "reviewer", "acme")
        .client_key_as("other", "HF_OTHER", "agent", "globex")
        .raw(&format!(
            "[engine]\nworkflows = [\"{}\"]\n\n[quality]\ngate = {{ suites = [\"{}\"] }}",
            flow.display(),
            suite.display()
        ));
    let gateway = Gateway::start_with_env(&config, &KEYS);
    let agent = Caller {
        gateway: &gateway,
        key: "agent-key-acme",
    };
    let reviewer = Caller {
        gateway: &gateway,
        key: "reviewer-key-acme",
    };
    let cases = || -> Vec<Value> {
        std::fs::read_to_string(&dataset)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    // An edit in the inbox.
    let ticket = json!({"workflow": "ticket", "input": {"ticket": "I was charged twice"}});
    let (status, task) = agent.post("/v1/tasks", &ticket).await;
    assert_eq!(status, 201, "{task}");
    let escalation = eventually("the escalation", async || {
        let list = reviewer.get("/v1/escalations").await;
        list["escalations"].as_array()?.first().cloned()
    })
    .await;
    let id = escalation["escalation_id"].as_str().unwrap();
    let edit = json!({"action": "edit", "value": {"classify": "billing"}});
    let (status, body) = reviewer
        .post(&format!("/v1/escalations/{id}/resolve"), &edit)
        .await;
    assert_eq!(status, 200, "{body}");
    let labeled = eventually("the edit's case", async || {
        let all = cases();
        (all.len() == 2).then(|| all[1].clone())
    })
    .await;
    assert_eq!(
        labeled["tags"],
        json!(["labeled", "correction"]),
        "{labeled}"
    );
    assert_eq!(labeled["expected"], "billing");
    assert_eq!(
        labeled["input"],
        json!([{"role": "user", "content": "Ticket: I was charged twice"}])
    );

    // A feedback with a correction.
    let (_, request_id) = agent.classify("my parcel never arrived").await;
    let bad = json!({"request_id": request_id, "verdict": "bad", "correction": "shipping delay"});
    let (status, body) = agent.post("/v1/holdfast/feedback", &bad).await;
    assert_eq!(status, 201, "{body}");
    let example_id = body["example"]["id"].as_u64().unwrap();
    let labeled = eventually("the feedback's case", async || {
        let all = cases();
        (all.len() == 3).then(|| all[2].clone())
    })
    .await;
    assert_eq!(labeled["id"], format!("correction-{example_id}"));
    assert_eq!(labeled["expected"], "shipping delay");
    // The dataset is still a valid suite, with both as labeled cases.
    let loaded = holdfast_quality::Suite::load(&suite).unwrap();
    let corrections = loaded
        .cases
        .iter()
        .filter(|c| c.tags.iter().any(|t| t == "correction"));
    assert_eq!(corrections.count(), 2);
}
