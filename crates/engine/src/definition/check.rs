//! Checking one step as written: its common fields, its kind's fields, its retry policy,
//! its compensation and its templates, each problem at its field path.

use std::collections::HashSet;
use std::time::Duration;

use holdfast_policy::backoff::{Backoff, Jitter};
use holdfast_policy::setting::parse_duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Action, COMMON, CommonSpec, Compensation, DEFAULT_TIMEOUT, MAX_STEP_NAME, OnExhausted,
    RetrySpec, SleepAction, default_retry,
};
use crate::error::Problem;
use crate::template;

pub(super) struct ParsedStep {
    pub(super) name: String,
    pub(super) action: Action,
    pub(super) depends_on: Option<Vec<String>>,
    pub(super) retry: Backoff,
    pub(super) timeout: Duration,
    pub(super) on_exhausted: OnExhausted,
    pub(super) compensate: Option<Compensation>,
}

impl ParsedStep {
    pub(super) fn templates(&self) -> Vec<(String, String)> {
        templates_of(&self.action)
    }
}

/// Every template of an action, with its field path.
pub(super) fn templates_of(action: &Action) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let json = |prefix: &str, value: &Option<Value>, out: &mut Vec<(String, String)>| {
        if let Some(v) = value {
            template::strings_in(v, prefix, &mut |path, s| out.push((path, s.to_string())));
        }
    };
    match action {
        Action::Llm(a) => {
            out.push(("prompt".into(), a.prompt.clone()));
            if let Some(s) = &a.system {
                out.push(("system".into(), s.clone()));
            }
        }
        Action::Http(a) => {
            out.push(("url".into(), a.url.clone()));
            for (k, v) in &a.headers {
                out.push((format!("headers.{k}"), v.clone()));
            }
            json("body", &a.body, &mut out);
        }
        Action::Worker(a) => json("payload", &a.payload, &mut out),
        Action::Human(a) => {
            out.push(("prompt".into(), a.prompt.clone()));
            json("payload", &a.payload, &mut out);
        }
        Action::Sleep(_) => {}
    }
    out
}

pub(super) fn check_template(
    path: &str,
    text: &str,
    all: &HashSet<&str>,
    before: Option<&HashSet<&str>>,
    problems: &mut Vec<Problem>,
) {
    let refs = match template::references(text) {
        Ok(refs) => refs,
        Err(e) => {
            problems.push(Problem::new(path, e));
            return;
        }
    };
    for root in &refs.roots {
        if !["input", "steps", "task"].contains(&root.as_str()) {
            problems.push(Problem::new(
                path,
                format!("template names unknown variable {root:?} (known: input, steps, task)"),
            ));
        }
    }
    for step in &refs.steps {
        if !all.contains(step.as_str()) {
            problems.push(Problem::new(
                path,
                format!("template names unknown step {step:?}"),
            ));
        } else if before.is_some_and(|b| !b.contains(step.as_str())) {
            problems.push(Problem::new(
                path,
                format!(
                    "template names step {step:?}, which does not finish before this one (add it to depends_on)"
                ),
            ));
        }
    }
}

pub(super) fn parse_step(
    path: &str,
    raw: &Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<ParsedStep> {
    let (common, rest): (Map<String, Value>, Map<String, Value>) = raw
        .iter()
        .filter(|(k, _)| k.as_str() != "compensate")
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| COMMON.contains(&k.as_str()));
    let compensate = raw.get("compensate");
    let common: CommonSpec = match serde_path_to_error::deserialize(Value::Object(common)) {
        Ok(c) => c,
        Err(e) => {
            problems.push(serde_problem(path, &e));
            return None;
        }
    };
    let before = problems.len();
    check_step_name(&format!("{path}.name"), &common.name, problems);
    let action = parse_action(path, &common.kind, rest, problems);
    let retry = parse_retry(&format!("{path}.retry"), common.retry.as_ref(), problems);
    let timeout = parse_timeout(
        &format!("{path}.timeout"),
        common.timeout.as_deref(),
        problems,
    );
    let compensate =
        compensate.and_then(|c| parse_compensation(&format!("{path}.compensate"), c, problems));
    if matches!(action, Some(Action::Human(_))) && common.on_exhausted == OnExhausted::Escalate {
        problems.push(Problem::new(
            format!("{path}.on_exhausted"),
            "a human step cannot escalate to a human",
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(ParsedStep {
        name: common.name,
        action: action?,
        depends_on: common.depends_on,
        retry: retry?,
        timeout: timeout?,
        on_exhausted: common.on_exhausted,
        compensate,
    })
}

fn parse_compensation(
    path: &str,
    raw: &Value,
    problems: &mut Vec<Problem>,
) -> Option<Compensation> {
    let Value::Object(map) = raw else {
        problems.push(Problem::new(path, "must be a table: {kind = \"http\", …}"));
        return None;
    };
    let mut rest = map.clone();
    let kind = match rest.remove("kind") {
        Some(Value::String(k)) => k,
        _ => {
            problems.push(Problem::new(format!("{path}.kind"), "missing: llm or http"));
            return None;
        }
    };
    let retry = match rest.remove("retry") {
        None => parse_retry(&format!("{path}.retry"), None, problems),
        Some(v) => match serde_path_to_error::deserialize::<_, RetrySpec>(v) {
            Ok(spec) => parse_retry(&format!("{path}.retry"), Some(&spec), problems),
            Err(e) => {
                problems.push(serde_problem(&format!("{path}.retry"), &e));
                None
            }
        },
    };
    let timeout = match rest.remove("timeout") {
        None => Some(DEFAULT_TIMEOUT),
        Some(Value::String(t)) => parse_timeout(&format!("{path}.timeout"), Some(&t), problems),
        Some(_) => {
            problems.push(Problem::new(
                format!("{path}.timeout"),
                "must be a duration such as \"30s\"",
            ));
            None
        }
    };
    if !matches!(kind.as_str(), "llm" | "http") {
        problems.push(Problem::new(
            format!("{path}.kind"),
            format!("{kind:?} cannot compensate; use llm or http"),
        ));
        return None;
    }
    let action = parse_action(path, &kind, rest, problems)?;
    Some(Compensation {
        action,
        retry: retry?,
        timeout: timeout?,
    })
}

fn parse_action(
    path: &str,
    kind: &str,
    rest: Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<Action> {
    fn de<T: serde::de::DeserializeOwned>(
        path: &str,
        rest: Map<String, Value>,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        serde_path_to_error::deserialize(Value::Object(rest))
            .map_err(|e| problems.push(serde_problem(path, &e)))
            .ok()
    }
    let action = match kind {
        "llm" => Action::Llm(de(path, rest, problems)?),
        "http" => Action::Http(de(path, rest, problems)?),
        "worker" => Action::Worker(de(path, rest, problems)?),
        "human" => Action::Human(de(path, rest, problems)?),
        "sleep" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Spec {
                duration: String,
            }
            let spec: Spec = de(path, rest, problems)?;
            match parse_duration("duration", &spec.duration) {
                Ok(duration) => Action::Sleep(SleepAction { duration }),
                Err(e) => {
                    problems.push(Problem::new(format!("{path}.duration"), e.problem));
                    return None;
                }
            }
        }
        other => {
            problems.push(Problem::new(
                format!("{path}.kind"),
                format!("unknown step kind {other:?} (known: llm, http, worker, human, sleep)"),
            ));
            return None;
        }
    };
    check_action(path, &action, problems);
    Some(action)
}

fn check_action(path: &str, action: &Action, problems: &mut Vec<Problem>) {
    match action {
        Action::Llm(a) => {
            if a.route.trim().is_empty() {
                problems.push(Problem::new(format!("{path}.route"), "must name a route"));
            }
            if let Some(few_shot) = &a.few_shot {
                let ok = |c: char| c.is_ascii_alphanumeric() || "_.:/@-".contains(c);
                let library = &few_shot.library;
                if library.is_empty() || library.len() > 200 || !library.chars().all(ok) {
                    problems.push(Problem::new(
                        format!("{path}.few_shot.library"),
                        format!("{library:?} must be 1..=200 of letters, digits and _ . : / @ -"),
                    ));
                }
                if !(1..=32).contains(&few_shot.k) {
                    problems.push(Problem::new(
                        format!("{path}.few_shot.k"),
                        "must be within 1..=32",
                    ));
                }
            }
            if a.max_tokens == Some(0) {
                problems.push(Problem::new(format!("{path}.max_tokens"), "must be ≥ 1"));
            }
            if let Some(t) = a.temperature
                && !(0.0..=2.0).contains(&t)
            {
                problems.push(Problem::new(
                    format!("{path}.temperature"),
                    "must be within 0..=2",
                ));
            }
            if let Some(schema) = &a.output_schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                problems.push(Problem::new(
                    format!("{path}.output_schema"),
                    format!("not a valid JSON schema: {e}"),
                ));
            }
        }
        Action::Http(a) => {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&a.method.as_str()) {
                problems.push(Problem::new(
                    format!("{path}.method"),
                    format!("{:?} is not one of GET, POST, PUT, PATCH, DELETE", a.method),
                ));
            }
            let literal = !a.url.contains("{{") && !a.url.contains("{%");
            if literal && reqwest::Url::parse(&a.url).is_err() {
                problems.push(Problem::new(format!("{path}.url"), "not a valid URL"));
            }
            if !a.url.starts_with("http://") && !a.url.starts_with("https://") {
                problems.push(Problem::new(
                    format!("{path}.url"),
                    "must start with http:// or https://",
                ));
            }
            for name in a.headers.keys() {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(Problem::new(
                        format!("{path}.headers.{name}"),
                        "not a valid header name",
                    ));
                }
            }
        }
        Action::Worker(a) => check_name(&format!("{path}.queue"), &a.queue, problems),
        Action::Human(_) | Action::Sleep(_) => {}
    }
}

fn parse_retry(
    path: &str,
    spec: Option<&RetrySpec>,
    problems: &mut Vec<Problem>,
) -> Option<Backoff> {
    let mut config = default_retry();
    let before = problems.len();
    if let Some(spec) = spec {
        if let Some(n) = spec.max_attempts {
            config.max_attempts = n;
        }
        let mut duration = |field: &str, text: &Option<String>, out: &mut Duration| {
            if let Some(t) = text {
                match parse_duration("retry", t) {
                    Ok(d) => *out = d,
                    Err(e) => problems.push(Problem::new(format!("{path}.{field}"), e.problem)),
                }
            }
        };
        duration("base", &spec.base, &mut config.base);
        duration("cap", &spec.cap, &mut config.cap);
        match spec.jitter.as_deref() {
            None | Some("full") => {}
            Some("none") => config.jitter = Jitter::None,
            Some("decorrelated") => config.jitter = Jitter::Decorrelated,
            Some(other) => problems.push(Problem::new(
                format!("{path}.jitter"),
                format!("{other:?} is not one of full, decorrelated, none"),
            )),
        }
    }
    if problems.len() > before {
        return None;
    }
    Backoff::new(config)
        .map_err(|e| {
            let field = e.field.strip_prefix("retry.").unwrap_or(e.field);
            problems.push(Problem::new(format!("{path}.{field}"), e.problem));
        })
        .ok()
}

fn parse_timeout(path: &str, text: Option<&str>, problems: &mut Vec<Problem>) -> Option<Duration> {
    let Some(text) = text else {
        return Some(DEFAULT_TIMEOUT);
    };
    match parse_duration("timeout", text) {
        Ok(d) if d.is_zero() => {
            problems.push(Problem::new(path, "must be > 0"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Problem::new(path, e.problem));
            None
        }
    }
}

/// A workflow name or a queue: what the store accepts as a name, without `/` so that
/// it is one segment of a URL path (`/v1/workflows/{name}`).
pub(super) fn check_name(path: &str, name: &str, problems: &mut Vec<Problem>) {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.:@-".contains(c);
    if name.is_empty() || name.len() > 200 || !name.chars().all(ok) {
        problems.push(Problem::new(
            path,
            format!("{name:?} must be 1..=200 of letters, digits and _ . : @ -"),
        ));
    }
}

/// A step name: an identifier, so templates can say `steps.name.output`.
fn check_step_name(path: &str, name: &str, problems: &mut Vec<Problem>) {
    let mut chars = name.chars();
    let ok = name.len() <= MAX_STEP_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        problems.push(Problem::new(
            path,
            format!(
                "{name:?} must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_STEP_NAME})"
            ),
        ));
    }
}

pub(super) fn serde_problem(
    prefix: &str,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Problem {
    let inner = e.path().to_string();
    let path = match (prefix.is_empty(), inner == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => inner,
        (false, false) => format!("{prefix}.{inner}"),
    };
    Problem::new(path, e.inner().to_string())
}
