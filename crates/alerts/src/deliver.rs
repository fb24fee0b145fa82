//! Where notices go: one log line each, and every configured webhook.
//!
//! The decision: a webhook call is an ordinary call under holdfast's own resilience
//! policy. Each webhook is a target in a small registry of its own (its own breaker
//! and retry budget, so a dead receiver cannot spend the LLM traffic's budget), and
//! each notice runs through `holdfast_policy::driver` with backoff and jitter, its
//! HTTP answer classified by the same `classify_http` the providers' answers go
//! through (a 503 or 429 is retried, honouring Retry-After; a 400 is not). Each webhook
//! has one worker fed by a bounded queue: notices to one receiver stay in order, and
//! evaluation only ever `try_send`s, so a slow or dead receiver never blocks it (a full
//! queue drops the notice with a warning).
//!
//! A webhook URL may itself be a credential (many chat services put the token in the
//! path), so logs name a webhook by its position and host only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use holdfast_config::{Secret, Webhook};
use holdfast_policy::backoff::{self, Backoff, Jitter};
use holdfast_policy::deadline::Deadline;
use holdfast_policy::driver::{self, Classified, Transport};
use holdfast_policy::fallback::{Chain, Link};
use holdfast_policy::pipeline::{
    Call, Policy, Registry, Request, Settings, StartAttempt, TargetSettings,
};
use holdfast_policy::{Clock, Outcome, TimeoutKind, breaker};
use tokio::sync::mpsc;

use super::Notice;

/// Notices waiting per webhook before new ones are dropped.
const QUEUE: usize = 256;
/// One POST's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one notice is retried before it is given up.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// Writes the one log line of a transition.
pub(crate) fn log(notice: &Notice) {
    match notice.state {
        super::state::Change::Firing => tracing::warn!(
            alert = notice.alert,
            severity = notice.severity,
            state = "firing",
            value = notice.value,
            threshold = notice.threshold,
            "alert firing: {}",
            notice.summary
        ),
        super::state::Change::Resolved => tracing::info!(
            alert = notice.alert,
            severity = notice.severity,
            state = "resolved",
            value = notice.value,
            threshold = notice.threshold,
            "alert resolved: {}",
            notice.summary
        ),
    }
}

/// The webhook workers' queues.
pub(crate) struct Webhooks {
    queues: Vec<(String, mpsc::Sender<Arc<Notice>>)>,
}

impl Webhooks {
    /// Starts one worker per webhook on the current runtime.
    pub(crate) fn start(webhooks: &[Webhook], clock: Arc<dyn Clock>) -> Webhooks {
        let client = reqwest::Client::new();
        let settings = Settings {
            global_budget: Some(holdfast_policy::budget::Config::default()),
            agent_breaker: None,
            hedge_ratio: 0.0,
        };
        let mut queues = Vec::with_capacity(webhooks.len());
        for (i, hook) in webhooks.iter().enumerate() {
            let name = describe(i, &hook.url);
            let Some(route) = HookRoute::new(&name, settings.clone(), clock.now()) else {
                tracing::error!(webhook = %name, "could not set up the webhook's retry policy");
                continue;
            };
            let (send, mut receive) = mpsc::channel::<Arc<Notice>>(QUEUE);
            let post = Post {
                client: client.clone(),
                url: hook.url.clone(),
                token: hook.secret.clone(),
                clock: Arc::clone(&clock),
            };
            let worker_name = name.clone();
            tokio::spawn(async move {
                let mut seed = 0u64;
                while let Some(notice) = receive.recv().await {
                    seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    route.deliver(&post, &notice, seed, &worker_name).await;
                }
            });
            queues.push((name, send));
        }
        Webhooks { queues }
    }

    /// Queues `notice` for every webhook, never waiting.
    pub(crate) fn send(&self, notice: &Arc<Notice>) {
        for (name, queue) in &self.queues {
            if queue.try_send(Arc::clone(notice)).is_err() {
                tracing::warn!(
                    webhook = %name,
                    alert = notice.alert,
                    "webhook queue full or closed; notice dropped"
                );
            }
        }
    }
}

/// `webhook #1 (alerts.example.com)`: a name that cannot carry a token.
fn describe(index: usize, url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("webhook #{} ({host})", index + 1)
}

/// One webhook as a one-target route under its own registry.
struct HookRoute {
    registry: Mutex<Registry>,
    chain: Arc<Chain>,
    policy: Arc<Policy>,
}

impl HookRoute {
    fn new(name: &str, settings: Settings, now: holdfast_policy::Instant) -> Option<HookRoute> {
        let mut registry = Registry::new(settings).ok()?;
        let target = TargetSettings {
            breaker: Some(breaker::Config::default()),
            ..TargetSettings::default()
        };
        let id = registry.add_target(name, target, now).ok()?;
        let chain = Chain::new(vec![Link::new(id, ATTEMPT_TIMEOUT)]).ok()?;
        let backoff = Backoff::new(backoff::Config {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_attempts: 5,
            jitter: Jitter::Full,
        })
        .ok()?;
        let policy = Policy {
            // One target: there is nowhere to fail over to, so a long Retry-After is
            // waited for (within the deadline).
            fail_over_when_retry_after_exceeds: DELIVERY_DEADLINE,
            ..Policy::new(backoff)
        };
        Some(HookRoute {
            registry: Mutex::new(registry),
            chain: Arc::new(chain),
            policy: Arc::new(policy),
        })
    }

    async fn deliver(&self, post: &Post, notice: &Notice, seed: u64, name: &str) {
        let body = match serde_json::to_vec(notice) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(webhook = %name, "could not serialise a notice: {e}");
                return;
            }
        };
        let transport = PostBody { post, body };
        let call = Call::new(Request {
            chain: Arc::clone(&self.chain),
            policy: Arc::clone(&self.policy),
            deadline: Deadline::after(post.clock.now(), DELIVERY_DEADLINE),
            agent: None,
            tokens: None,
            seed,
            priority: holdfast_policy::concurrency::Priority::Batch,
        });
        let run = driver::run(call, &self.registry, post.clock.as_ref(), &transport).await;
        let attempts = run
            .events
            .iter()
            .filter(|e| matches!(e, holdfast_policy::pipeline::PolicyEvent::Attempt(_)))
            .count();
        match run.result {
            Ok(_) => {
                tracing::debug!(webhook = %name, alert = notice.alert, attempts, "webhook notified")
            }
            Err(failure) => tracing::warn!(
                webhook = %name,
                alert = notice.alert,
                state = ?notice.state,
                attempts,
                reason = failure.reason.name(),
                outcome = failure.outcome.map_or("none", Outcome::class),
                "webhook notice not delivered"
            ),
        }
    }
}

/// How to reach one webhook.
struct Post {
    client: reqwest::Client,
    url: String,
    token: Option<Secret>,
    clock: Arc<dyn Clock>,
}

/// One notice's POST, repeated per attempt.
struct PostBody<'a> {
    post: &'a Post,
    body: Bytes,
}

/// A failed POST, by outcome class only: the receiver's body and the URL stay out of
/// errors and logs.
struct HookError(Outcome);

impl Classified for HookError {
    fn outcome(&self) -> Outcome {
        self.0
    }
}

impl Transport for PostBody<'_> {
    type Response = ();
    type Error = HookError;

    async fn attempt(&self, _start: StartAttempt) -> Result<(), HookError> {
        let post = self.post;
        let mut request = post
            .client
            .post(&post.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "holdfast-alerts")
            .body(self.body.clone());
        if let Some(token) = &post.token {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(HookError(Outcome::Timeout(TimeoutKind::Total)));
            }
            Err(_) => return Err(HookError(Outcome::Connection)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| holdfast_llm::classify::parse_retry_after(v, post.clock.unix_millis()));
        let body = response.bytes().await.unwrap_or_default();
        match holdfast_llm::classify::classify_http(status, retry_after, &body) {
            Outcome::Ok => Ok(()),
            outcome => Err(HookError(outcome)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_named_by_host_only() {
        let name = describe(0, "https://hooks.example.com/services/T0/B0/s3cr3t?token=x");
        assert_eq!(name, "webhook #1 (hooks.example.com)");
        assert_eq!(describe(2, "not a url"), "webhook #3 (?)");
    }

    #[tokio::test]
    async fn a_full_queue_drops_notices_instead_of_waiting() {
        // A receiver that never answers: the worker holds one notice, the queue fills,
        // and `send` (which never awaits) keeps returning at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = Webhook { url, secret: None };
        let clock: Arc<dyn Clock> = Arc::new(holdfast_policy::SystemClock::new());
        let webhooks = Webhooks::start(&[hook], clock);
        let notice = Arc::new(Notice {
            alert: "retry_rate",
            severity: "warning",
            state: super::super::state::Change::Firing,
            value: 0.5,
            threshold: 0.1,
            summary: String::new(),
            started_at: String::new(),
            resolved_at: None,
        });
        for _ in 0..(QUEUE * 2) {
            webhooks.send(&notice);
        }
        let (_, queue) = &webhooks.queues[0];
        assert_eq!(
            queue.capacity(),
            0,
            "the queue is full, and nothing blocked"
        );
    }
}
