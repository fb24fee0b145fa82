//! OpenTelemetry traces end to end: `holdfast serve` exporting over OTLP/HTTP, and over
//! OTLP/gRPC, to receivers in this test, which decode each `ExportTraceServiceRequest`
//! with the OpenTelemetry protobuf types (the gRPC one is a tonic server).
//!
//! One request that retried once and fell back must arrive as one trace under the
//! client's `traceparent`: the server span and three attempt spans with their outcome
//! classes, each attempt's span id being the one its provider heard. One workflow task
//! must arrive as a task span with its steps, the tool having heard its step's span, and
//! its `llm` step's model call with a request span and an attempt span under the step,
//! as a client's call has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, chat_body, pause, serial};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector, and a tool that notes the `traceparent` it hears.
struct Receiver {
    base: String,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    tool_heard: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let tool_heard = Arc::new(Mutex::new(Vec::new()));
        let (kept, heard) = (Arc::clone(&spans), Arc::clone(&tool_heard));
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(move |body: Bytes| async move {
                    keep(&kept, ExportTraceServiceRequest::decode(body).unwrap());
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }),
            )
            .route(
                "/tool",
                get(move |headers: HeaderMap| async move {
                    let parent = headers.get("traceparent").and_then(|v| v.to_str().ok());
                    heard.lock().unwrap().push(parent.unwrap_or("").to_owned());
                    axum::Json(json!({"tool": "ok"}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            base: format!("http://{addr}"),
            spans,
            tool_heard,
        }
    }

    /// The spans of trace `trace` (hex), once `count` arrived (or after 15 s).
    async fn trace(&self, trace: &str, count: usize) -> Vec<Span> {
        for _ in 0..150 {
            let found = self.of(trace);
            if found.len() >= count {
                return found;
            }
            pause(Duration::from_millis(100)).await;
        }
        self.of(trace)
    }

    fn of(&self, trace: &str) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|(service, span)| service == "holdfast-test" && hex(&span.trace_id) == trace)
            .map(|(_, span)| span.clone())
            .collect()
    }
}

type Spans = Arc<Mutex<Vec<(String, Span)>>>;

/// Keeps every span of `request` with its service's name.
fn keep(spans: &Spans, request: ExportTraceServiceRequest) {
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.lock().unwrap().push((service.clone(), span));
            }
        }
    }
}

/// An OTLP/gRPC collector: tonic's server with the OpenTelemetry trace service.
struct GrpcCollector {
    spans: Spans,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.spans, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// A receiver whose collector speaks OTLP over gRPC (its `base` is the endpoint).
    async fn start_grpc() -> Receiver {
        let spans: Spans = Arc::default();
        let collector = GrpcCollector {
            spans: Arc::clone(&spans),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Receiver {
            base: format!("http://{addr}"),
            spans,
            tool_heard: Arc::default(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            Any::IntValue(i) => Some(i.to_string()),
            Any::DoubleValue(d) => Some(d.to_string()),
            Any::BoolValue(b) => Some(b.to_string()),
            Any::ArrayValue(a) => Some(
                a.values
                    .iter()
                    .filter_map(|v| match v.value.as_ref()? {
                        Any::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    })
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), text(&span.attributes, &kv.key)?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_and_failed_over_request_is_one_trace_under_the_clients_span_and_a_task_has_its_steps()
 {
    let _serial = serial().await;
    let receiver = Receiver::start().await;
    let primary = Mock::start("openai", &["--rate-503", "1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .policy(
            "twice",
            r#"retry = { max_attempts = 2, base = "10ms", cap = "20ms", jitter = "none" }"#,
        )
        .route("smart", &["primary", "fallback"], r#"policy = "twice""#)
        .route("warm", &["fallback"], "")
        .raw(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nprotocol = \"http\"\nservice_name = \"holdfast-test\"\n\n\
             [engine.egress]\nallow = [\"{}/*\"]\n",
            receiver.base, receiver.base
        ));
    let gateway = Gateway::start(&config);

    let response = gateway
        .chat(&chat_body("smart", "hello", false))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let spans = receiver.trace(CLIENT_TRACE, 4).await;
    let server: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(server.len(), 1, "one server span: {spans:#?}");
    let server = server[0];
    assert_eq!(
        hex(&server.parent_span_id),
        CLIENT_SPAN,
        "under the client's span"
    );
    assert_eq!(server.name, "chat smart");
    assert_eq!(server.trace_state, "vendor=abc");
    let at = attributes(server);
    assert_eq!(at["holdfast.outcome"], "ok", "{at:?}");
    assert_eq!(at["gen_ai.request.model"], "smart");
    assert_eq!(at["holdfast.attempts"], "3");

    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(attempts.len(), 3, "three attempt spans: {spans:#?}");
    attempts.sort_by_key(|s| attributes(s)["holdfast.attempt"].parse::<u32>().unwrap());
    for span in &attempts {
        assert_eq!(
            span.parent_span_id, server.span_id,
            "an attempt is the request's child"
        );
        assert!(span.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= server.end_time_unix_nano + 1_000_000);
    }
    let [first, second, third] = [attempts[0], attempts[1], attempts[2]].map(attributes);
    assert_eq!(
        (
            first["holdfast.target"].as_str(),
            first["holdfast.outcome"].as_str()
        ),
        ("primary", "overloaded"),
        "{first:?}"
    );
    assert_eq!(first["error.type"], "overloaded");
    assert!(
        first["holdfast.retry_delay_ms"].parse::<f64>().unwrap() >= 0.0,
        "{first:?}"
    );
    assert!(first.contains_key("holdfast.breaker_state"), "{first:?}");
    assert_eq!(
        (
            second["holdfast.target"].as_str(),
            second["holdfast.outcome"].as_str()
        ),
        ("primary", "overloaded"),
        "{second:?}"
    );
    assert_eq!(
        second["holdfast.fallback_reason"], "attempts_exhausted",
        "{second:?}"
    );
    assert_eq!(
        (
            third["holdfast.target"].as_str(),
            third["holdfast.outcome"].as_str()
        ),
        ("fallback", "ok"),
        "{third:?}"
    );
    assert!(!third.contains_key("error.type"));
    assert_eq!(third["gen_ai.system"], "openai");
    assert_eq!(third["gen_ai.request.model"], "smart");
    assert!(!third["gen_ai.response.model"].is_empty());
    assert!(
        third["gen_ai.usage.input_tokens"].parse::<u64>().unwrap() > 0,
        "{third:?}"
    );
    assert!(
        third["gen_ai.usage.output_tokens"].parse::<u64>().unwrap() > 0,
        "{third:?}"
    );
    assert_eq!(third["gen_ai.response.finish_reasons"], "stop");
    assert!(third.contains_key("holdfast.cost_usd"));

    // Each provider heard its own attempt's span, in the client's trace.
    let heard = |requests: Vec<Value>| -> Vec<String> {
        requests
            .iter()
            .filter_map(|r| r["traceparent"].as_str().map(str::to_owned))
            .collect()
    };
    let expected = |span: &Span| format!("00-{CLIENT_TRACE}-{}-01", hex(&span.span_id));
    let primary_heard = heard(primary.requests().await);
    assert!(
        primary_heard.contains(&expected(attempts[0])),
        "{primary_heard:?}"
    );
    assert!(
        primary_heard.contains(&expected(attempts[1])),
        "{primary_heard:?}"
    );
    assert_eq!(
        heard(fallback.requests().await),
        vec![expected(attempts[2])]
    );

    // A workflow task: its span, with a span per step under it.
    let workflow = json!({"name": "traced", "steps": [
        {"name": "fetch", "kind": "http", "method": "GET", "url": format!("{}/tool", receiver.base)},
        {"name": "ask", "kind": "llm", "route": "warm", "prompt": "hello"}
    ]});
    let (status, body) = gateway.post_json("/v1/workflows", &workflow).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, task) = gateway
        .post_json("/v1/tasks", &json!({"workflow": "traced", "input": {}}))
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let task = gateway.get_json(&format!("/v1/tasks/{id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            assert_eq!(task["status"], "succeeded", "{task}");
            break;
        }
        pause(Duration::from_millis(50)).await;
    }
    let heard = receiver.tool_heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 1, "the tool was called once: {heard:?}");
    let trace = heard[0].split('-').nth(1).unwrap().to_owned();
    let spans = receiver.trace(&trace, 5).await;
    let task_span = spans
        .iter()
        .find(|s| s.name == "task traced")
        .expect("the task's span");
    assert!(
        task_span.parent_span_id.is_empty(),
        "a task starts its own trace"
    );
    assert_eq!(attributes(task_span)["holdfast.task_id"], id);
    assert_eq!(attributes(task_span)["holdfast.outcome"], "succeeded");
    let mut steps: Vec<(String, &Span)> = spans
        .iter()
        .filter(|s| s.parent_span_id == task_span.span_id)
        .map(|s| (attributes(s)["holdfast.step"].clone(), s))
        .collect();
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ask", "fetch"], "{spans:#?}");
    let fetch = steps[1].1;
    assert_eq!(
        fetch.kind,
        SpanKind::Client as i32,
        "a tool call is a client span"
    );
    assert_eq!(
        heard[0],
        format!("00-{trace}-{}-01", hex(&fetch.span_id)),
        "the tool heard its step's span"
    );
    for (_, step) in &steps {
        assert!(step.start_time_unix_nano >= task_span.start_time_unix_nano);
    }
    // The `llm` step's model call, made in process: a request span under the step's
    // span, and an attempt span under it with the attributes a client's attempt has;
    // the provider heard the attempt's span.
    let ask = steps[0].1;
    let call = spans
        .iter()
        .find(|s| s.parent_span_id == ask.span_id)
        .unwrap_or_else(|| panic!("the ask step's model call: {spans:#?}"));
    assert_eq!(call.name, "chat warm");
    assert_eq!(call.kind, SpanKind::Internal as i32, "made in process");
    let attempt = spans
        .iter()
        .find(|s| s.parent_span_id == call.span_id)
        .unwrap_or_else(|| panic!("the call's attempt: {spans:#?}"));
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    let at = attributes(attempt);
    assert_eq!(at["holdfast.target"], "fallback", "{at:?}");
    assert_eq!(at["holdfast.outcome"], "ok", "{at:?}");
    assert_eq!(at["gen_ai.system"], "openai", "{at:?}");
    assert!(at["gen_ai.usage.output_tokens"].parse::<u64>().unwrap() > 0);
    let fallback_heard = heard_by(fallback.requests().await);
    assert!(
        fallback_heard.contains(&format!("00-{trace}-{}-01", hex(&attempt.span_id))),
        "{fallback_heard:?}"
    );
}

/// The `traceparent` headers a mock provider's requests carried.
fn heard_by(requests: Vec<Value>) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r["traceparent"].as_str().map(str::to_owned))
        .collect()
}

/// `protocol = "grpc"` against a live collector: one request's server span and its
/// attempt arrive decoded, under the client's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_exported_over_grpc_reach_a_live_collector() {
    let _serial = serial().await;
    let receiver = Receiver::start_grpc().await;
    let provider = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("only", &provider, "")
        .route("smart", &["only"], "")
        .raw(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nprotocol = \"grpc\"\nservice_name = \"holdfast-test\"\n",
            receiver.base
        ));
    let gateway = Gateway::start(&config);
    let response = gateway
        .chat(&chat_body("smart", "hello", false))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let spans = receiver.trace(CLIENT_TRACE, 2).await;
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("the server span over gRPC: {spans:#?}"));
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(server.name, "chat smart");
    let attempt = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap_or_else(|| panic!("the attempt span over gRPC: {spans:#?}"));
    assert_eq!(attempt.parent_span_id, server.span_id);
    let at = attributes(attempt);
    assert_eq!(at["holdfast.target"], "only", "{at:?}");
    assert_eq!(at["gen_ai.request.model"], "smart", "{at:?}");
    assert_eq!(
        heard_by(provider.requests().await),
        vec![format!("00-{CLIENT_TRACE}-{}-01", hex(&attempt.span_id))]
    );
}

/// With `sampling_ratio = 0`, a task submitted without a `traceparent` is not
/// recorded, and neither is its `llm` step's model call: the provider hears the call's
/// trace unsampled and the collector gets none of its spans, while a client's request
/// that asks for sampling still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_step_of_a_task_without_traceparent_follows_the_sampling_ratio() {
    let _serial = serial().await;
    let receiver = Receiver::start().await;
    let provider = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("only", &provider, "")
        .route("warm", &["only"], "")
        .raw(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nprotocol = \"http\"\nservice_name = \"holdfast-test\"\n\
             sampling_ratio = 0.0\n",
            receiver.base
        ));
    let gateway = Gateway::start(&config);
    let workflow = json!({"name": "unsampled", "steps": [
        {"name": "ask", "kind": "llm", "route": "warm", "prompt": "hello"}
    ]});
    let (status, body) = gateway.post_json("/v1/workflows", &workflow).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, task) = gateway
        .post_json("/v1/tasks", &json!({"workflow": "unsampled", "input": {}}))
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    let mut task = Value::Null;
    for _ in 0..200 {
        task = gateway.get_json(&format!("/v1/tasks/{id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            break;
        }
        pause(Duration::from_millis(50)).await;
    }
    assert_eq!(task["status"], "succeeded", "{task}");
    let heard = heard_by(provider.requests().await);
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].ends_with("-00"), "the provider heard {heard:?}");
    let trace = heard[0].split('-').nth(1).unwrap().to_owned();

    // Spans leave through one queue in order: the client's arriving means that any of
    // the task's, queued before, would have arrived too.
    let response = gateway
        .chat(&chat_body("warm", "hello", false))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let client = receiver.trace(CLIENT_TRACE, 2).await;
    assert_eq!(
        client.len(),
        2,
        "the client's request and attempt: {client:#?}"
    );
    let task_spans = receiver.of(&trace);
    assert!(task_spans.is_empty(), "the task's trace: {task_spans:#?}");
}

/// A task submitted with a `traceparent` joins the submitter's trace: its span is a
/// child of the submitter's span and its steps are under it, also when the node that
/// accepted it is killed with SIGKILL mid-task and a restarted node finishes it (the
/// traceparent is stored with the task, not kept in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_submitted_with_a_traceparent_joins_the_submitters_trace_across_a_restart() {
    let _serial = serial().await;
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const SPAN: &str = "b7ad6b7169203331";
    let receiver = Receiver::start().await;
    let provider = Mock::start("openai", &[]);
    let data = support::TempDir::new("traced-task");
    let url = format!("sqlite://{}", data.path().join("holdfast.db").display());
    let config = ConfigBuilder::new()
        .target("only", &provider, "")
        .route("smart", &["only"], "")
        .raw(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nprotocol = \"http\"\nservice_name = \"holdfast-test\"\n\n\
             [engine]\nnode_id = \"traced-node\"\npoll_interval = \"50ms\"\n\n\
             [engine.egress]\nallow = [\"{}/*\"]\n",
            receiver.base, receiver.base
        ));
    let envs = [("HOLDFAST_STORE_URL", url.as_str())];
    let first = Gateway::start_with_env(&config, &envs);
    let workflow = json!({"name": "resumed", "steps": [
        {"name": "nap", "kind": "sleep", "duration": "1500ms"},
        {"name": "fetch", "kind": "http", "method": "GET", "url": format!("{}/tool", receiver.base)}
    ]});
    let (status, body) = first.post_json("/v1/workflows", &workflow).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let response = first
        .client
        .post(first.url("/v1/tasks"))
        .header("traceparent", format!("00-{TRACE}-{SPAN}-01"))
        .json(&json!({"workflow": "resumed", "input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    pause(Duration::from_millis(300)).await;
    drop(first); // SIGKILL while the task sleeps

    let second = Gateway::start_with_env(&config, &envs);
    for _ in 0..200 {
        let task = second.get_json(&format!("/v1/tasks/{id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            assert_eq!(task["status"], "succeeded", "{task}");
            break;
        }
        pause(Duration::from_millis(50)).await;
    }
    let spans = receiver.trace(TRACE, 3).await;
    let task_span = spans
        .iter()
        .find(|s| s.name == "task resumed")
        .unwrap_or_else(|| panic!("the task's span in the submitter's trace: {spans:#?}"));
    assert_eq!(
        hex(&task_span.parent_span_id),
        SPAN,
        "under the submitter's span"
    );
    assert_eq!(attributes(task_span)["holdfast.task_id"], id);
    let fetch = spans
        .iter()
        .find(|s| s.name == "step fetch")
        .expect("the fetch step's span");
    assert_eq!(fetch.parent_span_id, task_span.span_id);
    let heard = receiver.tool_heard.lock().unwrap().clone();
    assert_eq!(
        heard,
        vec![format!("00-{TRACE}-{}-01", hex(&fetch.span_id))],
        "the tool heard its step's span, in the submitter's trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_requests_are_served_and_lost_spans_are_counted() {
    let _serial = serial().await;
    let provider = Mock::start("openai", &[]);
    // Nothing listens on port 9 (discard) on a test machine: every export fails.
    let config = ConfigBuilder::new()
        .target("only", &provider, "")
        .route("smart", &["only"], "")
        .raw("[telemetry]\notlp_endpoint = \"http://127.0.0.1:9\"\n");
    let gateway = Gateway::start(&config);
    for _ in 0..20 {
        let response = gateway
            .chat(&chat_body("smart", "hello", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut lost = 0.0;
    for _ in 0..100 {
        let text = gateway
            .client
            .get(gateway.url("/metrics"))
            .send()
            .await
            .unwrap();
        let text = text.text().await.unwrap();
        lost = text
            .lines()
            .filter(|l| l.starts_with("holdfast_telemetry_spans_dropped_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if lost >= 40.0 {
            break;
        }
        pause(Duration::from_millis(100)).await;
    }
    assert!(
        lost >= 40.0,
        "20 requests' 40 spans counted as dropped, got {lost}"
    );
}
