//! What happened to one attempt, as a small closed set of classes.
//!
//! Every policy decision (retry here, fail over, trip a breaker, give up) keys off the
//! class of an outcome, never off raw status codes: providers and tools map their errors
//! into [`Outcome`] once, at the edge, and everything after that is provider-agnostic.

use std::fmt;
use std::time::Duration;

/// Which of an attempt's timeouts fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The connection could not be established in time.
    Connect,
    /// Connected, but no response byte arrived in time.
    FirstByte,
    /// A started response went quiet for too long between chunks.
    Idle,
    /// The attempt as a whole ran out of time.
    Total,
}

/// The class of an attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The attempt succeeded.
    Ok,
    /// 429: slow down; the provider may say for how long.
    RateLimited {
        /// The provider's Retry-After, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The account's quota or credit is used up: waiting will not help.
    QuotaExhausted,
    /// The provider is overloaded (503, Anthropic's 529).
    Overloaded {
        /// The provider's Retry-After, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Any other 5xx.
    ServerError,
    /// One of the attempt's timeouts fired.
    Timeout(TimeoutKind),
    /// The connection failed or was reset before a response.
    Connection,
    /// The credentials were refused (401, 403).
    Auth,
    /// The request itself is wrong; no target will accept it.
    BadRequest,
    /// The model or endpoint does not exist on this target.
    NotFound,
    /// The request does not fit the target's context window.
    ContextOverflow,
    /// The target's content filter refused the request or the answer.
    ContentFiltered,
    /// The answer arrived but is not valid (empty, wrong schema, malformed).
    InvalidOutput,
    /// A streamed answer broke off after it had started.
    StreamInterrupted,
    /// The caller gave up on the attempt (client gone, deadline, lost hedge).
    Cancelled,
    /// holdfast's egress rules refused the destination (a tool call to a private,
    /// loopback or metadata address, a URL no allow pattern matches, a redirect not
    /// followed): nothing was sent, and sending again cannot succeed.
    EgressDenied,
}

/// What the outcome of an attempt means for the health of the target that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The target did its job.
    Success,
    /// The target failed: counts against its breaker.
    Failure,
    /// Says nothing about the target (the request was at fault, or it was cancelled).
    Neutral,
}

impl Outcome {
    /// Every class, once, with representative data: for tables, metrics and tests.
    pub const ALL: [Outcome; 19] = [
        Outcome::Ok,
        Outcome::RateLimited { retry_after: None },
        Outcome::QuotaExhausted,
        Outcome::Overloaded { retry_after: None },
        Outcome::ServerError,
        Outcome::Timeout(TimeoutKind::Connect),
        Outcome::Timeout(TimeoutKind::FirstByte),
        Outcome::Timeout(TimeoutKind::Idle),
        Outcome::Timeout(TimeoutKind::Total),
        Outcome::Connection,
        Outcome::Auth,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::ContextOverflow,
        Outcome::ContentFiltered,
        Outcome::InvalidOutput,
        Outcome::StreamInterrupted,
        Outcome::Cancelled,
        Outcome::EgressDenied,
    ];

    /// Whether this is a success.
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// Whether the same request may succeed if sent again to the same target.
    pub fn is_retryable(self) -> bool {
        match self {
            Outcome::RateLimited { .. }
            | Outcome::Overloaded { .. }
            | Outcome::ServerError
            | Outcome::Timeout(_)
            | Outcome::Connection
            | Outcome::InvalidOutput
            | Outcome::StreamInterrupted => true,
            Outcome::Ok
            | Outcome::QuotaExhausted
            | Outcome::Auth
            | Outcome::BadRequest
            | Outcome::NotFound
            | Outcome::ContextOverflow
            | Outcome::ContentFiltered
            | Outcome::Cancelled
            | Outcome::EgressDenied => false,
        }
    }

    /// Whether another target in the chain may succeed where this one did not.
    /// `ContextOverflow` may fall back only to a larger context window; the fallback
    /// chain enforces that.
    pub fn may_fall_back(self) -> bool {
        match self {
            Outcome::RateLimited { .. }
            | Outcome::QuotaExhausted
            | Outcome::Overloaded { .. }
            | Outcome::ServerError
            | Outcome::Timeout(_)
            | Outcome::Connection
            | Outcome::Auth
            | Outcome::NotFound
            | Outcome::ContextOverflow
            | Outcome::ContentFiltered
            | Outcome::InvalidOutput
            | Outcome::StreamInterrupted => true,
            // A denied destination is a rule about the request, as a bad request is.
            Outcome::Ok | Outcome::BadRequest | Outcome::Cancelled | Outcome::EgressDenied => false,
        }
    }

    /// What this outcome says about the target's health, for its breaker.
    pub fn health(self) -> Health {
        match self {
            Outcome::Ok => Health::Success,
            Outcome::RateLimited { .. }
            | Outcome::QuotaExhausted
            | Outcome::Overloaded { .. }
            | Outcome::ServerError
            | Outcome::Timeout(_)
            | Outcome::Connection
            | Outcome::Auth
            | Outcome::StreamInterrupted => Health::Failure,
            Outcome::BadRequest
            | Outcome::NotFound
            | Outcome::ContextOverflow
            | Outcome::ContentFiltered
            | Outcome::InvalidOutput
            | Outcome::Cancelled
            | Outcome::EgressDenied => Health::Neutral,
        }
    }

    /// The same outcome with its Retry-After cut to `cap`: a provider's answer (or a
    /// misconfigured proxy's) must not keep a target out for a day.
    pub fn with_retry_after_at_most(self, cap: Duration) -> Outcome {
        match self {
            Outcome::RateLimited { retry_after } => Outcome::RateLimited {
                retry_after: retry_after.map(|wait| wait.min(cap)),
            },
            Outcome::Overloaded { retry_after } => Outcome::Overloaded {
                retry_after: retry_after.map(|wait| wait.min(cap)),
            },
            other => other,
        }
    }

    /// The wait the target asked for before it is sent anything again.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Outcome::RateLimited { retry_after } | Outcome::Overloaded { retry_after } => {
                retry_after
            }
            Outcome::Ok
            | Outcome::QuotaExhausted
            | Outcome::ServerError
            | Outcome::Timeout(_)
            | Outcome::Connection
            | Outcome::Auth
            | Outcome::BadRequest
            | Outcome::NotFound
            | Outcome::ContextOverflow
            | Outcome::ContentFiltered
            | Outcome::InvalidOutput
            | Outcome::StreamInterrupted
            | Outcome::Cancelled
            | Outcome::EgressDenied => None,
        }
    }

    /// The class's stable name, used as a metric label and in the attempt ledger.
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::QuotaExhausted => "quota_exhausted",
            Outcome::Overloaded { .. } => "overloaded",
            Outcome::ServerError => "server_error",
            Outcome::Timeout(TimeoutKind::Connect) => "timeout_connect",
            Outcome::Timeout(TimeoutKind::FirstByte) => "timeout_first_byte",
            Outcome::Timeout(TimeoutKind::Idle) => "timeout_idle",
            Outcome::Timeout(TimeoutKind::Total) => "timeout_total",
            Outcome::Connection => "connection",
            Outcome::Auth => "auth",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::ContextOverflow => "context_overflow",
            Outcome::ContentFiltered => "content_filtered",
            Outcome::InvalidOutput => "invalid_output",
            Outcome::StreamInterrupted => "stream_interrupted",
            Outcome::Cancelled => "cancelled",
            Outcome::EgressDenied => "egress_denied",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after() {
            Some(wait) => write!(f, "{} (retry after {:?})", self.class(), wait),
            None => f.write_str(self.class()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_unique() {
        let mut names: Vec<_> = Outcome::ALL.iter().map(|o| o.class()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
    }

    #[test]
    fn request_faults_fail_fast_and_do_not_blame_the_target() {
        for outcome in [
            Outcome::BadRequest,
            Outcome::Cancelled,
            Outcome::EgressDenied,
        ] {
            assert!(!outcome.is_retryable() && !outcome.may_fall_back());
            assert_eq!(outcome.health(), Health::Neutral);
        }
    }

    #[test]
    fn auth_and_quota_are_not_retried_but_may_fall_back() {
        for outcome in [
            Outcome::Auth,
            Outcome::QuotaExhausted,
            Outcome::ContextOverflow,
        ] {
            assert!(!outcome.is_retryable());
            assert!(outcome.may_fall_back());
        }
    }

    #[test]
    fn every_retryable_class_may_also_fall_back() {
        for outcome in Outcome::ALL {
            if outcome.is_retryable() {
                assert!(outcome.may_fall_back(), "{outcome}");
            }
        }
    }
}
