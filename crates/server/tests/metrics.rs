//! `GET /metrics`: what the policy's events and the requests' results add up to, in a
//! scrape that parses line by line and names no key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use holdfast_policy::{Clock, SystemClock};
use support::{Gw, Mock, openai_provider, request, target};

const CLIENT_KEY: &str = "hf-client-METRICS-SECRET-123";
const PROVIDER_KEY_A: &str = "sk-prov-METRICS-A-456";
const PROVIDER_KEY_B: &str = "sk-prov-METRICS-B-789";

/// A gateway behind a client key: route `smart` over `a` (always 500) then `b`
/// (healthy), two attempts per target and a breaker that opens after two failures.
async fn failing_primary() -> (Gw, Mock, Mock) {
    let a = Mock::openai(&format!(
        "api_key = \"{PROVIDER_KEY_A}\"\nerror_rates = {{ \"500\" = 1.0 }}"
    ))
    .await;
    let b = Mock::openai(&format!("api_key = \"{PROVIDER_KEY_B}\"")).await;
    let toml = format!(
        "[[client_keys]]\nname = \"agents\"\nkey_env = \"CLIENT_KEY\"\n\
         {}key_env = \"PA_KEY\"\n{}key_env = \"PB_KEY\"\n{}probe = {{ enabled = false }}\n{}\
         [routes.smart]\ntargets = [\"a\", \"b\"]\n\
         [policies.default]\nretry = {{ max_attempts = 2, base = \"10ms\", cap = \"20ms\" }}\n\
         breaker = {{ min_calls = 2, failure_rate = 0.5, open_for = \"30s\" }}\n",
        openai_provider("pa", &a),
        openai_provider("pb", &b),
        // Counted calls only: no active probe of the open breaker.
        target("a", "pa", 100_000),
        target("b", "pb", 100_000),
    );
    let env = [
        ("CLIENT_KEY", CLIENT_KEY),
        ("PA_KEY", PROVIDER_KEY_A),
        ("PB_KEY", PROVIDER_KEY_B),
    ];
    (Gw::start_with_env(&toml, &env).await, a, b)
}

async fn chat(gw: &Gw, stream: bool) -> String {
    let response = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&request(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    response.text().await.unwrap()
}

/// Scrapes without a key.
async fn scrape(gw: &Gw) -> String {
    let response = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// One sample: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn is_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// Parses a scrape strictly (text format 0.0.4): every line is `# HELP name text`,
/// `# TYPE name kind` (once per family, before its samples) or a sample of a declared
/// family, `name{label="value",…} value`. Panics naming the first bad line.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the scrape ends with a newline");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashMap<String, ()> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(line);
            assert!(is_name(name, true) && !help.is_empty(), "bad HELP: {line}");
            assert!(
                helps.insert(name.to_owned(), ()).is_none(),
                "HELP twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(is_name(name, true), "bad TYPE name: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE kind: {line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "bad line: {line:?}"
        );
        let sample = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = sample.name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(&sample.name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        assert!(sample.name.starts_with("holdfast_"), "{line}");
        samples.push(sample);
    }
    samples
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect(line);
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, HashMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
            (name, parse_labels(body, line))
        }
    };
    assert!(is_name(name, true), "bad metric name: {line}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn parse_labels(mut body: &str, line: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    while !body.is_empty() {
        let (label, rest) = body.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(is_name(label, false), "bad label name: {line}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => panic!("bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => panic!("unterminated label value: {line}"),
                Some((_, c)) => value.push(c),
            }
        };
        assert!(
            labels.insert(label.to_owned(), value).is_none(),
            "label twice: {line}"
        );
        body = &rest[end + 1..];
        if let Some(next) = body.strip_prefix(',') {
            assert!(!next.is_empty(), "trailing comma: {line}");
            body = next;
        } else {
            assert!(body.is_empty(), "junk after label: {line}");
        }
    }
    labels
}

/// The value of the sample `name` whose labels include `labels`, if any.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn a_failing_primary_shows_in_attempts_fallbacks_breakers_tokens_and_cost() {
    let (gw, a, b) = failing_primary().await;
    for _ in 0..3 {
        chat(&gw, false).await;
    }
    let text = scrape(&gw).await;
    let samples = parse(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };

    // Two failed attempts on `a` (the second a retry), then its breaker opened.
    assert_eq!(a.calls(), 2);
    assert_eq!(b.calls(), 3);
    let route = ("route", "smart");
    assert_eq!(
        get("holdfast_requests_total", &[route, ("result", "ok")]),
        3.0
    );
    assert_eq!(
        get("holdfast_request_duration_seconds_count", &[route]),
        3.0
    );
    let a_failed = [("target", "a"), ("outcome", "server_error")];
    assert_eq!(get("holdfast_attempts_total", &a_failed), 2.0);
    assert_eq!(
        get(
            "holdfast_attempts_total",
            &[("target", "b"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(get("holdfast_retries_total", &[("target", "a")]), 1.0);
    assert_eq!(
        get("holdfast_retry_delay_seconds_count", &[("target", "a")]),
        1.0
    );
    let fallback = [("from", "a"), ("to", "b"), ("reason", "attempts_exhausted")];
    assert_eq!(get("holdfast_fallbacks_total", &fallback), 1.0);
    assert_eq!(get("holdfast_calls_with_failure_total", &[route]), 1.0);
    assert_eq!(get("holdfast_success_after_retry_total", &[route]), 1.0);
    let opened = [("target", "a"), ("from", "closed"), ("to", "open")];
    assert_eq!(get("holdfast_breaker_transitions_total", &opened), 1.0);
    assert_eq!(get("holdfast_breaker_state", &[("target", "a")]), 2.0);
    assert_eq!(get("holdfast_breaker_state", &[("target", "b")]), 0.0);
    let skipped = [("target", "a"), ("reason", "breaker_open")];
    assert_eq!(get("holdfast_skipped_total", &skipped), 2.0);
    for kind in ["input", "output"] {
        let tokens = get("holdfast_tokens_total", &[("target", "b"), ("kind", kind)]);
        assert!(tokens > 0.0, "{kind} tokens: {tokens}");
    }
    let cost = get("holdfast_cost_usd_total", &[route, ("target", "b")]);
    assert!(cost > 0.0, "cost {cost}");
    assert!(value(&samples, "holdfast_gave_up_total", &[]).is_none());

    for secret in [
        CLIENT_KEY,
        PROVIDER_KEY_A,
        PROVIDER_KEY_B,
        "METRICS-",
        "req_",
    ] {
        assert!(!text.contains(secret), "{secret} in the scrape:\n{text}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_is_counted_once_it_has_ended() {
    let (gw, _a, _b) = failing_primary().await;
    let body = chat(&gw, true).await;
    assert!(body.contains("[DONE]"), "{body}");
    // The stream's end is recorded as its body closes: give the finisher a moment.
    let clock = SystemClock::new();
    let mut ok = None;
    for _ in 0..50 {
        let samples = parse(&scrape(&gw).await);
        ok = value(
            &samples,
            "holdfast_requests_total",
            &[("route", "smart"), ("result", "ok")],
        );
        if ok.is_some() {
            assert!(
                value(
                    &samples,
                    "holdfast_requests_total",
                    &[("result", "streaming")]
                )
                .is_none()
            );
            break;
        }
        clock
            .sleep_until(clock.now() + Duration::from_millis(20))
            .await;
    }
    assert_eq!(ok, Some(1.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_call_that_gives_up_is_counted_by_reason() {
    let (gw, a, b) = failing_primary().await;
    b.set_faults("api_key = \"sk-prov-METRICS-B-789\"\nerror_rates = { \"500\" = 1.0 }");
    let response = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let text = scrape(&gw).await;
    let samples = parse(&text);
    let route = ("route", "smart");
    assert!(a.calls() >= 1);
    assert_eq!(
        value(
            &samples,
            "holdfast_requests_total",
            &[route, ("result", "error")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "holdfast_gave_up_total",
            &[route, ("reason", "exhausted")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "holdfast_calls_with_failure_total", &[route]),
        Some(1.0)
    );
    assert!(value(&samples, "holdfast_success_after_retry_total", &[route]).is_none());
    gw.stop().await;
}
