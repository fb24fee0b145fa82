//! Checking a fault set, and the partition of random faults the check protects.
//!
//! Validation names the offending field (`error_rates.429`, `outages[1].end`) so that a
//! person can fix a fault file or an admin request from the message alone. The random
//! faults are listed here, in draw order, because the same list is both what the
//! sum-to-one check adds up and what [`crate::plan`] walks.

use crate::error::{MockError, Result};
use crate::faults::Faults;

/// The statuses an outage, a flapping phase or an error rate can produce.
pub const FAILURE_STATUSES: [u16; 5] = [429, 500, 502, 503, 529];

/// One of the faults drawn at random per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RandomFault {
    Status(u16),
    Quota,
    ContentFilter,
    Silent,
    StallBeforeFirstByte,
    CutStream,
    StallStream,
    Malformed,
    MalformedEvent,
    InbandError,
}

impl RandomFault {
    /// The field holding its rate.
    pub(crate) fn field(self) -> &'static str {
        match self {
            RandomFault::Status(429) => "error_rates.429",
            RandomFault::Status(500) => "error_rates.500",
            RandomFault::Status(502) => "error_rates.502",
            RandomFault::Status(503) => "error_rates.503",
            RandomFault::Status(_) => "error_rates.529",
            RandomFault::Quota => "quota",
            RandomFault::ContentFilter => "content_filter",
            RandomFault::Silent => "silent",
            RandomFault::StallBeforeFirstByte => "stall_before_first_byte.rate",
            RandomFault::CutStream => "cut_stream.rate",
            RandomFault::StallStream => "stall_stream.rate",
            RandomFault::Malformed => "malformed",
            RandomFault::MalformedEvent => "malformed_event",
            RandomFault::InbandError => "inband_error.rate",
        }
    }

    /// Its name in stats and the request log.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RandomFault::Status(429) => "status_429",
            RandomFault::Status(500) => "status_500",
            RandomFault::Status(502) => "status_502",
            RandomFault::Status(503) => "status_503",
            RandomFault::Status(_) => "status_529",
            RandomFault::Quota => "quota",
            RandomFault::ContentFilter => "content_filter",
            RandomFault::Silent => "silent",
            RandomFault::StallBeforeFirstByte => "stall_before_first_byte",
            RandomFault::CutStream => "cut_stream",
            RandomFault::StallStream => "stall_stream",
            RandomFault::Malformed => "malformed",
            RandomFault::MalformedEvent => "malformed_event",
            RandomFault::InbandError => "inband_error",
        }
    }
}

impl Faults {
    /// The random faults that apply to a request, in draw order, with their rates.
    pub(crate) fn random_faults(&self, streaming: bool) -> Vec<(RandomFault, f64)> {
        let rates = &self.error_rates;
        let mut list = vec![
            (RandomFault::Status(429), rates.rate_limited),
            (RandomFault::Status(500), rates.internal),
            (RandomFault::Status(502), rates.bad_gateway),
            (RandomFault::Status(503), rates.unavailable),
            (RandomFault::Status(529), rates.overloaded),
            (RandomFault::Quota, self.quota),
            (RandomFault::ContentFilter, self.content_filter),
            (RandomFault::Silent, self.silent),
            (
                RandomFault::StallBeforeFirstByte,
                self.stall_before_first_byte.rate,
            ),
        ];
        if streaming {
            list.extend([
                (RandomFault::CutStream, self.cut_stream.rate),
                (RandomFault::StallStream, self.stall_stream.rate),
                (RandomFault::MalformedEvent, self.malformed_event),
                (RandomFault::InbandError, self.inband_error.rate),
            ]);
        } else {
            list.push((RandomFault::Malformed, self.malformed));
        }
        list
    }

    /// Checks every value against its documented range.
    pub fn validate(&self) -> Result<()> {
        for streaming in [false, true] {
            let mut sum = 0.0;
            for (fault, rate) in self.random_faults(streaming) {
                if !(0.0..=1.0).contains(&rate) {
                    let reason = format!("a probability must be in [0, 1], got {rate}");
                    return Err(MockError::invalid(fault.field(), reason));
                }
                sum += rate;
            }
            if sum > 1.0 + 1e-9 {
                let mode = if streaming {
                    "streaming"
                } else {
                    "non-streaming"
                };
                let reason = format!(
                    "the rates of faults that apply to {mode} requests sum to {sum}, more than 1"
                );
                return Err(MockError::invalid("rates", reason));
            }
        }
        self.validate_spans()?;
        self.validate_windows()?;
        if self.context_window == Some(0) {
            return Err(MockError::invalid(
                "context_window",
                "must be at least 1 token",
            ));
        }
        if self.capacity == Some(0) {
            return Err(MockError::invalid("capacity", "must be at least 1 call"));
        }
        if self.api_key.as_ref().is_some_and(|key| key.0.is_empty()) {
            return Err(MockError::invalid("api_key", "must not be empty"));
        }
        if let Some(i) = self.replies.iter().position(|r| r.contains.is_empty()) {
            return Err(MockError::invalid(
                &format!("replies[{i}].contains"),
                "must not be empty: it would match every request",
            ));
        }
        let empty_also = |r: &crate::faults::Reply| r.and_contains.as_deref() == Some("");
        if let Some(i) = self.replies.iter().position(empty_also) {
            return Err(MockError::invalid(
                &format!("replies[{i}].and_contains"),
                "must not be empty (leave it out for none)",
            ));
        }
        Ok(())
    }

    fn validate_spans(&self) -> Result<()> {
        if let Some(wait) = self.error_rates.retry_after {
            wait.check("error_rates.retry_after")?;
        }
        self.latency.check("latency")?;
        if let Some(latency) = &self.error_latency {
            latency.check("error_latency")?;
        }
        self.token_interval.check("token_interval")?;
        self.stall_before_first_byte
            .duration
            .check("stall_before_first_byte.duration")?;
        self.stall_stream.duration.check("stall_stream.duration")
    }

    fn validate_windows(&self) -> Result<()> {
        for (i, outage) in self.outages.iter().enumerate() {
            outage.start.check(&format!("outages[{i}].start"))?;
            outage.end.check(&format!("outages[{i}].end"))?;
            if outage.end.as_secs_f64() < outage.start.as_secs_f64() {
                return Err(MockError::invalid(
                    &format!("outages[{i}].end"),
                    "must not be before start",
                ));
            }
            check_status(&format!("outages[{i}].status"), outage.status)?;
        }
        if let Some(flapping) = &self.flapping {
            flapping.period_up.check("flapping.period_up")?;
            flapping.period_down.check("flapping.period_down")?;
            let cycle = flapping.period_up.as_secs_f64() + flapping.period_down.as_secs_f64();
            if cycle <= 0.0 {
                return Err(MockError::invalid(
                    "flapping",
                    "period_up + period_down must be positive",
                ));
            }
            check_status("flapping.status", flapping.status)?;
        }
        Ok(())
    }
}

fn check_status(field: &str, status: u16) -> Result<()> {
    if FAILURE_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(MockError::invalid(
            field,
            format!("must be one of {FAILURE_STATUSES:?}, got {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Span;

    fn field_of(text: &str) -> String {
        match Faults::from_toml_str(text).unwrap_err() {
            MockError::Invalid { field, .. } => field,
            other => panic!("expected an invalid field, got {other}"),
        }
    }

    #[test]
    fn defaults_are_healthy_and_valid() {
        let faults = Faults::default();
        faults.validate().unwrap();
        assert!(
            faults
                .random_faults(true)
                .iter()
                .all(|(_, rate)| *rate == 0.0)
        );
        assert_eq!(Faults::from_toml_str("").unwrap(), faults);
    }

    #[test]
    fn a_full_toml_file_parses() {
        let text = r#"
            quota = 0.01
            context_window = 8000
            latency = { p50 = "20ms", p99 = "200ms" }
            token_interval = "2ms"
            supports_prefill = false
            error_rates = { "429" = 0.1, "529" = 0.05, retry_after = "2s" }
            cut_stream = { rate = 0.1, after_chunks = 2 }
            flapping = { period_up = "10s", period_down = "5s", status = 529 }
            [[outages]]
            start = 5
            end = "7s"
        "#;
        let faults = Faults::from_toml_str(text).unwrap();
        assert_eq!(
            faults.error_rates.retry_after,
            Some(Span::from_millis(2000))
        );
        assert_eq!(faults.outages[0].status, 503);
        assert_eq!(faults.cut_stream.after_chunks, 2);
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(
            field_of("error_rates = { \"429\" = 1.5 }"),
            "error_rates.429"
        );
        assert_eq!(field_of("silent = -0.1"), "silent");
        assert_eq!(field_of("malformed = 0.6\nquota = 0.6"), "rates");
        assert_eq!(
            field_of("stall_stream = { duration = -1 }"),
            "stall_stream.duration"
        );
        assert_eq!(
            field_of("[[outages]]\nstart = 5\nend = 1"),
            "outages[0].end"
        );
        assert_eq!(
            field_of("[[outages]]\nstart = 1\nend = 2\nstatus = 404"),
            "outages[0].status"
        );
        assert_eq!(field_of("context_window = 0"), "context_window");
        assert_eq!(field_of("latency = { min = 2, max = 1 }"), "latency");
        assert_eq!(
            field_of("[[replies]]\ncontains = \"x\"\n[[replies]]\ncontains = \"\""),
            "replies[1].contains"
        );
    }

    #[test]
    fn streaming_and_plain_faults_have_separate_budgets() {
        Faults::from_toml_str("malformed = 0.9\nmalformed_event = 0.9").unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(matches!(
            Faults::from_toml_str("colour = 1"),
            Err(MockError::Toml(_))
        ));
        assert!(matches!(
            Faults::from_json_str(r#"{"error_rates": {"418": 0.5}}"#),
            Err(MockError::Json(_))
        ));
    }
}
