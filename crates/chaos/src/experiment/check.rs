//! What the types cannot say about an experiment: which fields each probe and action
//! kind needs, and the ranges of values. Each problem names the line and the field.

use holdfast_mock::Faults;

use super::spec::{
    Action, ActionKind, Bound, Experiment, Probe, ProbeKind, SpecError, Traffic, line_of,
};

type Check = Result<(), (String, String)>;

fn problem(field: &str, message: impl Into<String>) -> Check {
    Err((field.to_owned(), message.into()))
}

fn need<T>(value: &Option<T>, field: &str, kind: &str) -> Check {
    match value {
        Some(_) => Ok(()),
        None => problem(field, format!("`{kind}` needs `{field}`")),
    }
}

impl Experiment {
    pub(super) fn check(&self, text: &str, file: &str) -> Result<(), SpecError> {
        let at = |line: usize, field: String, message: String| SpecError::At {
            file: file.to_owned(),
            line,
            field,
            message,
        };
        let traffic = &self.traffic;
        if !(traffic.rate.is_finite() && traffic.rate > 0.0 && traffic.rate <= 500.0) {
            let message = format!("{}: expected more than 0 and at most 500", traffic.rate);
            let line = text.find("\nrate").map_or(1, |i| line_of(text, i + 1));
            return Err(at(line, "traffic.rate".into(), message));
        }
        if traffic.route.is_some() == traffic.workflow.is_some() {
            let message = "give either `route` (chat requests) or `workflow` (tasks)".to_owned();
            let line = text.find("[traffic]").map_or(1, |i| line_of(text, i));
            return Err(at(line, "traffic.route".into(), message));
        }
        if let Some((field, message)) = traffic.check() {
            let line = text.find("[traffic]").map_or(1, |i| line_of(text, i));
            return Err(at(line, format!("traffic.{field}"), message));
        }
        if self.steady_state.probes.is_empty() {
            let message = "a hypothesis needs at least one probe".to_owned();
            return Err(at(1, "steady_state.probes".into(), message));
        }
        for (i, probe) in self.steady_state.probes.iter().enumerate() {
            let line = line_of(text, probe.span().start);
            probe.get_ref().check().map_err(|(field, message)| {
                at(line, format!("steady_state.probes[{i}].{field}"), message)
            })?;
        }
        let actions = [("method", &self.method), ("rollbacks", &self.rollbacks)];
        for (list, actions) in actions {
            for (i, action) in actions.iter().enumerate() {
                let line = line_of(text, action.span().start);
                action.get_ref().check().map_err(|(field, message)| {
                    at(line, format!("{list}[{i}].{field}"), message)
                })?;
            }
        }
        Ok(())
    }
}

impl Traffic {
    /// The first field that cannot be used as written, and why.
    fn check(&self) -> Option<(&'static str, String)> {
        if !(1..=10).contains(&self.repeat) {
            return Some(("repeat", format!("{}: expected 1 to 10", self.repeat)));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Some(("headers", format!("`{name}` is not a valid HTTP header")));
            }
            if name.eq_ignore_ascii_case("idempotency-key") && self.repeat > 1 {
                let message = "`repeat` gives every request its own `Idempotency-Key`";
                return Some(("headers", message.to_owned()));
            }
        }
        if self.workflow.is_some() && (self.repeat > 1 || self.response_format.is_some()) {
            let message = "`repeat` and `response_format` are for chat requests, not tasks";
            return Some(("workflow", message.to_owned()));
        }
        None
    }
}

impl Probe {
    fn check(&self) -> Check {
        let kind = format!("{:?}", self.kind).to_lowercase();
        if self.min.is_none() && self.max.is_none() {
            return problem("min", "a probe needs a tolerance: `min`, `max` or both");
        }
        if self.per_request && !matches!(self.kind, ProbeKind::UpstreamCalls | ProbeKind::Metric) {
            return problem(
                "per_request",
                "only `upstream_calls` and `metric` count per request",
            );
        }
        if self.kind != ProbeKind::TasksCompleted && self.statuses != ["succeeded"] {
            return problem("statuses", "only `tasks_completed` counts statuses");
        }
        if self.statuses.is_empty() {
            return problem("statuses", "at least one status counts as done");
        }
        if self.when.is_empty() {
            return problem("when", "a probe is checked in at least one phase");
        }
        match self.kind {
            ProbeKind::SuccessRate
            | ProbeKind::TrafficShare
            | ProbeKind::TasksCompleted
            | ProbeKind::StepsOnce => {
                if self.kind == ProbeKind::TrafficShare {
                    need(&self.target, "target", &kind)?;
                }
                let share = |v: f64| (0.0..=1.0).contains(&v);
                if self.min.is_some_and(|v| !share(v)) {
                    return problem("min", "a share from 0 to 1");
                }
                self.number_max(share, "a share from 0 to 1")
            }
            ProbeKind::Latency => {
                if self.percentile.is_some_and(|p| !(p > 0.0 && p <= 100.0)) {
                    return problem("percentile", "more than 0 and at most 100");
                }
                match self.max {
                    Some(Bound::Duration(_)) if self.min.is_none() => Ok(()),
                    _ => problem("max", "`latency` takes `max` as a duration (\"2s\")"),
                }
            }
            ProbeKind::CostPerRequest | ProbeKind::UpstreamCalls | ProbeKind::Metric => {
                if self.kind == ProbeKind::UpstreamCalls {
                    need(&self.url, "url", &kind)?;
                }
                if self.kind == ProbeKind::Metric {
                    need(&self.metric, "metric", &kind)?;
                }
                if self.min.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return problem("min", "a number, 0 or more");
                }
                self.number_max(|v| v.is_finite() && v >= 0.0, "a number, 0 or more")
            }
        }
    }

    fn number_max(&self, valid: impl Fn(f64) -> bool, expected: &str) -> Check {
        match self.max {
            None => Ok(()),
            Some(Bound::Number(v)) if valid(v) => Ok(()),
            Some(Bound::Number(_) | Bound::Duration(_)) => problem("max", expected),
        }
    }
}

impl Action {
    fn check(&self) -> Check {
        match self.action {
            ActionKind::Faults => {
                need(&self.url, "url", "faults")?;
                need(&self.faults, "faults", "faults")?;
                let table = self.faults.clone().unwrap_or_default();
                let text = toml::to_string(&table).unwrap_or_default();
                Faults::from_toml_str(&text)
                    .map(|_| ())
                    .or_else(|e| problem("faults", e.to_string()))
            }
            ActionKind::Drain | ActionKind::Restore => {
                need(&self.target, "target", "drain and restore")
            }
            ActionKind::Wait => need(&self.duration, "duration", "wait"),
            ActionKind::Exec => match self.command.first() {
                Some(program) if !program.is_empty() => Ok(()),
                Some(_) | None => problem("command", "`exec` needs a program to run"),
            },
        }
    }
}
