//! The bad-input catalogue, end to end: every public endpoint of the real binary is sent
//! inputs it must refuse (malformed and deeply nested JSON, wrong types, numbers past
//! every integer type, invalid UTF-8, oversized headers and bodies, unknown routes,
//! models and ids, limits out of range, wrong methods, bad query strings, empty
//! bodies), each a row of one table: the request, then the status and the stable code
//! from `docs/errors.md` it must get.
//!
//! Invariant 6 of DESIGN.md over real sockets: each refusal is a 4xx JSON error in the
//! gateway's format whose message says what is wrong; a good request after each one
//! is served; nothing reached the provider but the good requests; and the store is as
//! it was (tasks, steps, journals, escalations, workflows, the configuration history
//! and the targets' drain state, read through the API before and after). Invariant 7
//! too: the keys are recognisable fakes, and no response body or line the server
//! printed (at debug level) holds one.
//!
//! Adding a case is one line in [`catalogue`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, anthropic_error, chat_body, openai_error, serial};

const CLIENT_KEY_ENV: &str = "HOLDFAST_E2E_CLIENT_KEY";
const CLIENT_KEY: &str = "sk-test-SECRET-client-4f1d9c2b7a";
const PROVIDER_KEY_ENV: &str = "HOLDFAST_E2E_PROVIDER_KEY";
const PROVIDER_KEY: &str = "sk-test-SECRET-provider-8e3a61d0c5";
const BODY_LIMIT: usize = 64 * 1024;

/// One bad input and the answer it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    /// The path and query; `{task}`, `{escalation}` and `{job}` name the objects the
    /// test created first.
    path: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// Whether the valid client key is sent (every case but the key cases).
    key: bool,
    /// `Content-Type`; `application/json` unless a case tests content types.
    content_type: Option<&'static str>,
    /// Sent on a connection of its own: the server closes it after answering.
    fresh: bool,
    status: u16,
    /// The expected `error.code`; empty for hyper's own 431, which has no body.
    code: &'static str,
}

/// A case: `request` is `"METHOD /path?query"`.
fn bad(
    name: &'static str,
    request: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    let (method, path) = request.split_once(' ').expect("METHOD /path");
    let method = match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        other => panic!("unknown method {other}"),
    };
    Case {
        name,
        method,
        path: path.to_owned(),
        body: body.into(),
        headers: Vec::new(),
        key: true,
        content_type: Some("application/json"),
        fresh: false,
        status,
        code,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    fn no_key(mut self) -> Case {
        self.key = false;
        self
    }

    fn content_type(mut self, value: Option<&'static str>) -> Case {
        self.content_type = value;
        self
    }

    fn fresh(mut self) -> Case {
        self.fresh = true;
        self
    }
}

/// A valid chat body with `extra` appended verbatim as one more field.
fn chat(extra: &str) -> String {
    format!(r#"{{"model":"smart","messages":[{{"role":"user","content":"hi"}}],{extra}}}"#)
}

/// A chat body with `messages` as given.
fn chat_messages(messages: &str) -> String {
    format!(r#"{{"model":"smart","messages":{messages}}}"#)
}

/// A valid Anthropic body with `extra` appended verbatim as one more field.
fn anthropic(extra: &str) -> String {
    format!(
        r#"{{"model":"smart","max_tokens":16,"messages":[{{"role":"user","content":"hi"}}],{extra}}}"#
    )
}

/// TOML whose `{}` in key positions unbalanced the parser's depth count before
/// toml_parser 1.1.6, so that the nesting after it overflowed the stack.
fn unbalanced_toml(prefix: &str) -> String {
    let n = 3_000;
    format!(
        "{prefix}x = {{ {} a = {}1{} }}\n",
        "{}".repeat(n),
        "{ a = ".repeat(n),
        " }".repeat(n)
    )
}

/// Text nested `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

const WORKFLOW: &str = r#"{"name":"catalogue","version":1,
 "input_schema":{"type":"object","required":["topic"],"properties":{"topic":{"type":"string"}}},
 "steps":[{"name":"review","kind":"human","prompt":"Publish {{ input.topic }}?",
           "payload":{"topic":"{{ input.topic }}"},"timeout":"24h","depends_on":[]},
          {"name":"publish","kind":"worker","queue":"catalogue","payload":{"topic":"{{ input.topic }}"},
           "depends_on":[]}]}"#;

/// The catalogue: one row per bad input.
#[rustfmt::skip]
fn catalogue() -> Vec<Case> {
    let huge_chat = chat(&format!(r#""user":"{}""#, "x".repeat(BODY_LIMIT * 2)));
    vec![
        // POST /v1/chat/completions: the body.
        bad("chat: bad JSON", "POST /v1/chat/completions", r#"{"model": "smart", "messages": ["#, 400, "invalid_json"),
        bad("chat: empty body", "POST /v1/chat/completions", "", 400, "invalid_json"),
        bad("chat: trailing garbage", "POST /v1/chat/completions", chat(r#""n":1"#) + " garbage", 400, "invalid_json"),
        bad("chat: a JSON array", "POST /v1/chat/completions", format!("[{}]", chat(r#""n":1"#)), 400, "invalid_json"),
        bad("chat: a JSON string", "POST /v1/chat/completions", r#""hello""#, 400, "invalid_json"),
        bad("chat: null", "POST /v1/chat/completions", "null", 400, "invalid_json"),
        bad("chat: nested 10,000 deep", "POST /v1/chat/completions", nested(10_000), 400, "invalid_json"),
        bad("chat: content nested 5,000 deep", "POST /v1/chat/completions", chat_messages(&format!(r#"[{{"role":"user","content":{}}}]"#, nested(5_000))), 400, "invalid_json"),
        bad("chat: invalid UTF-8", "POST /v1/chat/completions", b"{\"model\":\"smart\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\xc3\x28\"}]}".to_vec(), 400, "invalid_json"),
        bad("chat: a lone surrogate escape", "POST /v1/chat/completions", chat_messages(r#"[{"role":"user","content":"\ud800"}]"#), 400, "invalid_json"),
        bad("chat: body over the limit", "POST /v1/chat/completions", huge_chat, 413, "request_too_large").fresh(),
        bad("chat: missing model", "POST /v1/chat/completions", r#"{"messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_json"),
        bad("chat: model is a number", "POST /v1/chat/completions", r#"{"model":42,"messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_json"),
        bad("chat: empty model", "POST /v1/chat/completions", r#"{"model":" ","messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_request"),
        bad("chat: unknown model", "POST /v1/chat/completions", r#"{"model":"no-such-route","messages":[{"role":"user","content":"hi"}]}"#, 404, "model_not_found"),
        bad("chat: model given twice", "POST /v1/chat/completions", chat(r#""model":"other""#), 400, "invalid_json"),
        bad("chat: missing messages", "POST /v1/chat/completions", r#"{"model":"smart"}"#, 400, "invalid_json"),
        bad("chat: messages is a string", "POST /v1/chat/completions", chat_messages(r#""hello""#), 400, "invalid_json"),
        bad("chat: messages is empty", "POST /v1/chat/completions", chat_messages("[]"), 400, "invalid_request"),
        bad("chat: message without a role", "POST /v1/chat/completions", chat_messages(r#"[{"content":"hi"}]"#), 400, "invalid_json"),
        bad("chat: unknown role", "POST /v1/chat/completions", chat_messages(r#"[{"role":"wizard","content":"hi"}]"#), 400, "invalid_json"),
        bad("chat: content is a number", "POST /v1/chat/completions", chat_messages(r#"[{"role":"user","content":7}]"#), 400, "invalid_json"),
        bad("chat: unknown content part", "POST /v1/chat/completions", chat_messages(r#"[{"role":"user","content":[{"type":"hologram"}]}]"#), 400, "invalid_json"),
        bad("chat: empty tool_call_id", "POST /v1/chat/completions", chat_messages(r#"[{"role":"tool","content":"x","tool_call_id":""}]"#), 400, "invalid_request"),
        bad("chat: negative max_tokens", "POST /v1/chat/completions", chat(r#""max_tokens":-5"#), 400, "invalid_json"),
        bad("chat: max_tokens past u32", "POST /v1/chat/completions", chat(r#""max_tokens":18446744073709551616"#), 400, "invalid_json"),
        bad("chat: max_tokens 1e20", "POST /v1/chat/completions", chat(r#""max_tokens":1e20"#), 400, "invalid_json"),
        bad("chat: fractional max_tokens", "POST /v1/chat/completions", chat(r#""max_tokens":1.5"#), 400, "invalid_json"),
        bad("chat: max_tokens is a string", "POST /v1/chat/completions", chat(r#""max_tokens":"lots""#), 400, "invalid_json"),
        bad("chat: max_tokens 0", "POST /v1/chat/completions", chat(r#""max_tokens":0"#), 400, "invalid_request"),
        bad("chat: temperature 5", "POST /v1/chat/completions", chat(r#""temperature":5"#), 400, "invalid_request"),
        bad("chat: temperature 1e400", "POST /v1/chat/completions", chat(r#""temperature":1e400"#), 400, "invalid_json"),
        bad("chat: temperature is a string", "POST /v1/chat/completions", chat(r#""temperature":"hot""#), 400, "invalid_json"),
        bad("chat: stream is a string", "POST /v1/chat/completions", chat(r#""stream":"yes""#), 400, "invalid_json"),
        bad("chat: tools is not a list", "POST /v1/chat/completions", chat(r#""tools":"get_weather""#), 400, "invalid_json"),
        bad("chat: five stop sequences", "POST /v1/chat/completions", chat(r#""stop":["a","b","c","d","e"]"#), 400, "invalid_request"),
        bad("chat: json_schema without its schema object", "POST /v1/chat/completions", chat(r#""response_format":{"type":"json_schema"}"#), 400, "invalid_json"),
        bad("chat: an invalid JSON schema", "POST /v1/chat/completions", chat(r#""response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":12}}}"#), 400, "invalid_response_format"),
        bad("chat: form-encoded text/plain", "POST /v1/chat/completions", "model=smart", 400, "invalid_json").content_type(Some("text/plain")),
        // The chat endpoint's headers.
        bad("chat: no key", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "missing_api_key").no_key(),
        bad("chat: wrong bearer key", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "invalid_api_key").no_key().header("authorization", "Bearer sk-test-wrong-key"),
        bad("chat: empty bearer key", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "missing_api_key").no_key().header("authorization", "Bearer "),
        bad("chat: basic auth", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "missing_api_key").no_key().header("authorization", "Basic dXNlcjpwYXNz"),
        bad("chat: wrong x-api-key", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "invalid_api_key").no_key().header("x-api-key", "sk-test-wrong-key"),
        bad("chat: key of invalid UTF-8", "POST /v1/chat/completions", chat(r#""n":1"#), 401, "invalid_api_key").no_key().header("authorization", b"Bearer \xff\xfe".to_vec()),
        bad("chat: deadline is not a number", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("x-holdfast-deadline-ms", "soon"),
        bad("chat: negative deadline", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("x-holdfast-deadline-ms", "-5"),
        bad("chat: deadline past u64", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("x-holdfast-deadline-ms", "99999999999999999999999"),
        bad("chat: a 300-byte agent name", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("x-holdfast-agent", "a".repeat(300)),
        bad("chat: a 32 KiB idempotency key", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("idempotency-key", "k".repeat(32 * 1024)),
        bad("chat: an empty idempotency key", "POST /v1/chat/completions", chat(r#""n":1"#), 400, "invalid_header").header("idempotency-key", ""),
        // hyper refuses a head over its buffer before any handler runs: 431, no body.
        bad("chat: a 1 MiB header", "POST /v1/chat/completions", chat(r#""n":1"#), 431, "").header("x-padding", "p".repeat(1 << 20)).fresh(),
        // POST /v1/messages: errors in Anthropic's shape.
        bad("messages: bad JSON", "POST /v1/messages", "null{", 400, "invalid_json"),
        bad("messages: missing max_tokens", "POST /v1/messages", r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_json"),
        bad("messages: negative max_tokens", "POST /v1/messages", r#"{"model":"smart","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_json"),
        bad("messages: max_tokens 0", "POST /v1/messages", r#"{"model":"smart","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#, 400, "invalid_request"),
        bad("messages: messages is a string", "POST /v1/messages", r#"{"model":"smart","max_tokens":10,"messages":"hi"}"#, 400, "invalid_json"),
        bad("messages: no messages", "POST /v1/messages", r#"{"model":"smart","max_tokens":10,"messages":[]}"#, 400, "invalid_request"),
        bad("messages: a system role in messages", "POST /v1/messages", r#"{"model":"smart","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}"#, 400, "invalid_json"),
        bad("messages: an untranslatable server tool", "POST /v1/messages", anthropic(r#""tools":[{"type":"web_search_20250305","name":"web_search"}]"#), 400, "invalid_request"),
        bad("messages: unknown model", "POST /v1/messages", r#"{"model":"nope","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#, 404, "model_not_found"),
        bad("messages: nested 10,000 deep", "POST /v1/messages", nested(10_000), 400, "invalid_json"),
        // Models, the ledger, targets, alerts and the summary.
        bad("models: POST", "POST /v1/models", "{}", 405, "method_not_allowed"),
        bad("ledger: unknown request id", "GET /v1/holdfast/requests/req_nope", "", 404, "not_found"),
        bad("ledger: an id of invalid UTF-8", "GET /v1/holdfast/requests/%FF%FE", "", 400, "invalid_request"),
        bad("targets: DELETE", "DELETE /v1/holdfast/targets", "", 405, "method_not_allowed"),
        bad("alerts: POST", "POST /v1/holdfast/alerts", "{}", 405, "method_not_allowed"),
        bad("summary: a query parameter", "GET /v1/holdfast/summary?window=5m", "", 400, "invalid_request"),
        // Workflows.
        bad("workflows: bad JSON", "POST /v1/workflows", "{\"name\":", 400, "invalid_json"),
        bad("workflows: empty body", "POST /v1/workflows", "", 400, "invalid_json"),
        bad("workflows: nested 10,000 deep", "POST /v1/workflows", nested(10_000), 400, "invalid_json"),
        bad("workflows: no steps", "POST /v1/workflows", r#"{"name":"empty","steps":[]}"#, 400, "invalid_input"),
        bad("workflows: negative version", "POST /v1/workflows", r#"{"name":"neg","version":-1,"steps":[{"name":"a","kind":"sleep","duration":"1s"}]}"#, 400, "invalid_input"),
        bad("workflows: version past u64", "POST /v1/workflows", r#"{"name":"big","version":18446744073709551616,"steps":[{"name":"a","kind":"sleep","duration":"1s"}]}"#, 400, "invalid_input"),
        bad("workflows: unknown step kind", "POST /v1/workflows", r#"{"name":"odd","steps":[{"name":"a","kind":"teleport"}]}"#, 400, "invalid_input"),
        bad("workflows: a template naming an unknown step", "POST /v1/workflows", r#"{"name":"t","steps":[{"name":"a","kind":"human","prompt":"{{ steps.nope.output }}"}]}"#, 400, "invalid_input"),
        bad("workflows: bad TOML", "POST /v1/workflows", "name = [", 400, "invalid_input").content_type(Some("application/toml")),
        bad("workflows: TOML with unbalanced inline tables", "POST /v1/workflows", unbalanced_toml("name = \"deep\"\n"), 400, "invalid_input").content_type(Some("application/toml")),
        bad("workflows: TOML of invalid UTF-8", "POST /v1/workflows", b"name = \"\xff\"".to_vec(), 400, "invalid_json").content_type(Some("application/toml")),
        bad("workflows: a registered version, changed", "POST /v1/workflows", WORKFLOW.replace("24h", "12h"), 409, "conflict"),
        bad("workflows: unknown name", "GET /v1/workflows/nope", "", 404, "not_found"),
        bad("workflows: a name of invalid UTF-8", "GET /v1/workflows/%C3%28", "", 400, "invalid_request"),
        bad("workflows: version 0", "GET /v1/workflows/catalogue/versions/0", "", 400, "invalid_request"),
        bad("workflows: version -1", "GET /v1/workflows/catalogue/versions/-1", "", 400, "invalid_request"),
        bad("workflows: version past u32", "GET /v1/workflows/catalogue/versions/99999999999", "", 400, "invalid_request"),
        bad("workflows: PUT", "PUT /v1/workflows", WORKFLOW, 405, "method_not_allowed"),
        // Tasks and the retry queue.
        bad("tasks: unknown workflow", "POST /v1/tasks", r#"{"workflow":"nope","input":{}}"#, 404, "not_found"),
        bad("tasks: missing input", "POST /v1/tasks", r#"{"workflow":"catalogue"}"#, 400, "invalid_json"),
        bad("tasks: unknown field", "POST /v1/tasks", r#"{"workflow":"catalogue","input":{"topic":"a"},"priority":1}"#, 400, "invalid_json"),
        bad("tasks: input against its schema", "POST /v1/tasks", r#"{"workflow":"catalogue","input":{"topic":5}}"#, 400, "invalid_input"),
        bad("tasks: input nested 5,000 deep", "POST /v1/tasks", format!(r#"{{"workflow":"catalogue","input":{}}}"#, nested(5_000)), 400, "invalid_json"),
        bad("tasks: input number 1e400", "POST /v1/tasks", r#"{"workflow":"catalogue","input":{"topic":1e400}}"#, 400, "invalid_json"),
        bad("tasks: keys in header and body differ", "POST /v1/tasks", r#"{"workflow":"catalogue","input":{"topic":"a"},"idempotency_key":"a"}"#, 400, "invalid_request").header("idempotency-key", "b"),
        bad("tasks: limit 0", "GET /v1/tasks?limit=0", "", 400, "invalid_request"),
        bad("tasks: negative limit", "GET /v1/tasks?limit=-1", "", 400, "invalid_request"),
        bad("tasks: limit past u64", "GET /v1/tasks?limit=99999999999999999999999", "", 400, "invalid_request"),
        bad("tasks: unknown status", "GET /v1/tasks?status=bogus", "", 400, "invalid_request"),
        bad("tasks: cursor is not a number", "GET /v1/tasks?cursor=abc", "", 400, "invalid_request"),
        bad("tasks: unknown query parameter", "GET /v1/tasks?order=asc", "", 400, "invalid_request"),
        bad("tasks: a query of invalid UTF-8", "GET /v1/tasks?workflow=%FF", "", 400, "invalid_request"),
        bad("tasks: unknown id", "GET /v1/tasks/t-nope", "", 404, "not_found"),
        bad("tasks: an id of invalid UTF-8", "GET /v1/tasks/%FF%FE", "", 400, "invalid_request"),
        bad("tasks: steps of an unknown id", "GET /v1/tasks/t-nope/steps", "", 404, "not_found"),
        bad("tasks: journal after -1", "GET /v1/tasks/{task}/journal?after=-1", "", 400, "invalid_request"),
        bad("tasks: journal limit 1001", "GET /v1/tasks/{task}/journal?limit=1001", "", 400, "invalid_request"),
        bad("tasks: cancel an unknown id", "POST /v1/tasks/t-nope/cancel", "", 404, "not_found"),
        bad("tasks: cancel with a reason of the wrong type", "POST /v1/tasks/{task}/cancel", r#"{"reason":5}"#, 400, "invalid_json"),
        bad("tasks: cancel with an unknown field", "POST /v1/tasks/{task}/cancel", r#"{"force":true}"#, 400, "invalid_json"),
        bad("retry queue: limit 0", "GET /v1/retry-queue?limit=0", "", 400, "invalid_request"),
        // Workers.
        bad("workers: claim without worker_id", "POST /v1/workers/claim", r#"{"queue":"catalogue"}"#, 400, "invalid_json"),
        bad("workers: claim with lease_ms 0", "POST /v1/workers/claim", r#"{"queue":"catalogue","worker_id":"w","lease_ms":0}"#, 400, "invalid_request"),
        bad("workers: claim with lease_ms past its range", "POST /v1/workers/claim", r#"{"queue":"catalogue","worker_id":"w","lease_ms":18446744073709551615}"#, 400, "invalid_request"),
        bad("workers: claim with limit 0", "POST /v1/workers/claim", r#"{"queue":"catalogue","worker_id":"w","limit":0}"#, 400, "invalid_request"),
        bad("workers: claim with a negative limit", "POST /v1/workers/claim", r#"{"queue":"catalogue","worker_id":"w","limit":-1}"#, 400, "invalid_json"),
        bad("workers: GET claim", "GET /v1/workers/claim", "", 405, "method_not_allowed"),
        bad("workers: heartbeat with a stale token", "POST /v1/workers/jobs/{job}/heartbeat", r#"{"token":999}"#, 409, "stale_lease"),
        bad("workers: heartbeat with a token of the wrong type", "POST /v1/workers/jobs/{job}/heartbeat", r#"{"token":"1"}"#, 400, "invalid_json"),
        bad("workers: complete with output and error", "POST /v1/workers/jobs/{job}/complete", r#"{"token":1,"output":1,"error":"x"}"#, 400, "invalid_request"),
        bad("workers: complete with neither", "POST /v1/workers/jobs/{job}/complete", r#"{"token":1}"#, 400, "invalid_request"),
        bad("workers: complete with a stale token", "POST /v1/workers/jobs/{job}/complete", r#"{"token":999,"output":{}}"#, 409, "stale_lease"),
        bad("workers: complete with a token past u64", "POST /v1/workers/jobs/{job}/complete", r#"{"token":18446744073709551616,"output":{}}"#, 400, "invalid_json"),
        bad("workers: complete an unknown job", "POST /v1/workers/jobs/nope/complete", r#"{"token":1,"output":{}}"#, 404, "not_found"),
        // Escalations.
        bad("escalations: unknown status", "GET /v1/escalations?status=closed", "", 400, "invalid_request"),
        bad("escalations: limit 0", "GET /v1/escalations?limit=0", "", 400, "invalid_request"),
        bad("escalations: unknown id", "GET /v1/escalations/nope", "", 404, "not_found"),
        bad("escalations: an id of invalid UTF-8", "GET /v1/escalations/%FF", "", 400, "invalid_request"),
        bad("escalations: resolve with an unknown action", "POST /v1/escalations/{escalation}/resolve", r#"{"action":"maybe"}"#, 400, "invalid_json"),
        bad("escalations: edit without a value", "POST /v1/escalations/{escalation}/resolve", r#"{"action":"edit"}"#, 400, "invalid_request"),
        bad("escalations: approve with a value", "POST /v1/escalations/{escalation}/resolve", r#"{"action":"approve","value":1}"#, 400, "invalid_request"),
        bad("escalations: resolve with an empty body", "POST /v1/escalations/{escalation}/resolve", "", 400, "invalid_json"),
        bad("escalations: resolve an unknown id", "POST /v1/escalations/nope/resolve", r#"{"action":"approve"}"#, 404, "not_found"),
        // Configuration.
        bad("config: empty body", "POST /admin/config", "", 400, "invalid_config").content_type(Some("application/toml")),
        bad("config: invalid UTF-8", "POST /admin/config", b"[server]\nlisten = \"\xff\"".to_vec(), 400, "invalid_config").content_type(Some("application/toml")),
        bad("config: bad TOML", "POST /admin/config", "[routes.smart\n", 400, "invalid_config").content_type(Some("application/toml")),
        bad("config: unbalanced inline tables", "POST /admin/config", unbalanced_toml(""), 400, "invalid_config").content_type(Some("application/toml")),
        bad("config: unknown field", "POST /admin/config", "[server]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n", 400, "invalid_config").content_type(Some("application/toml")),
        bad("config: sent as JSON", "POST /admin/config", r#"{"server":{}}"#, 400, "invalid_header"),
        bad("config: over 1 MiB", "POST /admin/config", "#".repeat(2 << 20), 413, "request_too_large").content_type(Some("application/toml")).fresh(),
        bad("config: roll back to an unknown version", "POST /admin/config/rollback", r#"{"version":999}"#, 404, "not_found"),
        bad("config: roll back to version -1", "POST /admin/config/rollback", r#"{"version":-1}"#, 400, "invalid_json"),
        bad("config: roll back with no earlier version", "POST /admin/config/rollback", "", 409, "conflict"),
        bad("config: history limit 0", "GET /admin/config/history?limit=0", "", 400, "invalid_request"),
        bad("config: history limit is not a number", "GET /admin/config/history?limit=abc", "", 400, "invalid_request"),
        bad("config: history with an unknown parameter", "GET /admin/config/history?since=1", "", 400, "invalid_request"),
        bad("config: version is not a number", "GET /admin/config/versions/abc", "", 400, "invalid_request"),
        bad("config: unknown version", "GET /admin/config/versions/999", "", 404, "not_found"),
        bad("config: POST history", "POST /admin/config/history", "", 405, "method_not_allowed"),
        // Targets.
        bad("targets: drain an unknown target", "POST /admin/targets/nope/drain", r#"{"for":"30s"}"#, 404, "not_found"),
        bad("targets: drain for a bad duration", "POST /admin/targets/primary/drain", r#"{"for":"forever"}"#, 400, "invalid_request"),
        bad("targets: drain for 0s", "POST /admin/targets/primary/drain", r#"{"for":"0s"}"#, 400, "invalid_request"),
        bad("targets: drain for 25h", "POST /admin/targets/primary/drain", r#"{"for":"25h"}"#, 400, "invalid_request"),
        bad("targets: drain for 99999999999999999999h", "POST /admin/targets/primary/drain", r#"{"for":"99999999999999999999h"}"#, 400, "invalid_request"),
        bad("targets: drain without for", "POST /admin/targets/primary/drain", "{}", 400, "invalid_json"),
        bad("targets: drain for a number", "POST /admin/targets/primary/drain", r#"{"for":30}"#, 400, "invalid_json"),
        bad("targets: GET drain", "GET /admin/targets/primary/drain", "", 405, "method_not_allowed"),
        bad("targets: restore a name of invalid UTF-8", "POST /admin/targets/%FF/restore", "", 400, "invalid_request"),
        // Unknown routes.
        bad("unknown path", "GET /v2/nothing", "", 404, "not_found"),
        bad("unknown path under /v1", "POST /v1/no-such-endpoint", "{}", 404, "not_found"),
        bad("GET on the chat endpoint", "GET /v1/chat/completions", "", 405, "method_not_allowed"),
        bad("unknown dashboard file", "GET /dashboard/nope.js", "", 404, "not_found"),
    ]
}

/// The objects the test created, whose ids the cases name.
struct Ids {
    task: String,
    escalation: String,
    job: String,
}

impl Ids {
    fn fill(&self, path: &str) -> String {
        path.replace("{task}", &self.task)
            .replace("{escalation}", &self.escalation)
            .replace("{job}", &self.job)
    }
}

/// Registers the workflow, submits a task that waits on a person and a worker, and
/// claims its job, so that every id a case names exists.
async fn populate(gateway: &Gateway) -> Ids {
    let (status, _) = gateway
        .post_json("/v1/workflows", &serde_json::from_str(WORKFLOW).unwrap())
        .await;
    assert_eq!(status, 201, "registering the workflow");
    let (status, task) = gateway
        .post_json(
            "/v1/tasks",
            &json!({"workflow": "catalogue", "input": {"topic": "rust"}, "idempotency_key": "catalogue-1"}),
        )
        .await;
    assert_eq!(status, 201, "submitting the task: {task}");
    let task = task["task_id"].as_str().unwrap().to_owned();
    let mut job = None;
    let mut escalation = None;
    for _ in 0..200 {
        if job.is_none() {
            let (_, claimed) = gateway
                .post_json(
                    "/v1/workers/claim",
                    &json!({"queue": "catalogue", "worker_id": "w1", "lease_ms": 3_600_000}),
                )
                .await;
            job = claimed["jobs"][0]["job_id"].as_str().map(str::to_owned);
        }
        if escalation.is_none() {
            let list = gateway.get_json("/v1/escalations").await;
            escalation = list["escalations"][0]["escalation_id"]
                .as_str()
                .map(str::to_owned);
        }
        if job.is_some() && escalation.is_some() {
            break;
        }
        support::pause(std::time::Duration::from_millis(50)).await;
    }
    Ids {
        task,
        escalation: escalation.expect("the human step opened an escalation"),
        job: job.expect("the worker step queued a job"),
    }
}

/// What the store holds, as the API shows it.
async fn snapshot(gateway: &Gateway, ids: &Ids) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/v1/workflows".to_owned(),
        "/v1/workflows/catalogue/versions/1".to_owned(),
        "/v1/tasks?limit=1000".to_owned(),
        format!("/v1/tasks/{}", ids.task),
        format!("/v1/tasks/{}/steps", ids.task),
        format!("/v1/tasks/{}/journal?limit=1000", ids.task),
        "/v1/escalations?status=all&limit=1000".to_owned(),
        "/v1/retry-queue?limit=1000".to_owned(),
        "/admin/config/history?limit=1000".to_owned(),
        "/v1/holdfast/targets".to_owned(),
    ] {
        let value = gateway.get_json(&path).await;
        assert!(value.get("error").is_none(), "GET {path}: {value}");
        all.insert(path, value);
    }
    let text = gateway
        .client
        .get(gateway.url("/admin/config/versions/1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    all.insert("/admin/config/versions/1".to_owned(), Value::String(text));
    Value::Object(all)
}

/// Sends `case` on `client` (which sends no key of its own), or on a connection of its
/// own when the case says so.
async fn send(gateway: &Gateway, client: &reqwest::Client, case: &Case, ids: &Ids) -> Answer {
    let mut headers = HeaderMap::new();
    if case.key {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {CLIENT_KEY}")).unwrap(),
        );
    }
    if let Some(content_type) = case.content_type {
        headers.insert("content-type", HeaderValue::from_static(content_type));
    }
    for (name, value) in &case.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let client = if case.fresh {
        support::client_without_pool()
    } else {
        client.clone()
    };
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let response = client
        .request(method, gateway.url(&ids.fill(&case.path)))
        .headers(headers)
        .body(case.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: the request failed at the transport: {e}", case.name));
    Answer {
        status: response.status().as_u16(),
        content_type: support::header(response.headers(), "content-type"),
        allow: support::header(response.headers(), "allow"),
        text: response.text().await.unwrap_or_default(),
    }
}

/// What came back.
struct Answer {
    status: u16,
    content_type: Option<String>,
    /// The `Allow` header (on a 405).
    allow: Option<String>,
    text: String,
}

/// What is wrong with the answer to `case`, if anything.
fn judge(case: &Case, answer: &Answer) -> Result<(), String> {
    let (status, text) = (answer.status, answer.text.as_str());
    let content_type = answer.content_type.as_deref();
    if status == 405 && answer.allow.is_none() {
        return Err(format!("a 405 without an Allow header: {text}"));
    }
    if status != case.status {
        return Err(format!("status {status}, want {}: {text}", case.status));
    }
    if case.code.is_empty() {
        return Ok(());
    }
    if content_type != Some("application/json") {
        return Err(format!("content type {content_type:?}: {text}"));
    }
    let body = if case.path.starts_with("/v1/messages") {
        anthropic_error(text)?
    } else {
        openai_error(text)?
    };
    let code = body["error"]["code"].as_str().unwrap_or_default();
    if code != case.code {
        return Err(format!("code {code:?}, want {:?}: {text}", case.code));
    }
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if message.len() < 12 {
        return Err(format!("the message does not say what is wrong: {text}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_4xx_json_error_and_changes_nothing() {
    let _serial = serial().await;
    let provider = Mock::start_with_env(
        "openai",
        &["--api-key-env", PROVIDER_KEY_ENV],
        &[(PROVIDER_KEY_ENV, PROVIDER_KEY)],
    );
    let config = ConfigBuilder::new()
        .server(&format!("body_limit = {BODY_LIMIT}"))
        .provider("p-primary", &format!("format = \"openai\"\nbase_url = \"{}\"\nkey_env = \"{PROVIDER_KEY_ENV}\"", provider.base_url()))
        .raw("[targets.primary]\nprovider = \"p-primary\"\nmodel = \"mock-primary\"\ncontext_window = 100000")
        .route("smart", &["primary"], "")
        .client_key("agents", CLIENT_KEY_ENV)
        .raw("[logging]\nfilter = \"debug\"");
    let mut gateway = Gateway::start_with_env(
        &config,
        &[
            (CLIENT_KEY_ENV, CLIENT_KEY),
            (PROVIDER_KEY_ENV, PROVIDER_KEY),
        ],
    );
    gateway.client = keyed_client();
    let ids = populate(&gateway).await;
    let before = snapshot(&gateway, &ids).await;
    // The snapshot holds what the cases could break.
    assert_eq!(
        before[&format!("/v1/tasks/{}", ids.task)]["status"],
        "waiting",
        "{before}"
    );
    assert_eq!(
        before["/v1/escalations?status=all&limit=1000"]["escalations"][0]["status"],
        "open"
    );
    assert_eq!(
        before["/admin/config/history?limit=1000"]["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let cases = catalogue();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let plain = support::client();
    let mut bodies = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let answer = send(&gateway, &plain, case, &ids).await;
        let shown: String = answer.text.chars().take(200).collect();
        eprintln!("{:<48} {} {shown}", case.name, answer.status);
        if let Err(problem) = judge(case, &answer) {
            failures.push(format!("{}: {problem}", case.name));
        }
        bodies.push(answer.text);
        // Still serving.
        let good = gateway
            .chat(&chat_body("smart", "hello", false))
            .send()
            .await
            .unwrap();
        let status = good.status();
        let text = good.text().await.unwrap();
        assert!(
            status.is_success(),
            "a good request after {:?}: {status}: {text}",
            case.name
        );
        bodies.push(text);
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        provider.total().await,
        cases.len() as u64,
        "only the good requests reached the provider: {}",
        provider.stats().await
    );
    let after = snapshot(&gateway, &ids).await;
    for (path, value) in before.as_object().unwrap() {
        assert_eq!(&after[path], value, "GET {path} changed");
    }

    for (name, secret) in [("client key", CLIENT_KEY), ("provider key", PROVIDER_KEY)] {
        for body in &bodies {
            assert!(
                !body.contains(secret),
                "the {name} appears in a response body: {body}"
            );
        }
        let output = gateway.process.output();
        assert!(
            !output.contains(secret),
            "the {name} appears in the server's output:\n{output}"
        );
        assert!(
            !output.contains("SECRET"),
            "part of a key appears in the server's output:\n{output}"
        );
    }
}

/// The test's client: the client key on every request (the cases that test keys replace
/// or drop it).
fn keyed_client() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {CLIENT_KEY}")).unwrap(),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An answer the server sends before it has read the request (a 413 for a body over the
/// limit, a 431 for a head over the limit) reaches a client that is still sending, every
/// time: the server lingers on close instead of resetting the connection, which could
/// destroy the answer before the client read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_before_the_request_was_read_arrives_every_time() {
    let _serial = serial().await;
    let provider = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .server(&format!("body_limit = {BODY_LIMIT}"))
        .provider("p-primary", &format!("format = \"openai\"\nbase_url = \"{}\"", provider.base_url()))
        .raw("[targets.primary]\nprovider = \"p-primary\"\nmodel = \"mock-primary\"\ncontext_window = 100000")
        .route("smart", &["primary"], "")
        .client_key("agents", CLIENT_KEY_ENV);
    let gateway = Gateway::start_with_env(&config, &[(CLIENT_KEY_ENV, CLIENT_KEY)]);
    let config_text = "#".repeat(2 << 20);
    let chat = chat(&format!(r#""pad":"{}""#, " ".repeat(2 << 20)));
    for attempt in 0..20 {
        let client = keyed_client();
        let requests = [
            (
                client
                    .post(gateway.url("/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(chat.clone()),
                413,
            ),
            (
                client
                    .post(gateway.url("/admin/config"))
                    .header("content-type", "application/toml")
                    .body(config_text.clone()),
                413,
            ),
            (
                client
                    .post(gateway.url("/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .header("x-padding", "p".repeat(1 << 20))
                    .body("{}"),
                431,
            ),
        ];
        for (request, status) in requests {
            let answer = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("attempt {attempt}: the {status} was lost: {e:?}"));
            assert_eq!(answer.status().as_u16(), status, "attempt {attempt}");
        }
    }
    assert_eq!(provider.total().await, 0, "nothing reached the provider");
}
