//! Active health probes: recovery from evidence, not from a timer.
//!
//! While a target's breaker is open, no client call reaches it, so nothing would tell
//! holdfast that it healed until the open time ran out. Each target with a `probe`
//! gets a cheap call of its own every `every` while its breaker is open (a one-token
//! completion, or its model list), and the first that succeeds closes the breaker: the
//! target is back in rotation within `every` of healing. The decision that shapes the
//! loop: it reads the configuration current at each tick (a reload swaps targets and
//! registry), probes each target at most once at a time, and never blocks on a probe.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_config::{Probe, ProbeKind};
use holdfast_llm::CallOptions;
use holdfast_llm::openai::ChatRequest;
use holdfast_policy::Instant;
use holdfast_policy::breaker::State;
use holdfast_policy::fallback::TargetId;

use crate::gateway::{Gateway, Inner};
use crate::live::Live;

/// How often the loop looks for open breakers: well below the shortest `every`.
const TICK: Duration = Duration::from_millis(25);

/// Stops the probe loop when dropped (when the server stops).
pub(crate) struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts probing `gateway`'s open breakers on the current runtime.
pub(crate) fn start(gateway: &Gateway) -> Running {
    Running(tokio::spawn(run(Arc::clone(&gateway.live))))
}

/// Targets whose probe is running, by name.
type Busy = Arc<Mutex<HashSet<Arc<str>>>>;

async fn run(live: Arc<Live>) {
    let clock = Arc::clone(&live.current().clock);
    let mut last: HashMap<Arc<str>, Instant> = HashMap::new();
    let busy: Busy = Arc::default();
    loop {
        clock.sleep_until(clock.now() + TICK).await;
        let inner = live.current();
        let now = clock.now();
        for (id, probe) in due(&inner) {
            let name = inner.target_name(id);
            if last.get(&name).is_some_and(|at| now < *at + probe.every) {
                continue;
            }
            if !busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(Arc::clone(&name))
            {
                continue;
            }
            last.insert(Arc::clone(&name), now);
            let (inner, busy) = (Arc::clone(&inner), Arc::clone(&busy));
            tokio::spawn(async move {
                probe_once(&inner, id, probe).await;
                busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
            });
        }
    }
}

/// The targets with a probe whose breaker is not closed now (open, or half-open and
/// waiting for traffic to decide).
fn due(inner: &Inner) -> Vec<(TargetId, Probe)> {
    let registry = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
    inner
        .targets
        .iter()
        .enumerate()
        .filter_map(|(index, target)| {
            let id = TargetId(u32::try_from(index).ok()?);
            let open = registry
                .target(id)
                .and_then(|h| h.breaker.as_ref())
                .is_some_and(|b| b.state() != State::Closed);
            open.then_some((id, target.probe?))
        })
        .collect()
}

/// Sends one probe to `id` and closes its breaker if it succeeds.
async fn probe_once(inner: &Inner, id: TargetId, probe: Probe) {
    let Some(target) = inner.target(id) else {
        return;
    };
    let endpoint = &target.endpoint;
    let timeout = endpoint.timeouts.first_byte.min(endpoint.timeouts.total);
    let result = match probe.kind {
        ProbeKind::Models => inner.client.probe_models(endpoint, timeout).await,
        ProbeKind::Completion => match one_token_request() {
            Ok(request) => {
                let options = CallOptions {
                    timeout_cap: Some(timeout),
                    first_byte: Some(timeout),
                    ..CallOptions::default()
                };
                inner
                    .client
                    .complete(endpoint, &request, &options)
                    .await
                    .map(drop)
            }
            Err(err) => {
                tracing::error!(error = %err, "the probe request could not be built");
                return;
            }
        },
    };
    match result {
        Ok(()) => {
            let transition = inner
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .target_mut(id)
                .and_then(|h| h.breaker.as_mut())
                .and_then(|b| b.probe_succeeded());
            if let Some(transition) = transition {
                let index = id.0 as usize;
                inner
                    .metrics
                    .breaker_transition(index, transition.from, transition.to);
                inner.metrics.breaker_state(index, transition.to);
                crate::events::log_transition(inner, id, &transition);
            }
        }
        Err(err) => {
            tracing::debug!(target = %target.name, outcome = %err.outcome, "probe failed");
        }
    }
}

/// The smallest call that proves a model answers.
fn one_token_request() -> Result<ChatRequest, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "model": "probe",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }))
}
