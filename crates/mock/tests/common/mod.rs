//! Shared helpers: start a mock on a real socket, talk to it, split SSE streams.

// Helpers panic on failure, as the tests that call them do.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use holdfast_mock::{Faults, Format, MockProvider, serve};
use holdfast_policy::{Clock, SystemClock};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A mock serving on 127.0.0.1, stopped by [`Mock::stop`].
pub struct Mock {
    pub base: String,
    pub provider: MockProvider,
    pub client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

pub async fn start(format: Format, faults: &str) -> Mock {
    start_with(format, faults, 7, Arc::new(SystemClock::new())).await
}

pub async fn start_with(format: Format, faults: &str, seed: u64, clock: Arc<dyn Clock>) -> Mock {
    let faults = Faults::from_toml_str(faults).unwrap();
    let provider = MockProvider::new(format, faults, seed, clock).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, provider.clone(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    Mock {
        base,
        provider,
        client,
        stop,
        task,
    }
}

impl Mock {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn chat_path(&self) -> &'static str {
        match self.provider.format() {
            Format::OpenAi => "/v1/chat/completions",
            Format::Anthropic => "/v1/messages",
        }
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(self.chat_path()))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn set_faults(&self, toml: &str) {
        self.provider
            .set_faults(Faults::from_toml_str(toml).unwrap())
            .unwrap();
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

    /// Stops the server and checks that it shut down cleanly and promptly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the mock shuts down promptly")
            .unwrap()
            .unwrap();
    }
}

pub fn request(stream: bool) -> Value {
    json!({
        "model": "mock-model",
        "max_tokens": 1000,
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

/// A minimal SSE splitter: events end at a blank line; `event:` and `data:` fields.
pub fn sse_events(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut event, mut data): (Option<String>, Vec<String>) = (None, Vec::new());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if event.is_some() || !data.is_empty() {
                events.push(Event {
                    event: event.take(),
                    data: data.join("\n"),
                });
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("event:") {
            event = Some(rest.trim_start().to_owned());
        } else if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
        }
    }
    events
}

/// Reads a streamed body to its end: the text received and whether it ended in an error.
pub async fn read_stream(response: reqwest::Response) -> (String, bool) {
    let mut body = response.bytes_stream();
    let mut text = Vec::new();
    while let Some(item) = body.next().await {
        match item {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => return (String::from_utf8(text).unwrap(), true),
        }
    }
    (String::from_utf8(text).unwrap(), false)
}

/// The concatenated text of an OpenAI or Anthropic stream.
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
