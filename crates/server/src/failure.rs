//! From a call that gave up to the error its client gets.
//!
//! The decision: the reason the pipeline stopped decides first where it names
//! something the client can act on (its deadline passed, the prompt fits nowhere, the
//! retry budget or its agent's breaker said no); otherwise the last attempt's outcome
//! class decides, so that a 429 upstream is a 429 with Retry-After here and a refused
//! provider key is a 502 (the operator's problem, not the client's). Status codes are
//! never read from the provider's answer directly.

use std::time::Duration;

use holdfast_policy::driver::Failure;
use holdfast_policy::pipeline::{GiveUp, Registry};
use holdfast_policy::{Instant, Outcome};

use crate::error::ApiError;
use crate::transport::AttemptError;

/// The client's error for a call that ended without an answer.
pub(crate) fn to_api_error(
    failure: &Failure<AttemptError>,
    registry_wait: impl FnOnce() -> Option<Duration>,
) -> ApiError {
    let message = || {
        failure
            .error
            .as_ref()
            .map_or_else(|| "no answer in time".to_owned(), |e| e.0.message.clone())
    };
    match failure.reason {
        GiveUp::TooLarge => return ApiError::PromptTooLarge,
        GiveUp::AgentBreakerOpen => return ApiError::AgentBreakerOpen,
        GiveUp::BudgetExhausted => return ApiError::RetryBudgetExhausted,
        GiveUp::DeadlineExceeded => return ApiError::DeadlineExceeded,
        GiveUp::Shed { retry_after } => return ApiError::OverloadedShed { retry_after },
        GiveUp::NotRetryable | GiveUp::Exhausted | GiveUp::Unavailable => {}
    }
    let Some(outcome) = failure.outcome else {
        return ApiError::TargetsUnavailable {
            retry_after: registry_wait(),
        };
    };
    match outcome {
        Outcome::RateLimited { retry_after } => ApiError::UpstreamRateLimited {
            message: message(),
            retry_after: retry_after.or_else(registry_wait),
        },
        Outcome::Overloaded { retry_after } => ApiError::UpstreamOverloaded {
            message: message(),
            retry_after: retry_after.or_else(registry_wait),
        },
        Outcome::ServerError | Outcome::Connection | Outcome::StreamInterrupted => {
            ApiError::UpstreamError(message())
        }
        Outcome::Timeout(_) => ApiError::UpstreamTimeout(message()),
        Outcome::Auth => ApiError::UpstreamAuthFailed,
        Outcome::QuotaExhausted => ApiError::UpstreamQuotaExhausted,
        Outcome::NotFound => ApiError::UpstreamModelNotFound,
        // Egress rules guard tool calls, not providers; were one to refuse a provider's
        // URL, the request could not be sent anywhere: a bad request.
        Outcome::BadRequest | Outcome::EgressDenied => ApiError::UpstreamBadRequest(message()),
        Outcome::ContextOverflow => ApiError::ContextLengthExceeded(message()),
        Outcome::ContentFiltered => ApiError::ContentFilter(message()),
        Outcome::InvalidOutput => ApiError::InvalidOutput(message()),
        Outcome::Ok | Outcome::Cancelled => ApiError::TargetsUnavailable {
            retry_after: registry_wait(),
        },
    }
}

/// How long until the first of `targets` can be sent to again (its Retry-After or
/// open breaker), if any is blocked and none is free.
pub(crate) fn earliest_free(
    registry: &Registry,
    targets: impl Iterator<Item = holdfast_policy::fallback::TargetId>,
    now: Instant,
) -> Option<Duration> {
    let mut earliest: Option<Instant> = None;
    for id in targets {
        let Some(target) = registry.target(id) else {
            continue;
        };
        let open = target
            .breaker
            .as_ref()
            .and_then(|b| b.open_until())
            .unwrap_or(Instant::ZERO);
        let free = target.not_before.max(open);
        if free <= now {
            return None;
        }
        earliest = Some(earliest.map_or(free, |e| e.min(free)));
    }
    earliest.map(|at| at.saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_llm::ProviderError;

    fn failure(reason: GiveUp, outcome: Option<Outcome>) -> Failure<AttemptError> {
        Failure {
            reason,
            outcome,
            error: outcome.map(|o| AttemptError(ProviderError::new(o, "upstream said no"))),
        }
    }

    #[test]
    fn outcome_classes_map_to_their_codes() {
        let cases = [
            (
                Outcome::RateLimited {
                    retry_after: Some(Duration::from_secs(5)),
                },
                429,
                "upstream_rate_limited",
            ),
            (
                Outcome::Overloaded { retry_after: None },
                503,
                "upstream_overloaded",
            ),
            (Outcome::ServerError, 502, "upstream_error"),
            (
                Outcome::Timeout(holdfast_policy::TimeoutKind::Total),
                504,
                "upstream_timeout",
            ),
            (Outcome::Auth, 502, "upstream_auth_failed"),
            (Outcome::BadRequest, 400, "upstream_bad_request"),
            (Outcome::ContextOverflow, 400, "context_length_exceeded"),
            (Outcome::ContentFiltered, 400, "content_filter"),
        ];
        for (outcome, status, code) in cases {
            let err = to_api_error(&failure(GiveUp::Exhausted, Some(outcome)), || None);
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{outcome}"
            );
        }
        let err = to_api_error(
            &failure(
                GiveUp::Exhausted,
                Some(Outcome::RateLimited {
                    retry_after: Some(Duration::from_secs(5)),
                }),
            ),
            || None,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_reason_wins_where_it_names_something() {
        let err = to_api_error(
            &failure(GiveUp::DeadlineExceeded, Some(Outcome::ServerError)),
            || None,
        );
        assert_eq!(err.code(), "deadline_exceeded");
        let err = to_api_error(
            &failure(GiveUp::BudgetExhausted, Some(Outcome::ServerError)),
            || None,
        );
        assert_eq!(err.code(), "retry_budget_exhausted");
        let err = to_api_error(&failure(GiveUp::TooLarge, None), || None);
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "prompt_too_large")
        );
        let err = to_api_error(&failure(GiveUp::Unavailable, None), || {
            Some(Duration::from_secs(3))
        });
        assert_eq!(
            (err.code(), err.retry_after()),
            ("targets_unavailable", Some(Duration::from_secs(3)))
        );
    }
}
