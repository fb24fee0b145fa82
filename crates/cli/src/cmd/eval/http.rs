//! The quality loop's [`Subject`] over HTTP: a suite against any running holdfast.
//!
//! A route case is a `POST /v1/chat/completions` with the route as its `model`, as any
//! OpenAI client sends it, with the case's key as `Idempotency-Key` and its timeout
//! as `x-holdfast-deadline-ms`; the answer's cost, target and request id come from the
//! `x-holdfast-*` headers. A workflow case is a `POST /v1/tasks` (idempotent by the
//! case's key, so a resumed case finds its task) followed by `GET /v1/tasks/{id}` until
//! the task ends. A refusal keeps the server's error code (`content_filter`,
//! `upstream_error`…), so the runner can tell a filtered answer from a failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holdfast_llm::openai::ChatResponse;
use holdfast_policy::Clock;
use holdfast_quality::{Answer, Chat, Subject, SubjectError, TaskCall};
use serde_json::{Value, json};

/// How often a task is looked at while it runs: from the first to the last, doubling.
const FIRST_POLL: Duration = Duration::from_millis(10);
const LAST_POLL: Duration = Duration::from_millis(250);

/// Time a request may take beyond its deadline before the client gives up on it
/// (the server answers a deadline itself).
const GRACE: Duration = Duration::from_secs(5);

/// A running holdfast, reached over HTTP.
pub(crate) struct HttpSubject {
    base: String,
    key: Option<String>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The configuration version the server ran when the run started, when the key
    /// may read the history (an operator's); recorded with the run.
    config_version: Option<u64>,
}

impl HttpSubject {
    /// The server at `base`, checked to answer before a run starts.
    pub(crate) async fn connect(
        base: &str,
        key: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let mut subject = HttpSubject {
            base: base.trim_end_matches('/').to_owned(),
            key,
            client: reqwest::Client::builder().build()?,
            clock,
            config_version: None,
        };
        let health = subject.request(reqwest::Method::GET, "/health", Duration::from_secs(5));
        match health.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => anyhow::bail!(
                "holdfast at {} answered {} to /health",
                subject.base,
                r.status()
            ),
            Err(e) => {
                let context = format!("cannot reach holdfast at {}", subject.base);
                return Err(anyhow::Error::new(e).context(context));
            }
        }
        subject.config_version = subject.running_version().await;
        Ok(subject)
    }

    /// The running configuration's version, if this key may read the history.
    async fn running_version(&self) -> Option<u64> {
        let history = self.request(
            reqwest::Method::GET,
            "/admin/config/history?limit=20",
            Duration::from_secs(5),
        );
        let (_, body) = self.send(history).await.ok()?;
        let rows = body["data"].as_array()?;
        rows.iter()
            .find(|row| row["applied"] == true)
            .and_then(|row| row["version"].as_u64())
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout + GRACE);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key);
        }
        builder
    }

    /// Sends `builder`; a 2xx answer's headers and JSON body, or the server's refusal.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<(reqwest::header::HeaderMap, Value), SubjectError> {
        let response = builder.send().await.map_err(|e| {
            let code = if e.is_timeout() {
                "timeout"
            } else {
                "unreachable"
            };
            SubjectError::new(code, format!("{}: {e}", self.base))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| SubjectError::new("unreachable", format!("reading the answer: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok((headers, body));
        }
        let error = &body["error"];
        Err(SubjectError {
            code: error["code"].as_str().unwrap_or("http_error").to_owned(),
            message: format!(
                "{status}: {}",
                error["message"]
                    .as_str()
                    .map_or_else(|| body.to_string(), str::to_owned)
            ),
            cost_usd: header_f64(&headers, "x-holdfast-cost-usd"),
        })
    }
}

fn header_text(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn header_f64(headers: &reqwest::header::HeaderMap, name: &str) -> f64 {
    header_text(headers, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[async_trait]
impl Subject for HttpSubject {
    fn describe(&self) -> Value {
        json!({"via": self.base, "config_version": self.config_version})
    }

    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError> {
        let mut body = call.body;
        body["model"] = Value::String(call.route);
        body["stream"] = Value::Bool(false);
        let millis = u64::try_from(call.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut builder = self
            .request(reqwest::Method::POST, "/v1/chat/completions", call.timeout)
            .header("x-holdfast-deadline-ms", millis.to_string())
            .json(&body);
        if let Some(key) = &call.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let (headers, body) = self.send(builder).await?;
        let response: ChatResponse = serde_json::from_value(body).map_err(|e| {
            SubjectError::new("invalid_answer", format!("not a chat completion: {e}"))
        })?;
        let mut answer = Answer::from_chat(&response, header_f64(&headers, "x-holdfast-cost-usd"));
        answer.served_by = header_text(&headers, "x-holdfast-target");
        answer.request_id = header_text(&headers, "x-holdfast-request-id");
        Ok(answer)
    }

    async fn task(&self, call: TaskCall) -> Result<Answer, SubjectError> {
        let mut submission = json!({"workflow": call.workflow, "input": call.input});
        if let Some(version) = call.version {
            submission["version"] = json!(version);
        }
        let builder = self
            .request(reqwest::Method::POST, "/v1/tasks", call.timeout)
            .header("idempotency-key", &call.idempotency_key)
            .json(&submission);
        let (_, task) = self.send(builder).await?;
        let task_id = task["task_id"].as_str().unwrap_or_default().to_owned();
        let path = format!("/v1/tasks/{task_id}");
        let deadline = self.clock.now() + call.timeout;
        let mut pause = FIRST_POLL;
        loop {
            let (_, task) = self
                .send(self.request(reqwest::Method::GET, &path, call.timeout))
                .await?;
            let cost = task["cost_usd"].as_f64().unwrap_or(0.0);
            let failed = |code: &str| SubjectError {
                code: code.to_owned(),
                message: format!(
                    "task {task_id}: {}",
                    task["last_error"].as_str().unwrap_or("no error recorded")
                ),
                cost_usd: cost,
            };
            match task["status"].as_str().unwrap_or_default() {
                "succeeded" => {
                    return Ok(Answer::from_output(task["output"].clone(), cost, &task_id));
                }
                "failed" => return Err(failed("task_failed")),
                "cancelled" => return Err(failed("task_cancelled")),
                _ => {}
            }
            if self.clock.now() >= deadline {
                return Err(SubjectError {
                    code: "timeout".to_owned(),
                    message: format!("task {task_id} is still running at the case's timeout"),
                    cost_usd: cost,
                });
            }
            self.clock.sleep_until(self.clock.now() + pause).await;
            pause = (pause * 2).min(LAST_POLL);
        }
    }
}
