//! The exposition of every metric, family by family, in a stable order.

use holdfast_policy::Outcome;

use super::Metrics;
use super::cells::Exposition;
use super::labels::{
    FALLBACK_REASONS, GIVE_UPS, RECOVERY_PATHS, RECOVERY_RESULTS, SKIP_REASONS, STATES, TOKEN_KINDS,
};

impl Metrics {
    /// The exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Exposition(String::with_capacity(8192));
        self.render_requests(&mut out);
        self.render_attempts(&mut out);
        self.render_breakers(&mut out);
        self.render_give_ups(&mut out);
        self.render_usage(&mut out);
        self.render_streams(&mut out);
        self.tasks.render(&mut out);
        self.store.render(&mut out);
        self.render_alert_gauges(&mut out);
        out.0
    }

    /// Requests by result, and their durations.
    fn render_requests(&self, out: &mut Exposition) {
        let routes = &self.routes;
        out.family(
            "holdfast_requests_total",
            "counter",
            "Requests that reached a route, by final result.",
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((route, result), value) in requests {
            let route = &routes[route];
            out.sample(
                "holdfast_requests_total",
                &[("route", route), ("result", result)],
                value,
            );
        }
        out.family(
            "holdfast_request_duration_seconds",
            "histogram",
            "From arrival to the final result (for a stream: its end), by route.",
        );
        for (route, histogram) in routes.iter().zip(&self.request_seconds) {
            histogram.render(out, "holdfast_request_duration_seconds", ("route", route));
        }
    }

    /// Attempts, retries, retry delays, fallbacks and success after retry.
    fn render_attempts(&self, out: &mut Exposition) {
        let (routes, targets) = (&self.routes, &self.targets);
        let outcomes = Outcome::ALL.len();
        out.family(
            "holdfast_attempts_total",
            "counter",
            "Attempts by target and outcome class.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                out.nonzero(
                    "holdfast_attempts_total",
                    &[("target", target), ("outcome", outcome.class())],
                    self.attempts.get(t * outcomes + o),
                );
            }
        }
        out.per_target(
            "holdfast_retries_total",
            "Attempts that retried on the same target.",
            targets,
            &self.retries,
        );
        out.family(
            "holdfast_retry_delay_seconds",
            "histogram",
            "The wait the pipeline chose before a retry, by target.",
        );
        for (target, histogram) in targets.iter().zip(&self.retry_delay) {
            histogram.render(out, "holdfast_retry_delay_seconds", ("target", target));
        }
        out.family(
            "holdfast_fallbacks_total",
            "counter",
            "Calls that left one target for another, by reason.",
        );
        for (f, from) in targets.iter().enumerate() {
            for (t, to) in targets.iter().enumerate() {
                for (r, reason) in FALLBACK_REASONS.iter().enumerate() {
                    let index = (f * targets.len() + t) * FALLBACK_REASONS.len() + r;
                    out.nonzero(
                        "holdfast_fallbacks_total",
                        &[("from", from), ("to", to), ("reason", reason.name())],
                        self.fallbacks.get(index),
                    );
                }
            }
        }
        out.per_route(
            "holdfast_calls_with_failure_total",
            "Calls in which at least one attempt failed.",
            routes,
            &self.calls_with_failure,
        );
        out.per_route(
            "holdfast_success_after_retry_total",
            "Calls answered after at least one failed attempt; divided by \
             holdfast_calls_with_failure_total, the success rate after retry.",
            routes,
            &self.success_after_retry,
        );
    }

    /// Breaker states and transitions, target and agent.
    fn render_breakers(&self, out: &mut Exposition) {
        let targets = &self.targets;
        out.family(
            "holdfast_breaker_state",
            "gauge",
            "Target breaker state: 0 closed, 1 half-open, 2 open.",
        );
        for (t, target) in targets.iter().enumerate() {
            out.sample(
                "holdfast_breaker_state",
                &[("target", target)],
                self.breaker_state.get(t),
            );
        }
        out.family(
            "holdfast_breaker_transitions_total",
            "counter",
            "Target breaker state changes.",
        );
        let n = STATES.len();
        for (t, target) in targets.iter().enumerate() {
            for (f, from) in STATES.iter().enumerate() {
                for (s, to) in STATES.iter().enumerate() {
                    out.nonzero(
                        "holdfast_breaker_transitions_total",
                        &[("target", target), ("from", from.name()), ("to", to.name())],
                        self.breaker_transitions.get((t * n + f) * n + s),
                    );
                }
            }
        }
        out.family(
            "holdfast_agent_breaker_transitions_total",
            "counter",
            "Agent breaker state changes, over all agents, by new state.",
        );
        for (s, to) in STATES.iter().enumerate() {
            out.nonzero(
                "holdfast_agent_breaker_transitions_total",
                &[("to", to.name())],
                self.agent_breaker_transitions.get(s),
            );
        }
    }

    /// Budget exhaustion, hedges, skipped targets and give-ups.
    fn render_give_ups(&self, out: &mut Exposition) {
        let (routes, targets) = (&self.routes, &self.targets);
        out.per_target(
            "holdfast_budget_exhausted_total",
            "Retries refused because the retry budget was empty.",
            targets,
            &self.budget_exhausted,
        );
        out.per_target(
            "holdfast_hedges_total",
            "Hedge attempts started.",
            targets,
            &self.hedges,
        );
        out.family(
            "holdfast_skipped_total",
            "counter",
            "Targets passed over without an attempt, by reason.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (r, reason) in SKIP_REASONS.iter().enumerate() {
                out.nonzero(
                    "holdfast_skipped_total",
                    &[("target", target), ("reason", reason)],
                    self.skipped.get(t * SKIP_REASONS.len() + r),
                );
            }
        }
        out.family(
            "holdfast_gave_up_total",
            "counter",
            "Calls the pipeline gave up on, by reason.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (g, reason) in GIVE_UPS.iter().enumerate() {
                out.nonzero(
                    "holdfast_gave_up_total",
                    &[("route", route), ("reason", reason.name())],
                    self.gave_up.get(r * GIVE_UPS.len() + g),
                );
            }
        }
    }

    /// Tokens and cost.
    fn render_usage(&self, out: &mut Exposition) {
        let (routes, targets) = (&self.routes, &self.targets);
        out.family(
            "holdfast_tokens_total",
            "counter",
            "Tokens used by attempts, by target and kind.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (k, kind) in TOKEN_KINDS.iter().enumerate() {
                out.nonzero(
                    "holdfast_tokens_total",
                    &[("target", target), ("kind", kind)],
                    self.tokens.get(t * 2 + k),
                );
            }
        }
        out.family(
            "holdfast_cost_usd_total",
            "counter",
            "Cost of attempts in US dollars, by route and target.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (t, target) in targets.iter().enumerate() {
                let usd = self.cost.get_f64(r * targets.len() + t);
                if usd != 0.0 {
                    out.sample(
                        "holdfast_cost_usd_total",
                        &[("route", route), ("target", target)],
                        usd,
                    );
                }
            }
        }
    }

    /// Streams broken after their first byte, and their recoveries.
    fn render_streams(&self, out: &mut Exposition) {
        let (routes, targets) = (&self.routes, &self.targets);
        let outcomes = Outcome::ALL.len();
        out.family(
            "holdfast_stream_breaks_total",
            "counter",
            "Streams that broke after their first byte, by serving target and outcome class.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                out.nonzero(
                    "holdfast_stream_breaks_total",
                    &[("target", target), ("outcome", outcome.class())],
                    self.stream_breaks.get(t * outcomes + o),
                );
            }
        }
        out.family(
            "holdfast_stream_recoveries_total",
            "counter",
            "Recovery calls for broken streams, by route, path and whether they finished the answer.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (p, path) in RECOVERY_PATHS.iter().enumerate() {
                for (s, result) in RECOVERY_RESULTS.iter().enumerate() {
                    let index = (r * RECOVERY_PATHS.len() + p) * RECOVERY_RESULTS.len() + s;
                    out.nonzero(
                        "holdfast_stream_recoveries_total",
                        &[("route", route), ("path", path), ("result", result)],
                        self.stream_recoveries.get(index),
                    );
                }
            }
        }
    }
}
