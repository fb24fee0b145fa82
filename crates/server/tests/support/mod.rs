//! Shared helpers: mock providers and a gateway on real sockets, a client, SSE parsing.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holdfast_config::Config;
use holdfast_mock::{Faults, Format, MockProvider};
use holdfast_policy::SystemClock;
use holdfast_server::Gateway;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A mock provider on 127.0.0.1.
pub struct Mock {
    pub base: String,
    pub provider: MockProvider,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Mock {
    pub async fn start(format: Format, faults: &str) -> Mock {
        let faults = Faults::from_toml_str(faults).unwrap();
        let provider = MockProvider::new(format, faults, 7, Arc::new(SystemClock::new())).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(holdfast_mock::serve(
            listener,
            provider.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Mock {
            base,
            provider,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn openai(faults: &str) -> Mock {
        Mock::start(Format::OpenAi, faults).await
    }

    pub async fn anthropic(faults: &str) -> Mock {
        Mock::start(Format::Anthropic, faults).await
    }

    /// Chat requests this mock received.
    pub fn calls(&self) -> u64 {
        self.provider.stats().total
    }

    pub fn set_faults(&self, toml: &str) {
        self.provider
            .set_faults(Faults::from_toml_str(toml).unwrap())
            .unwrap();
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A gateway on 127.0.0.1 with its mocks.
pub struct Gw {
    pub base: String,
    pub client: reqwest::Client,
    pub gateway: Gateway,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), holdfast_server::ServerError>>>,
}

pub fn config(toml: &str, env: &[(&str, &str)]) -> Config {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_toml_str(toml, "test.toml", &|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{e}"))
}

impl Gw {
    pub async fn start(toml: &str) -> Gw {
        Gw::start_with_env(toml, &[]).await
    }

    pub async fn start_with_env(toml: &str, env: &[(&str, &str)]) -> Gw {
        let gateway = Gateway::new(&config(toml, env), Arc::new(SystemClock::new())).unwrap();
        Gw::serve(gateway).await
    }

    /// A gateway with the workflow engine and the configuration history, over a
    /// SQLite store in `dir`, as `holdfast serve` runs them.
    pub async fn start_with_engine(toml: &str, env: &[(&str, &str)], dir: &Scratch) -> Gw {
        let clock = Arc::new(SystemClock::new());
        let gateway = Gateway::new(&config(toml, env), clock.clone()).unwrap();
        let url = format!("sqlite://{}/holdfast.db", dir.0.display());
        let store = holdfast_store::open(&url).await.unwrap();
        let settings = holdfast_engine::Settings {
            node_id: "test-node".into(),
            lease: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            ..holdfast_engine::Settings::default()
        };
        let engine = holdfast_engine::Engine::new(
            store.clone(),
            clock,
            settings,
            Some(gateway.llm()),
            gateway.task_events(),
        );
        let gateway = gateway.with_engine(engine.clone());
        // Read again by `POST /admin/config/reload` with the process environment, which
        // lacks `env`'s keys: such a reload is refused and changes nothing.
        let file = dir.0.join("holdfast.toml");
        std::fs::write(&file, toml).unwrap();
        let file = holdfast_server::ConfigFile {
            path: Some(file),
            ..holdfast_server::ConfigFile::default()
        };
        gateway.record_history(store, file).await.unwrap();
        tokio::spawn(async move { engine.run(std::future::pending()).await });
        Gw::serve(gateway).await
    }

    async fn serve(gateway: Gateway) -> Gw {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(holdfast_server::serve(
            listener,
            gateway.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Gw {
            base,
            client,
            gateway,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The body of `GET path` as text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// The ledger entry of the response's request.
    pub async fn ledger(&self, response_headers: &reqwest::header::HeaderMap) -> Value {
        let id = response_headers["x-holdfast-request-id"].to_str().unwrap();
        self.get_json(&format!("/v1/holdfast/requests/{id}")).await
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A directory of its own under the system's temp directory, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("holdfast-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An OpenAI provider section for `mock`, named `name`.
pub fn openai_provider(name: &str, mock: &Mock) -> String {
    format!(
        "[providers.{name}]\nformat = \"openai\"\nbase_url = \"{}\"\n",
        mock.base
    )
}

/// An Anthropic provider section for `mock`, named `name`.
pub fn anthropic_provider(name: &str, mock: &Mock) -> String {
    format!(
        "[providers.{name}]\nformat = \"anthropic\"\nbase_url = \"{}\"\n",
        mock.base
    )
}

/// A target at `provider` with a price, short timeouts and `window` tokens.
pub fn target(name: &str, provider: &str, window: u64) -> String {
    format!(
        "[targets.{name}]\nprovider = \"{provider}\"\nmodel = \"{name}-model\"\ncontext_window = {window}\n\
         price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}\n\
         timeouts = {{ connect = \"1s\", first_byte = \"5s\", idle = \"5s\", total = \"10s\" }}\n"
    )
}

/// Two OpenAI mocks as targets `a` and `b` of route `smart`, plus `extra` TOML.
pub async fn pair(faults_a: &str, faults_b: &str, extra: &str) -> (Gw, Mock, Mock) {
    let a = Mock::openai(faults_a).await;
    let b = Mock::openai(faults_b).await;
    let toml = format!(
        "{}{}{}{}[routes.smart]\ntargets = [\"a\", \"b\"]\n{extra}",
        openai_provider("pa", &a),
        openai_provider("pb", &b),
        target("a", "pa", 100_000),
        target("b", "pb", 100_000),
    );
    (Gw::start(&toml).await, a, b)
}

pub fn request(stream: bool) -> Value {
    json!({
        "model": "smart",
        "stream": stream,
        "messages": [{"role": "user", "content": "Say something scripted."}]
    })
}

/// One SSE event: its `event:` name, if any, and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Events of an SSE body.
pub fn sse_events(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut event, mut data): (Option<String>, Vec<String>) = (None, Vec::new());
    for line in text.split('\n') {
        if line.is_empty() {
            if event.is_some() || !data.is_empty() {
                events.push(Event {
                    event: event.take(),
                    data: data.join("\n"),
                });
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("event: ") {
            event = Some(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("data: ") {
            data.push(rest.to_owned());
        }
    }
    events
}

/// The text of an OpenAI or Anthropic stream.
pub fn streamed_text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .or_else(|| v["delta"]["text"].as_str())
                .map(str::to_owned)
        })
        .collect()
}
