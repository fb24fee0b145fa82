//! The decision for one request: which fault strikes, if any, and how long to wait.
//!
//! Deciding is a pure function of the fault set, the request, the time since the
//! origin and a per-request random generator, so the same seed gives the same sequence
//! of outcomes and the decision can be tested without a socket. Deterministic faults
//! come first, in the order a real provider checks them (credentials, availability,
//! the request itself, its size); then one uniform draw picks at most one random fault.

use std::time::Duration;

use holdfast_policy::sim::{Capacity, Load};
use holdfast_policy::{Outcome, Rng, TimeoutKind};

use crate::faults::Faults;
use crate::format::Format;
use crate::request::Request;
use crate::timing::Span;
use crate::validate::RandomFault;

/// A refusal, sent as the provider's error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rejection {
    Status {
        status: u16,
        retry_after: Option<Span>,
    },
    MissingKey,
    WrongKey,
    Quota,
    ContextOverflow {
        prompt_tokens: u64,
        limit: u64,
    },
    BadRequest(String),
    PrefillUnsupported,
}

/// Something wrong with an answer that is otherwise sent with status 200.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Quirk {
    None,
    Malformed,
    MalformedEvent,
    CutStream { after: u32 },
    StallStream { after: u32, duration: Duration },
    InbandError { after: u32 },
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Reject(Rejection),
    /// Never answer.
    Silent,
    /// Answer with status 200 after `stall`.
    Answer {
        stall: Duration,
        filtered: bool,
        quirk: Quirk,
    },
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Latency before the first byte.
    pub(crate) delay: Duration,
    pub(crate) action: Action,
    /// The class a correct client should assign to what it receives.
    pub(crate) outcome: Outcome,
    /// The fault's name in stats and the request log (`none` when healthy).
    pub(crate) fault: &'static str,
}

/// Everything the decision depends on besides randomness.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) faults: &'a Faults,
    pub(crate) format: Format,
    pub(crate) presented_key: Option<&'a str>,
    pub(crate) request: Result<&'a Request, &'a str>,
    /// Time since the origin (start or last reset).
    pub(crate) elapsed: Duration,
}

/// What `in_flight` calls (this one included) do to `plan` on a provider that serves
/// `capacity` at full speed ([`Capacity`]): an answer is slowed, or refused at once
/// with 503; a fault that struck already stays as it is.
pub(crate) fn under_load(mut plan: Plan, capacity: Option<u32>, in_flight: u32) -> Plan {
    let Some(capacity) = capacity.and_then(|c| Capacity::new(c).ok()) else {
        return plan;
    };
    if !matches!(plan.action, Action::Answer { .. }) {
        return plan;
    }
    match capacity.load(in_flight) {
        Load::Within => {}
        Load::Slowed(factor) => plan.delay = plan.delay.mul_f64(factor),
        Load::Over => {
            plan.delay = Duration::ZERO;
            plan.action = Action::Reject(Rejection::Status {
                status: 503,
                retry_after: None,
            });
            plan.outcome = Outcome::Overloaded { retry_after: None };
            plan.fault = "over_capacity";
        }
    }
    plan
}

/// Decides what happens to one request. Always draws the same amount of randomness.
pub(crate) fn decide(ctx: &Context<'_>, rng: &mut Rng) -> Plan {
    let draw = rng.unit();
    let latency = ctx.faults.latency.sample(rng);
    let error_latency = ctx.faults.error_latency.as_ref().map(|d| d.sample(rng));
    let (action, outcome, fault) = deterministic(ctx).unwrap_or_else(|| {
        let streaming = ctx.request.is_ok_and(|r| r.stream);
        random(ctx.faults, streaming, draw)
    });
    let delay = match (&action, error_latency) {
        (Action::Reject(Rejection::Status { .. }), Some(error_latency)) => error_latency,
        _ => latency,
    };
    Plan {
        delay,
        action,
        outcome,
        fault,
    }
}

type Decision = (Action, Outcome, &'static str);

fn reject(rejection: Rejection, outcome: Outcome, fault: &'static str) -> Option<Decision> {
    Some((Action::Reject(rejection), outcome, fault))
}

fn deterministic(ctx: &Context<'_>) -> Option<Decision> {
    let faults = ctx.faults;
    if let Some(rejection) = refuse_key(faults, ctx.presented_key) {
        let fault = if faults.auth { "auth" } else { "api_key" };
        return reject(rejection, Outcome::Auth, fault);
    }
    if let Some((status, fault)) = unavailable(faults, ctx.elapsed) {
        let rejection = status_rejection(faults, status);
        return reject(rejection, status_outcome(faults, status), fault);
    }
    let request = match ctx.request {
        Ok(request) => request,
        Err(message) => {
            let rejection = Rejection::BadRequest(message.to_owned());
            return reject(rejection, Outcome::BadRequest, "bad_request");
        }
    };
    if let Some(prefill) = &request.prefill {
        if !faults.supports_prefill {
            return reject(
                Rejection::PrefillUnsupported,
                Outcome::BadRequest,
                "prefill_unsupported",
            );
        }
        if ctx.format == Format::Anthropic && prefill.ends_with(char::is_whitespace) {
            let message = "messages: final assistant content cannot end with trailing whitespace";
            return reject(
                Rejection::BadRequest(message.to_owned()),
                Outcome::BadRequest,
                "bad_request",
            );
        }
    }
    match faults.context_window {
        Some(limit) if request.prompt_tokens > limit => {
            let prompt_tokens = request.prompt_tokens;
            let rejection = Rejection::ContextOverflow {
                prompt_tokens,
                limit,
            };
            reject(rejection, Outcome::ContextOverflow, "context_overflow")
        }
        Some(_) | None => None,
    }
}

/// The 401 for a request, if the `auth` fault or a configured key refuses it.
pub(crate) fn refuse_key(faults: &Faults, presented: Option<&str>) -> Option<Rejection> {
    if faults.auth {
        return Some(Rejection::WrongKey);
    }
    let key = faults.api_key.as_ref()?;
    match presented {
        None => Some(Rejection::MissingKey),
        Some(presented) if presented != key.0 => Some(Rejection::WrongKey),
        Some(_) => None,
    }
}

/// The failing status of an outage window or a flapping phase at `elapsed`, if any.
pub(crate) fn unavailable(faults: &Faults, elapsed: Duration) -> Option<(u16, &'static str)> {
    let t = elapsed.as_secs_f64();
    let outage = faults
        .outages
        .iter()
        .find(|o| o.start.as_secs_f64() <= t && t < o.end.as_secs_f64());
    if let Some(outage) = outage {
        return Some((outage.status, "outage"));
    }
    let flapping = faults.flapping.as_ref()?;
    let (up, down) = (
        flapping.period_up.as_secs_f64(),
        flapping.period_down.as_secs_f64(),
    );
    (t % (up + down) >= up).then_some((flapping.status, "flapping"))
}

fn status_rejection(faults: &Faults, status: u16) -> Rejection {
    let retry_after = if status == 429 {
        faults.error_rates.retry_after
    } else {
        None
    };
    Rejection::Status {
        status,
        retry_after,
    }
}

fn status_outcome(faults: &Faults, status: u16) -> Outcome {
    match status {
        429 => Outcome::RateLimited {
            retry_after: faults.error_rates.retry_after.map(Span::duration),
        },
        503 | 529 => Outcome::Overloaded { retry_after: None },
        _ => Outcome::ServerError,
    }
}

/// Picks the random fault `draw` falls on. Longer than most functions: one arm per
/// fault, kept together so that each fault's action and class read as a table.
fn random(faults: &Faults, streaming: bool, draw: f64) -> Decision {
    let mut threshold = 0.0;
    let chosen = faults
        .random_faults(streaming)
        .into_iter()
        .find(|(_, rate)| {
            threshold += rate;
            draw < threshold
        });
    let Some((fault, _)) = chosen else {
        return (
            answer(Duration::ZERO, false, Quirk::None),
            Outcome::Ok,
            "none",
        );
    };
    let plain = |quirk, outcome| (answer(Duration::ZERO, false, quirk), outcome, fault.label());
    match fault {
        RandomFault::Status(status) => {
            let rejection = status_rejection(faults, status);
            (
                Action::Reject(rejection),
                status_outcome(faults, status),
                fault.label(),
            )
        }
        RandomFault::Quota => (
            Action::Reject(Rejection::Quota),
            Outcome::QuotaExhausted,
            fault.label(),
        ),
        RandomFault::Silent => (
            Action::Silent,
            Outcome::Timeout(TimeoutKind::FirstByte),
            fault.label(),
        ),
        RandomFault::ContentFilter => (
            answer(Duration::ZERO, true, Quirk::None),
            Outcome::ContentFiltered,
            fault.label(),
        ),
        RandomFault::StallBeforeFirstByte => {
            let stall = faults.stall_before_first_byte.duration.duration();
            let outcome = Outcome::Timeout(TimeoutKind::FirstByte);
            (answer(stall, false, Quirk::None), outcome, fault.label())
        }
        RandomFault::Malformed => plain(Quirk::Malformed, Outcome::InvalidOutput),
        RandomFault::MalformedEvent => plain(Quirk::MalformedEvent, Outcome::InvalidOutput),
        RandomFault::CutStream => {
            let after = faults.cut_stream.after_chunks;
            plain(Quirk::CutStream { after }, Outcome::StreamInterrupted)
        }
        RandomFault::StallStream => {
            let after = faults.stall_stream.after_chunks;
            let duration = faults.stall_stream.duration.duration();
            plain(
                Quirk::StallStream { after, duration },
                Outcome::Timeout(TimeoutKind::Idle),
            )
        }
        RandomFault::InbandError => {
            let after = faults.inband_error.after_chunks;
            plain(Quirk::InbandError { after }, Outcome::StreamInterrupted)
        }
    }
}

fn answer(stall: Duration, filtered: bool, quirk: Quirk) -> Action {
    Action::Answer {
        stall,
        filtered,
        quirk,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
