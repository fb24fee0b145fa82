//! One attempt of a step that holdfast runs itself (`llm`, `http`), and what its result
//! means for the step: committed, back to the retry queue, or exhausted.
//!
//! Failures are classified into the policy crate's [`Outcome`] classes, exactly as the
//! gateway classifies a provider's answers, so a tool answering 429 with Retry-After is
//! retried like a model would be and a 400 is not retried at all. Every attempt carries
//! the step's idempotency key (task id + step name), the same on every attempt, so the
//! tool or provider can drop a duplicate that a crash made us send again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holdfast_llm::classify::{classify_http, parse_retry_after};
use holdfast_policy::backoff::Backoff;
use holdfast_policy::{Clock, Outcome, Rng, TimeoutKind};
use serde_json::Value;

use crate::definition::{HttpAction, LlmAction};
use crate::egress::{self, Denied, Rules};
use crate::template;

/// The header that carries a step's idempotency key to tools and providers.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header that carries the task's lock fencing token to tools.
pub const FENCING_HEADER: &str = "x-holdfast-fencing-token";
/// The most bytes of a tool's answer kept as the step's output, by default (with
/// artifacts, `artifacts.max_output`: see `Settings::max_response_bytes`).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Its class.
    pub outcome: Outcome,
    /// What happened, for the step's `last_error` (never a secret).
    pub message: String,
    /// What the attempt cost anyway, in US dollars.
    pub cost_usd: f64,
}

impl Failure {
    /// A failure of class `outcome`.
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        Failure {
            outcome,
            message: message.into(),
            cost_usd: 0.0,
        }
    }
}

/// A successful attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// The step's output.
    pub output: Value,
    /// What it cost, in US dollars.
    pub cost_usd: f64,
    /// For an `llm` step whose route keeps a few-shot library: the library, the
    /// examples the call carried and the input they were chosen for, journaled with the
    /// step's success (the audit trail, and what a correction of the step pairs with).
    pub few_shot: Option<Value>,
}

/// What the step does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Back to the retry queue, due after `delay`.
    Retry {
        /// How long from now.
        delay: Duration,
    },
    /// No attempt is left or the class cannot succeed on retry: `on_exhausted` decides.
    Exhausted,
}

/// Decides between retrying and giving up after attempt `attempt` failed with `outcome`.
pub fn verdict(retry: &Backoff, attempt: u32, outcome: Outcome, rng: &mut Rng) -> Verdict {
    if !outcome.is_retryable() || attempt >= retry.max_attempts() {
        return Verdict::Exhausted;
    }
    let delay = delay_before(retry, attempt, rng);
    Verdict::Retry {
        delay: retry.wait(delay, outcome.retry_after()),
    }
}

/// The backoff before retry number `retry`, walking the schedule from the first retry
/// so that decorrelated jitter grows from the delay before it, as it must: the engine
/// keeps no delay between attempts (the next one may run on another node after a
/// restart), so the walk recomputes them, and with `rng` seeded per task and step
/// ([`step_rng`]) it repeats, within one process, the very delays that were used.
fn delay_before(backoff: &Backoff, retry: u32, rng: &mut Rng) -> Duration {
    let mut previous = Duration::ZERO;
    for earlier in 1..retry {
        previous = backoff.delay(earlier, previous, rng);
    }
    backoff.delay(retry, previous, rng)
}

/// The jitter generator of one step of one task: the same on every attempt, so that
/// [`verdict`]'s walk through the schedule repeats the delays already used.
pub fn step_rng(seed: u64, task_id: &str, step: &str) -> Rng {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in task_id.bytes().chain([0]).chain(step.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Rng::seeded(seed ^ hash)
}

/// A model call for an `llm` step, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    /// The route alias.
    pub route: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The user message.
    pub prompt: String,
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// The JSON schema the answer must satisfy, if any.
    pub output_schema: Option<Value>,
    /// The step's idempotency key.
    pub idempotency_key: String,
    /// The task's tenant: the call is made as that tenant's (its ledger entry, its
    /// agent breaker).
    pub tenant: String,
    /// Who calls, for the gateway's per-agent breaker: `workflow/step`, so that a step
    /// whose prompts keep failing (overflowing the context, answering off-schema) is
    /// cut off on its own instead of counting against the targets every step shares.
    pub agent: String,
    /// How long the whole call may take (the step's timeout).
    pub timeout: Duration,
    /// The step's own few-shot examples, replacing the route's.
    pub few_shot: Option<crate::definition::FewShot>,
    /// The attempt's W3C `traceparent`: the call's spans are children of the step's.
    pub traceparent: String,
    /// The task's place in a trace: whether the call's spans are recorded is decided
    /// as the task's own are (by its submitter's flag, else by the exporter's ratio),
    /// which `traceparent`'s flag alone cannot say.
    pub trace: crate::trace::TaskTrace,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    /// The answer's text.
    pub text: String,
    /// What the call cost over all its attempts, in US dollars.
    pub cost_usd: f64,
    /// The few-shot examples the call carried, if its route keeps a library (see
    /// [`Success::few_shot`]).
    pub few_shot: Option<Value>,
}

/// Runs model calls: the server implements it with the gateway's own pipeline, in
/// process, so a step's call gets the same retries, breakers, fallback and budget as a
/// client's.
#[async_trait]
pub trait Llm: Send + Sync + 'static {
    /// Runs `request` to an answer or a classified failure.
    async fn complete(&self, request: LlmRequest) -> Result<LlmAnswer, Failure>;
}

/// The step kinds holdfast runs itself.
#[derive(Clone)]
pub struct Runners {
    /// The tool client, or why it could not be built (a bad `SSL_CERT_FILE`): then
    /// every `http` attempt fails with that reason rather than trusting less.
    http: Result<reqwest::Client, String>,
    /// Where tool calls may go; the client enforces them on every connection.
    egress: Arc<Rules>,
    llm: Option<Arc<dyn Llm>>,
    clock: Arc<dyn Clock>,
    /// The most bytes of a tool's answer kept as the step's output.
    max_response_bytes: usize,
}

impl std::fmt::Debug for Runners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runners")
            .field("llm", &self.llm.is_some())
            .finish_non_exhaustive()
    }
}

/// What identifies one attempt to the outside.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The task's tenant.
    pub tenant: &'a str,
    /// The step's idempotency key, the same on every attempt.
    pub idempotency_key: &'a str,
    /// The step as an agent of the gateway (`workflow/step`).
    pub agent: &'a str,
    /// The task's lock fencing token, when it holds a lock.
    pub fencing_token: Option<u64>,
    /// How long the attempt may take.
    pub timeout: Duration,
    /// The attempt's W3C `traceparent` (`trace::traceparent`), sent to tools.
    pub traceparent: &'a str,
    /// The task's place in a trace.
    pub trace: crate::trace::TaskTrace,
}

impl Runners {
    /// Runners with an HTTP client for tools, bound by `egress`, and, if given, the
    /// gateway for models.
    pub fn new(llm: Option<Arc<dyn Llm>>, clock: Arc<dyn Clock>, egress: Rules) -> Self {
        let egress = Arc::new(egress);
        Runners {
            http: tool_client(&egress),
            egress,
            llm,
            clock,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// The same runners keeping tool answers of up to `bytes` (default
    /// [`MAX_RESPONSE_BYTES`]).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Runs an `llm` step's attempt.
    pub async fn llm(
        &self,
        action: &LlmAction,
        context: &Value,
        id: Identity<'_>,
    ) -> Result<Success, Failure> {
        let Some(llm) = &self.llm else {
            return Err(Failure::new(
                Outcome::BadRequest,
                "llm steps need the gateway, which is not configured",
            ));
        };
        let bad = |e: String| Failure::new(Outcome::BadRequest, e);
        let request = LlmRequest {
            route: action.route.clone(),
            system: action
                .system
                .as_deref()
                .map(|s| template::render(s, context))
                .transpose()
                .map_err(bad)?,
            prompt: template::render(&action.prompt, context).map_err(bad)?,
            max_tokens: action.max_tokens,
            temperature: action.temperature,
            output_schema: action.output_schema.clone(),
            idempotency_key: id.idempotency_key.to_string(),
            tenant: id.tenant.to_string(),
            agent: id.agent.to_string(),
            timeout: id.timeout,
            few_shot: action.few_shot.clone(),
            traceparent: id.traceparent.to_string(),
            trace: id.trace,
        };
        let answer = llm.complete(request).await?;
        let output = match &action.output_schema {
            None => Value::String(answer.text),
            Some(schema) => match parse_structured(&answer.text, schema) {
                Ok(v) => v,
                Err(message) => {
                    return Err(Failure {
                        outcome: Outcome::InvalidOutput,
                        message,
                        cost_usd: answer.cost_usd,
                    });
                }
            },
        };
        Ok(Success {
            output,
            cost_usd: answer.cost_usd,
            few_shot: answer.few_shot,
        })
    }

    /// Runs an `http` step's attempt.
    pub async fn http(
        &self,
        action: &HttpAction,
        context: &Value,
        id: Identity<'_>,
    ) -> Result<Success, Failure> {
        let bad = |e: String| Failure::new(Outcome::BadRequest, e);
        let url = template::render(&action.url, context).map_err(bad)?;
        let url = reqwest::Url::parse(&url).map_err(|e| bad(format!("url {url:?}: {e}")))?;
        // An IP-literal host is never resolved, so its address is checked here; a host
        // name's addresses are checked by the client's resolver as it connects.
        self.egress.check(&url).map_err(denied)?;
        let method = reqwest::Method::from_bytes(action.method.as_bytes())
            .map_err(|_| bad(format!("method {:?}", action.method)))?;
        let client = self
            .http
            .as_ref()
            .map_err(|e| Failure::new(Outcome::Connection, e.clone()))?;
        let mut request = client
            .request(method, url)
            .timeout(id.timeout)
            .header(IDEMPOTENCY_HEADER, id.idempotency_key)
            .header(crate::trace::TRACEPARENT_HEADER, id.traceparent);
        if let Some(token) = id.fencing_token {
            request = request.header(FENCING_HEADER, token.to_string());
        }
        for (name, value) in &action.headers {
            let value = template::render(value, context).map_err(bad)?;
            request = request.header(name.as_str(), value);
        }
        if let Some(body) = &action.body {
            request = request.json(&template::render_json(body, context).map_err(bad)?);
        }
        let response = request.send().await.map_err(transport_failure)?;
        if let Some(refused) = egress::unfollowed_redirect(&self.egress, &response) {
            return Err(denied(refused));
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.unix_millis()));
        let body = read_limited(response, self.max_response_bytes).await?;
        let outcome = classify_http(status, retry_after, &body);
        if !outcome.is_ok() {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(Failure::new(outcome, format!("HTTP {status}: {snippet}")));
        }
        let output = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok(Success {
            output,
            cost_usd: 0.0,
            few_shot: None,
        })
    }
}

async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if body.len() + chunk.len() > max {
            return Err(Failure::new(
                Outcome::InvalidOutput,
                format!("the answer is larger than {max} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The client for `http` steps. Tools are the user's own services, mostly inside their
/// network, so they are called directly, not through the environment's proxy (which
/// also lets the egress rules see the tool's own address); like the provider client it
/// trusts Mozilla's roots plus `SSL_CERT_FILE`'s certificates.
fn tool_client(egress: &Arc<Rules>) -> Result<reqwest::Client, String> {
    let mut builder = egress::guard(reqwest::Client::builder(), egress);
    if let Some(file) = holdfast_llm::tls::ssl_cert_file()? {
        let certificates = reqwest::Certificate::from_pem_bundle(&file.pem)
            .map_err(|e| file.problem(&e.to_string()))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| format!("building the tool client: {e}"))
}

/// A refused destination: never retried, as it can never succeed.
fn denied(refusal: Denied) -> Failure {
    Failure::new(Outcome::EgressDenied, refusal.to_string())
}

fn transport_failure(e: reqwest::Error) -> Failure {
    if let Some(refusal) = egress::denial(&e) {
        return denied(refusal);
    }
    let outcome = if e.is_timeout() {
        Outcome::Timeout(TimeoutKind::Total)
    } else if e.is_builder() {
        Outcome::BadRequest
    } else {
        Outcome::Connection
    };
    // Without the URL: a query string may hold a secret. The causes say what failed.
    let e = e.without_url();
    let lead = e.to_string();
    Failure::new(
        outcome,
        holdfast_llm::client::describe_causes(&lead, std::error::Error::source(&e)),
    )
}

/// The answer as JSON satisfying `schema`, or why not.
fn parse_structured(text: &str, schema: &Value) -> Result<Value, String> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed);
    let value: Value =
        serde_json::from_str(trimmed.trim()).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("output_schema: {e}"))?;
    if let Some(error) = validator.iter_errors(&value).next() {
        return Err(format!(
            "the answer does not match output_schema at {:?}: {error}",
            error.instance_path().to_string()
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use holdfast_policy::backoff::{Config, Jitter};
    use serde_json::json;

    use super::*;

    #[test]
    fn decorrelated_retries_of_one_step_grow_from_the_delay_before() {
        let retry = Backoff::new(Config {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(60),
            max_attempts: 10,
            jitter: Jitter::Decorrelated,
        })
        .unwrap();
        let delay = |seed: u64, attempt: u32| {
            let mut rng = step_rng(seed, "t-1", "fetch");
            match verdict(&retry, attempt, Outcome::ServerError, &mut rng) {
                Verdict::Retry { delay } => delay,
                Verdict::Exhausted => panic!("attempt {attempt} is retried"),
            }
        };
        let mut means = Vec::new();
        for attempt in 1..=5 {
            let mut sum = Duration::ZERO;
            for seed in 0..2_000 {
                let (before, now) = (
                    if attempt == 1 {
                        Duration::from_millis(100)
                    } else {
                        delay(seed, attempt - 1)
                    },
                    delay(seed, attempt),
                );
                assert!(
                    now >= Duration::from_millis(100) && now <= before * 3,
                    "seed {seed} attempt {attempt}: {now:?} after {before:?}"
                );
                sum += now;
            }
            means.push(sum / 2_000);
        }
        for pair in means.windows(2) {
            assert!(
                pair[1] > pair[0].mul_f64(1.5),
                "the mean delay grows attempt after attempt: {means:?}"
            );
        }
    }

    #[test]
    fn retryable_classes_go_back_to_the_queue_until_attempts_run_out() {
        let retry = Backoff::new(Config {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 3,
            jitter: Jitter::None,
        })
        .unwrap();
        let mut rng = Rng::seeded(1);
        assert_eq!(
            verdict(&retry, 1, Outcome::ServerError, &mut rng),
            Verdict::Retry {
                delay: Duration::from_millis(100)
            }
        );
        assert_eq!(
            verdict(&retry, 2, Outcome::ServerError, &mut rng),
            Verdict::Retry {
                delay: Duration::from_millis(200)
            }
        );
        assert_eq!(
            verdict(&retry, 3, Outcome::ServerError, &mut rng),
            Verdict::Exhausted
        );
        assert_eq!(
            verdict(&retry, 1, Outcome::BadRequest, &mut rng),
            Verdict::Exhausted
        );
        let limited = Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            verdict(&retry, 1, limited, &mut rng),
            Verdict::Retry {
                delay: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn structured_answers_are_checked_against_their_schema() {
        let schema = json!({"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}});
        assert_eq!(
            parse_structured("```json\n{\"title\": \"x\"}\n```", &schema).unwrap(),
            json!({"title": "x"})
        );
        assert!(
            parse_structured("{\"title\": 3}", &schema)
                .unwrap_err()
                .contains("/title")
        );
        assert!(parse_structured("sure! here it is", &schema).is_err());
    }
}
