//! A few-shot library that finds its examples by embeddings, end to end over real
//! sockets: `holdfast serve` in front of two mock providers, one answering chat (right
//! only when the prompt shows the ticket's example) and one answering
//! `POST /v1/embeddings`. `POST /v1/embeddings` goes through its route like a chat
//! call; a correction becomes an example that is embedded once, kept in the store and
//! not embedded again after a restart; a similar ticket then gets it, another tenant
//! never does; a call whose tenant has no vector yet is not embedded; and when the
//! embedding provider fails, calls are still answered, from the lexical index, and the
//! fallback is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigBuilder, Mock, Process, TempDir};

const KEYS: [(&str, &str); 2] = [
    ("HF_AGENT", "agent-key-acme"),
    ("HF_OTHER", "agent-key-globex"),
];

/// A running `holdfast serve` on a store that outlives it.
struct Serve {
    _process: Process,
    base: String,
    client: reqwest::Client,
}

impl Serve {
    fn start(config: &str, dir: &TempDir, name: &str) -> Serve {
        let path = dir.write(name, config);
        let args = [
            "serve",
            "--config",
            &path.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ];
        let mut envs: Vec<(String, String)> = KEYS
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        // The store outlives the process (a spawned process has its own otherwise).
        let store = format!("sqlite://{}/holdfast.db", dir.path().display());
        envs.push(("HOLDFAST_STORE_URL".into(), store));
        let process = Process::spawn("holdfast serve", &args.map(String::from), &envs);
        Serve {
            base: format!("http://{}", process.addr),
            _process: process,
            client: support::client(),
        }
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value, String) {
        let response = (self.client.post(format!("{}{path}", self.base)))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let id = support::header(response.headers(), "x-holdfast-request-id").unwrap_or_default();
        (status, response.json().await.unwrap_or(Value::Null), id)
    }

    async fn get(&self, key: &str, path: &str) -> String {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key);
        request.send().await.unwrap().text().await.unwrap()
    }

    /// A ticket sent to the route as `key`: the answer and its request id.
    async fn classify(&self, key: &str, ticket: &str) -> (String, String) {
        let body = json!({"model": "triage", "messages": [
            {"role": "user", "content": format!("Ticket: {ticket}")}
        ]});
        let (status, answer, id) = self.post(key, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{answer}");
        (
            answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
            id,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_are_found_by_embeddings_kept_across_a_restart_and_fall_back_to_lexical() {
    let chat = Mock::start("openai", &[]);
    chat.set_faults(json!({"replies": [
        {"contains": "double charge", "and_contains": "billing", "answer": "billing"},
        {"contains": "double charge", "answer": "shipping"}
    ]}))
    .await;
    let embed = Mock::start("openai", &[]);
    let dir = TempDir::new("few-shot-embeddings");
    let config = ConfigBuilder::new()
        .target("m", &chat, "")
        .target("e", &embed, "")
        .route(
            "triage",
            &["m"],
            "few_shot = { library = \"triage\", k = 1, auto_approve = true }",
        )
        .route("embed", &["e"], "")
        .client_key_as("agent", "HF_AGENT", "agent", "acme")
        .client_key_as("other", "HF_OTHER", "agent", "globex")
        .raw("[quality.few_shot.triage]\nsimilarity = \"embeddings\"\nembedding_route = \"embed\"")
        .build(dir.path());
    let serve = Serve::start(&config, &dir, "holdfast.toml");
    let acme = "agent-key-acme";

    // The gateway serves embeddings through the route, with a ledger entry.
    let body =
        json!({"model": "embed", "input": ["refund my double charge", "where is my parcel"]});
    let (status, answer, id) = serve.post(acme, "/v1/embeddings", &body).await;
    assert_eq!(status, 200, "{answer}");
    let vectors = answer["data"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[1]["index"], 1);
    assert_eq!(vectors[0]["embedding"].as_array().unwrap().len(), 256);
    let entry = serve
        .get(acme, &format!("/v1/holdfast/requests/{id}"))
        .await;
    assert!(entry.contains("\"route\":\"embed\""), "{entry}");
    let (status, refused, _) = serve
        .post(
            acme,
            "/v1/embeddings",
            &json!({"model": "embed", "input": [[1, 2]]}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input"),
        "{refused}"
    );
    let (status, _, _) = serve
        .post(
            acme,
            "/v1/embeddings",
            &json!({"model": "nope", "input": "x"}),
        )
        .await;
    assert_eq!(status, 404);

    // A wrong answer, corrected: an active example at once, embedded once.
    let (answer, id) = serve.classify(acme, "refund my double charge please").await;
    assert_eq!(answer, "shipping");
    let bad = json!({"request_id": id, "verdict": "bad", "correction": "billing"});
    let (status, body, _) = serve.post(acme, "/v1/holdfast/feedback", &bad).await;
    assert_eq!(
        (status, &body["example"]["status"]),
        (201, &json!("active")),
        "{body}"
    );
    let mut answered = String::new();
    for _ in 0..100 {
        answered = serve.classify(acme, "a double charge on my card").await.0;
        if answered == "billing" {
            break;
        }
        support::pause(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, "billing", "the similar ticket gets the example");
    let (answer, _) = serve
        .classify("agent-key-globex", "a double charge on my card")
        .await;
    assert_eq!(
        answer, "shipping",
        "another tenant never gets acme's example"
    );
    let metrics = serve.get(acme, "/metrics").await;
    assert_eq!(fallbacks(&metrics, "embedding_failed"), 0, "{metrics}");
    // The first ticket (acme's library empty) and globex's (no library) were not
    // embedded: there was no vector to compare them with.
    assert!(fallbacks(&metrics, "no_vectors") >= 2, "{metrics}");

    // Restarted on the same store: the example's vector is read, not asked for again;
    // the only embedding requests are the inputs of calls made once it was read.
    drop(serve);
    let before = embed.total().await;
    let serve = Serve::start(&config, &dir, "holdfast.toml");
    let mut answered = String::new();
    for _ in 0..100 {
        answered = serve.classify(acme, "a double charge on my card").await.0;
        let (calls, unembedded) = served(&serve).await;
        if answered == "billing" && calls > unembedded {
            break;
        }
        support::pause(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, "billing");
    let embedded = embed.total().await - before;
    let (calls, unembedded) = served(&serve).await;
    assert!(
        calls > unembedded,
        "{calls} calls, {unembedded} not embedded"
    );
    assert_eq!(
        embedded,
        calls - unembedded,
        "one embedding per call with vectors to compare, none for the example"
    );
    let (answer, _) = serve
        .classify("agent-key-globex", "a double charge on my card")
        .await;
    assert_eq!(answer, "shipping");
    assert_eq!(
        embed.total().await - before,
        embedded,
        "a tenant without vectors is not embedded"
    );

    // The embedding provider fails: the call is still answered (the lexical index has
    // the example), and the fallback is logged and counted.
    embed.set_faults(json!({"auth": true})).await;
    let (answer, _) = serve.classify(acme, "a double charge on my card").await;
    assert_eq!(answer, "billing");
    let metrics = serve.get(acme, "/metrics").await;
    assert_eq!(fallbacks(&metrics, "embedding_failed"), 1, "{metrics}");
}

/// The calls of the library a server has served, and how many of them were served
/// without embedding their input (the tenant's library held no vector yet).
async fn served(serve: &Serve) -> (u64, u64) {
    let metrics = serve.get("agent-key-acme", "/metrics").await;
    let calls = metrics
        .lines()
        .filter(|l| l.starts_with("holdfast_few_shot_retrievals_total{library=\"triage\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    (calls, fallbacks(&metrics, "no_vectors"))
}

/// `holdfast_few_shot_embedding_fallbacks_total` of the library for `reason`.
fn fallbacks(metrics: &str, reason: &str) -> u64 {
    let series = format!(
        "holdfast_few_shot_embedding_fallbacks_total{{library=\"triage\",reason=\"{reason}\"}} "
    );
    (metrics.lines())
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}in {metrics}"))
}
