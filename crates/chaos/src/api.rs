//! A running holdfast as drills and experiments talk to it: operator calls with the
//! key, and chat requests read the way a client reads them (the target that served from
//! `x-holdfast-target`, the cost from `x-holdfast-cost-usd`, the error code otherwise).

use std::collections::BTreeMap;

use serde_json::Value;

/// One answered chat request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Served {
    /// The target that served it.
    pub(crate) target: String,
    /// What it cost, in USD.
    pub(crate) cost_usd: f64,
}

/// The field `field` of each element of `body.data`.
pub(crate) fn list_of<'a>(body: &'a Value, field: &str) -> Vec<&'a str> {
    body["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| item[field].as_str())
        .collect()
}

/// The server, as a drill or an experiment talks to it.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    agent: String,
    headers: Vec<(String, String)>,
}

impl Api {
    /// Talks to `base` with `key`, its chat requests marked `x-holdfast-agent: agent`.
    pub(crate) fn new(http: reqwest::Client, base: &str, key: Option<String>, agent: &str) -> Api {
        Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
            agent: agent.to_owned(),
            headers: Vec::new(),
        }
    }

    /// The same, its chat requests and task submissions also carrying `headers`.
    pub(crate) fn with_headers(self, headers: Vec<(String, String)>) -> Api {
        Api { headers, ..self }
    }

    /// The same client, key and agent, talking to another node at `base`.
    pub(crate) fn at(&self, base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// An operator call: its JSON answer, or why it failed.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            format!(
                "{method} {path}: cannot reach {}: {}",
                self.base,
                e.without_url()
            )
        })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        Err(format!(
            "{method} {path}: the server answered {status}: {message}"
        ))
    }

    /// `GET path` as text (`/metrics`), or why it failed.
    pub(crate) async fn text(&self, path: &str) -> Result<String, String> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GET {path}: cannot reach {}: {}",
                    self.base,
                    e.without_url()
                )
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!(
                "GET {path}: the server answered {}",
                status.as_u16()
            ))
        }
    }

    /// A chat request: who served it and its cost, or an error code (`unreachable`
    /// when no answer came). A degraded answer is served by `degraded:cache` or
    /// `degraded:static`. A streamed request (`"stream": true` in `body`) succeeds only
    /// when its stream ends with `[DONE]` and carries no error event: a stream cut
    /// short is a failure (`stream_incomplete`), never a success.
    ///
    /// A whole answer counts only when the client could use it: its content is not
    /// empty (or it calls a tool) and, when `body` asks for JSON (`response_format`),
    /// is a JSON object; otherwise it fails with `invalid_output`, whatever its status.
    pub(crate) async fn chat(&self, body: Value) -> Result<Served, String> {
        self.chat_once(body, None).await
    }

    /// [`Api::chat`], sent with an `Idempotency-Key`.
    pub(crate) async fn chat_once(
        &self,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> Result<Served, String> {
        let streamed = body["stream"].as_bool().unwrap_or(false);
        let wants_json = body.get("response_format").is_some();
        let mut request = self
            .request(reqwest::Method::POST, "/v1/chat/completions")
            .header("x-holdfast-agent", &self.agent);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request
            .json(&body)
            .send()
            .await
            .map_err(|_| "unreachable".to_owned())?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let target = header("x-holdfast-target")
            .or_else(|| header("x-holdfast-degraded").map(|how| format!("degraded:{how}")));
        let cost_usd = header("x-holdfast-cost-usd")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0.0);
        if streamed && status.is_success() {
            let text = response
                .text()
                .await
                .map_err(|_| "stream_incomplete".to_owned())?;
            return match (target, stream_error(&text)) {
                (_, Some(code)) => Err(code),
                (Some(target), None) => Ok(Served { target, cost_usd }),
                (None, None) => Err("no_target".to_owned()),
            };
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match target {
            Some(_) if status.is_success() && !usable(&answer, wants_json) => {
                Err("invalid_output".to_owned())
            }
            Some(target) if status.is_success() => Ok(Served { target, cost_usd }),
            _ => Err(answer["error"]["code"]
                .as_str()
                .map_or_else(|| format!("http_{}", status.as_u16()), str::to_owned)),
        }
    }
}

impl Api {
    /// Submits a task: its id, or an error code (`unreachable` when no answer came).
    pub(crate) async fn submit(&self, body: Value) -> Result<String, String> {
        let mut request = self.request(reqwest::Method::POST, "/v1/tasks");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request
            .json(&body)
            .send()
            .await
            .map_err(|_| "unreachable".to_owned())?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match answer["task_id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_owned()),
            _ => Err(answer["error"]["code"]
                .as_str()
                .map_or_else(|| format!("http_{}", status.as_u16()), str::to_owned)),
        }
    }

    /// The steps `id`'s journal commits more than once (each named once, in order), or
    /// why the journal could not be read.
    pub(crate) async fn steps_committed_twice(&self, id: &str) -> Result<Vec<String>, String> {
        const PAGE: u64 = 1000;
        let mut committed: BTreeMap<String, u32> = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/tasks/{id}/journal?after={after}&limit={PAGE}"),
                    None,
                )
                .await?;
            let entries = page["entries"]
                .as_array()
                .ok_or_else(|| format!("task {id}: no entries in its journal"))?;
            for entry in entries {
                if entry["kind"] == "step_succeeded" {
                    let step = entry["data"]["step"].as_str().unwrap_or_default();
                    *committed.entry(step.to_owned()).or_default() += 1;
                }
                after = entry["seq"].as_u64().unwrap_or(after).max(after);
            }
            if (entries.len() as u64) < PAGE {
                break;
            }
        }
        Ok(committed
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(step, _)| step)
            .collect())
    }

    /// A task's status (`running`, `succeeded`…), or why it could not be read.
    pub(crate) async fn task_status(&self, id: &str) -> Result<String, String> {
        let task = self
            .call(reqwest::Method::GET, &format!("/v1/tasks/{id}"), None)
            .await?;
        task["status"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("task {id}: no status in the answer"))
    }
}

/// Why a streamed answer is not a whole answer: the code of an error event, or
/// `stream_incomplete` when it did not end with `data: [DONE]`.
fn stream_error(text: &str) -> Option<String> {
    for data in text.lines().filter_map(|l| l.strip_prefix("data:")) {
        let event: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
        if let Some(error) = event.get("error").filter(|e| e.is_object()) {
            let code = error["code"].as_str().or(error["type"].as_str());
            return Some(code.unwrap_or("stream_error").to_owned());
        }
    }
    let done = text.lines().any(|l| l.trim() == "data: [DONE]");
    (!done).then(|| "stream_incomplete".to_owned())
}

/// Whether a whole answer (OpenAI's shape) is one a client can use: some content or a
/// tool call and, when JSON was asked for, content that is a JSON object.
fn usable(answer: &Value, wants_json: bool) -> bool {
    let message = &answer["choices"][0]["message"];
    let calls_tool = message["tool_calls"]
        .as_array()
        .is_some_and(|calls| !calls.is_empty());
    let content = message["content"].as_str().unwrap_or_default().trim();
    if content.is_empty() {
        return calls_tool;
    }
    !wants_json || serde_json::from_str::<Value>(content).is_ok_and(|v| v.is_object())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::usable;

    fn answer(content: &str) -> serde_json::Value {
        json!({"choices": [{"message": {"role": "assistant", "content": content}}]})
    }

    #[test]
    fn an_empty_answer_or_json_that_is_not_an_object_is_not_usable() {
        assert!(usable(&answer("Paris"), false));
        assert!(!usable(&answer("  "), false));
        assert!(!usable(&json!({"error": {}}), false));
        assert!(usable(&answer("{\"city\": \"Paris\"}"), true));
        assert!(!usable(&answer("\"Paris\""), true));
        assert!(!usable(&answer("{\"city\": "), true));
        let tool = json!({"choices": [{"message": {"content": null,
            "tool_calls": [{"id": "1", "type": "function"}]}}]});
        assert!(usable(&tool, true));
    }
}
