//! What the client commands (`workflow`, `task`, `escalations`) share: where the server
//! is, the key to present, one request function, and plain-text tables.
//!
//! The decision: these commands are HTTP clients of a running `holdfast serve`, not a
//! second door into the store, so they work against any deployment and go through the
//! same authentication, validation and idempotency as every other client. A refusal is
//! printed with the server's own message (and every problem with its field path) and
//! exits 1; a flag or an argument the command cannot use exits 2.

use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::Value;

use super::usage;

/// The default server address.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Remote {
    /// The holdfast server's base URL.
    #[arg(long, env = "HOLDFAST_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// The client key to present (`Authorization: Bearer KEY`).
    #[arg(long, env = "HOLDFAST_CLIENT_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One request to send.
pub(crate) struct Request<'a> {
    pub(crate) method: reqwest::Method,
    pub(crate) path: &'a str,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    /// A text body and its content type, sent instead of `body` (a configuration).
    pub(crate) text: Option<(&'static str, String)>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl<'a> Request<'a> {
    /// A `GET path`.
    pub(crate) fn get(path: &'a str) -> Self {
        Request {
            method: reqwest::Method::GET,
            path,
            query: Vec::new(),
            body: None,
            text: None,
            headers: Vec::new(),
        }
    }

    /// A `POST path` with a text body of `content_type`.
    pub(crate) fn post_text(path: &'a str, content_type: &'static str, text: String) -> Self {
        Request {
            method: reqwest::Method::POST,
            text: Some((content_type, text)),
            ..Request::get(path)
        }
    }

    /// A `POST path` with a JSON body.
    pub(crate) fn post(path: &'a str, body: Value) -> Self {
        Request {
            method: reqwest::Method::POST,
            body: Some(body),
            ..Request::get(path)
        }
    }
}

impl Remote {
    /// The server's base URL, checked to be one.
    pub(crate) fn server(&self) -> anyhow::Result<&str> {
        let base = self.server.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(usage(format!(
                "--server {base:?}: expected a URL like {DEFAULT_SERVER}"
            )));
        }
        Ok(base)
    }

    /// The client key to present, if any.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Sends `request`; answers the status and JSON body of a 2xx, else an error with
    /// the server's message.
    pub(crate) fn send(&self, request: Request<'_>) -> anyhow::Result<(u16, Value)> {
        let base = self.server()?;
        let url = format!("{base}{}", request.path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?;
            let mut builder = client.request(request.method, &url).query(&request.query);
            if let Some(key) = &self.key {
                builder = builder.bearer_auth(key);
            }
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            if let Some((content_type, text)) = request.text {
                builder = builder
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(text);
            }
            let response = builder
                .send()
                .await
                .with_context(|| format!("cannot reach holdfast at {base}"))?;
            let status = response.status().as_u16();
            let text = response
                .text()
                .await
                .with_context(|| format!("reading the answer of {base}"))?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if (200..300).contains(&status) {
                Ok((status, body))
            } else {
                Err(anyhow!(refusal(status, &body)))
            }
        })
    }
}

/// The server's refusal as one message: status, message, then each problem.
fn refusal(status: u16, body: &Value) -> String {
    let error = &body["error"];
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            body.as_str()
                .map_or_else(|| body.to_string(), str::to_owned)
        });
    let mut text = match error["code"].as_str() {
        Some(code) => format!("the server answered {status} {code}: {message}"),
        None => format!("the server answered {status}: {message}"),
    };
    if let Some(problems) = error["problems"].as_array().filter(|p| p.len() > 1) {
        for p in problems {
            if let Some(line) = p["line"].as_u64() {
                // A configuration problem: `line:column: field: message`.
                let column = p["column"].as_u64().unwrap_or(0);
                let field = p["field"]
                    .as_str()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                let message = p["message"].as_str().unwrap_or_default();
                text.push_str(&format!("\n  {line}:{column}: {field}{message}"));
                continue;
            }
            let path = p["path"]
                .as_str()
                .or(p["field"].as_str())
                .unwrap_or_default();
            let message = p["message"].as_str().unwrap_or_default();
            text.push_str(&format!("\n  {path}: {message}"));
        }
    }
    text
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A field as table text: strings bare, null as `-`, the rest as JSON.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows under `headers`, columns padded to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints `fields` of `value` as `name: value` lines.
pub(crate) fn print_fields(value: &Value, fields: &[&str]) {
    let width = fields.iter().map(|f| f.len()).max().unwrap_or(0);
    for field in fields {
        println!(
            "{:<width$}  {}",
            format!("{field}:"),
            cell(&value[*field]),
            width = width + 1
        );
    }
}

/// Parses a JSON argument, naming the flag it came from.
pub(crate) fn json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| usage(format!("{flag}: not valid JSON: {e}")))
}
