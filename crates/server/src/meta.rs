//! What travels beside a request's body: its holdfast headers in, and the
//! `x-holdfast-*` headers out.
//!
//! Every response, success or error, carries the same four headers (request id,
//! serving target, attempts, cost), so that a client can correlate any answer with the
//! ledger. They are written by one function ([`Reply::apply`]) so no handler forgets
//! one. Incoming headers are parsed strictly: a deadline that is not a positive number
//! of milliseconds is a 400, not a silently ignored hint.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use holdfast_policy::concurrency::Priority;
use holdfast_policy::{Deadline, Instant};

use crate::error::ApiError;

/// The request's id, in every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-holdfast-request-id");
/// The target that served, when one did.
pub const TARGET: HeaderName = HeaderName::from_static("x-holdfast-target");
/// Attempts made upstream.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-holdfast-attempts");
/// The cost of the attempts, in US dollars.
pub const COST: HeaderName = HeaderName::from_static("x-holdfast-cost-usd");
/// `cache` or `static` when the answer is a degraded one.
pub const DEGRADED: HeaderName = HeaderName::from_static("x-holdfast-degraded");
/// `true` when the answer is the replay of an earlier one with the same
/// `Idempotency-Key`.
pub const REPLAYED: HeaderName = HeaderName::from_static("x-holdfast-idempotent-replay");
/// The request's deadline in milliseconds from its arrival.
pub const DEADLINE_MS: &str = "x-holdfast-deadline-ms";
/// The calling agent, for its own breaker.
pub const AGENT: &str = "x-holdfast-agent";
/// The client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest agent name or idempotency key accepted.
const MAX_TOKEN_LEN: usize = 255;

/// The holdfast headers of a request.
#[derive(Debug, Clone)]
pub(crate) struct RequestMeta {
    pub(crate) deadline: Deadline,
    pub(crate) agent: Option<Arc<str>>,
    pub(crate) idempotency_key: Option<String>,
    /// The client's trace context, and the request's span when traces are exported.
    pub(crate) trace: holdfast_telemetry::Trace,
    /// The caller's key's place at a target's concurrency limit.
    pub(crate) priority: Priority,
}

impl RequestMeta {
    /// Reads the holdfast headers of a request that arrived at `now`.
    pub(crate) fn from_headers(headers: &HeaderMap, now: Instant) -> Result<RequestMeta, ApiError> {
        let deadline = match text(headers, DEADLINE_MS)? {
            None => Deadline::NONE,
            Some(value) => {
                let ms = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| ApiError::InvalidHeader {
                        header: DEADLINE_MS,
                        reason: "must be a whole number of milliseconds above 0".to_owned(),
                    })?;
                Deadline::after(now, Duration::from_millis(ms))
            }
        };
        let agent = token(headers, AGENT)?.map(Arc::from);
        let idempotency_key = token(headers, IDEMPOTENCY_KEY)?.map(str::to_owned);
        Ok(RequestMeta {
            deadline,
            agent,
            idempotency_key,
            trace: holdfast_telemetry::Trace::from_headers(headers),
            priority: Priority::default(),
        })
    }
}

/// A header's text, if present; invalid UTF-8 is a 400.
fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::InvalidHeader {
                header: name,
                reason: "must be visible ASCII".to_owned(),
            }),
    }
}

/// A short opaque token header (agent, idempotency key): 1 to 255 visible characters.
fn token<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = text(headers, name)? else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TOKEN_LEN {
        return Err(ApiError::InvalidHeader {
            header: name,
            reason: format!("must hold 1 to {MAX_TOKEN_LEN} characters"),
        });
    }
    Ok(Some(value))
}

/// The `x-holdfast-*` headers of a response.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    pub(crate) request_id: Option<Arc<str>>,
    pub(crate) target: Option<Arc<str>>,
    pub(crate) attempts: u32,
    pub(crate) cost_usd: f64,
    pub(crate) degraded: Option<&'static str>,
}

impl Reply {
    /// Headers for request `id` before anything was attempted.
    pub(crate) fn new(id: &Arc<str>) -> Reply {
        Reply {
            request_id: Some(Arc::clone(id)),
            ..Reply::default()
        }
    }

    /// Writes the headers into `headers`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(REQUEST_ID, id);
        }
        if let Some(target) = self
            .target
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(TARGET, target);
        }
        headers.insert(ATTEMPTS, HeaderValue::from(self.attempts));
        if let Ok(cost) = HeaderValue::try_from(format_cost(self.cost_usd)) {
            headers.insert(COST, cost);
        }
        if let Some(how) = self.degraded {
            headers.insert(DEGRADED, HeaderValue::from_static(how));
        }
    }
}

/// A cost as a plain decimal with enough digits for a one-token call.
pub(crate) fn format_cost(cost: f64) -> String {
    let cost = if cost.is_finite() && cost > 0.0 {
        cost
    } else {
        0.0
    };
    // Trimmed in place: this runs for every response, and a second string per
    // response was as much work as the formatting.
    let mut text = format!("{cost:.9}");
    let kept = text.trim_end_matches('0').trim_end_matches('.').len();
    text.truncate(kept);
    if text.is_empty() {
        text.push('0');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn deadline_must_be_positive_milliseconds() {
        let at = Instant::ZERO;
        let ok = RequestMeta::from_headers(&headers(&[(DEADLINE_MS, b"1500")]), at).unwrap();
        assert_eq!(ok.deadline.remaining(at), Some(Duration::from_millis(1500)));
        for bad in [&b"soon"[..], b"-5", b"0", b"1.5", b"\xff"] {
            let err = RequestMeta::from_headers(&headers(&[(DEADLINE_MS, bad)]), at).unwrap_err();
            assert_eq!(err.code(), "invalid_header");
        }
    }

    #[test]
    fn costs_print_as_plain_decimals() {
        assert_eq!(format_cost(0.0), "0");
        assert_eq!(format_cost(0.015), "0.015");
        assert_eq!(format_cost(f64::NAN), "0");
        assert_eq!(format_cost(2.5e-6), "0.0000025");
    }
}
