//! Spans of time and latency distributions as a fault file writes them.
//!
//! A fault file is written by people, so a span is either a number of seconds (`1.5`)
//! or a human duration (`"250ms"`, `"2s"`, `"1m"`). Values are kept as written (in
//! seconds, possibly negative) and checked by [`crate::Faults::validate`], so that a
//! bad value is reported with the name of its field rather than as a parse position.

use std::fmt;
use std::time::Duration;

use holdfast_policy::Rng;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::MockError;

/// A span of time: a number of seconds or a human duration such as `"250ms"`.
///
/// Valid values are finite and non-negative; units are `ns`, `us`, `ms`, `s`, `m`, `h`
/// (no unit means seconds).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Span {
    secs: f64,
}

impl Span {
    /// A span of `secs` seconds (validated later, so it may be out of range).
    pub fn from_secs_f64(secs: f64) -> Self {
        Span { secs }
    }

    /// A span of `millis` milliseconds.
    pub fn from_millis(millis: u64) -> Self {
        Span {
            secs: millis as f64 / 1000.0,
        }
    }

    /// The span in seconds, as written.
    pub fn as_secs_f64(self) -> f64 {
        self.secs
    }

    /// The span as a [`Duration`]; zero when out of range.
    pub fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self.secs).unwrap_or(Duration::ZERO)
    }

    /// Checks that the span is finite and non-negative.
    pub(crate) fn check(self, field: &str) -> Result<(), MockError> {
        if self.secs.is_finite() && self.secs >= 0.0 {
            Ok(())
        } else {
            Err(MockError::invalid(
                field,
                format!("must be a non-negative duration, got {}", self.secs),
            ))
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.secs * 1000.0;
        if millis.fract() == 0.0 && millis.abs() < 1e15 {
            write!(f, "{millis}ms")
        } else {
            write!(f, "{}s", self.secs)
        }
    }
}

/// The error for text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpan(String);

impl std::str::FromStr for Span {
    type Err = InvalidSpan;

    /// Parses `"250ms"`, `"1.5s"`, `"2m"` or `"3"` (seconds), as a fault file does.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_human(text)
            .map(Span::from_secs_f64)
            .map_err(InvalidSpan)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpanVisitor)
    }
}

struct SpanVisitor;

impl Visitor<'_> for SpanVisitor {
    type Value = Span;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds as a number, or a string such as \"250ms\" or \"2s\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
        Ok(Span::from_secs_f64(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
        Ok(Span::from_secs_f64(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Span, E> {
        Ok(Span::from_secs_f64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        parse_human(v).map(Span::from_secs_f64).map_err(E::custom)
    }
}

/// Parses `"250ms"`, `"1.5s"`, `"2m"`, `"3"` (seconds) into seconds.
/// A fault file's duration: a bare number of seconds, or the human form every
/// holdfast setting uses (`"250ms"`, `"2s"`), parsed by the policy crate.
fn parse_human(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return if secs.is_finite() {
            Ok(secs)
        } else {
            Err(format!("invalid duration {text:?}"))
        };
    }
    // A negative duration parses so that validation can refuse it naming the field;
    // an untagged `Distribution` would otherwise hide which field was wrong.
    let (sign, magnitude) = text
        .strip_prefix('-')
        .map_or((1.0, text), |rest| (-1.0, rest));
    holdfast_policy::setting::parse_duration("duration", magnitude)
        .map(|d| sign * d.as_secs_f64())
        .map_err(|e| format!("invalid duration {text:?}: {}", e.problem))
}

/// How long something takes: fixed, uniform between two bounds, or log-normal with
/// a given median and 99th percentile (real provider latencies have a long tail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a duration (\"20ms\"), a table {min, max} or a table {p50, p99}"
)]
pub enum Distribution {
    /// Always this long.
    Fixed(Span),
    /// Uniform in `[min, max]`.
    Uniform {
        /// The shortest; must not exceed `max`.
        min: Span,
        /// The longest.
        max: Span,
    },
    /// Log-normal with this median and 99th percentile, capped at four times `p99`.
    LogNormal {
        /// The median; must not exceed `p99`.
        p50: Span,
        /// The 99th percentile.
        p99: Span,
    },
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution::Fixed(Span::default())
    }
}

/// The z-score of the 99th percentile of a standard normal distribution.
const Z_99: f64 = 2.326_347_874;

impl Distribution {
    /// One sample. Always draws two numbers from `rng`, so that the sequence of later
    /// draws does not depend on the shape chosen.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let (u1, u2) = (rng.unit(), rng.unit());
        let secs = match self {
            Distribution::Fixed(span) => span.secs,
            Distribution::Uniform { min, max } => min.secs + u1 * (max.secs - min.secs),
            Distribution::LogNormal { p50, p99 } => {
                if p50.secs <= 0.0 {
                    return Duration::ZERO;
                }
                let sigma = (p99.secs / p50.secs).ln().max(0.0) / Z_99;
                // Box-Muller: 1 - u1 is in (0, 1], so its logarithm is finite.
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (p50.secs * (sigma * z).exp()).min(p99.secs * 4.0)
            }
        };
        Span::from_secs_f64(secs).duration()
    }

    /// Checks every span and the order of the bounds.
    pub(crate) fn check(&self, field: &str) -> Result<(), MockError> {
        match self {
            Distribution::Fixed(span) => span.check(field),
            Distribution::Uniform { min, max } => {
                min.check(&format!("{field}.min"))?;
                max.check(&format!("{field}.max"))?;
                if min.secs > max.secs {
                    return Err(MockError::invalid(field, "min must not exceed max"));
                }
                Ok(())
            }
            Distribution::LogNormal { p50, p99 } => {
                p50.check(&format!("{field}.p50"))?;
                p99.check(&format!("{field}.p99"))?;
                if p50.secs > p99.secs {
                    return Err(MockError::invalid(field, "p50 must not exceed p99"));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_parse() {
        assert_eq!(parse_human("250ms"), Ok(0.25));
        assert_eq!(parse_human("2s"), Ok(2.0));
        assert_eq!(parse_human("1m"), Ok(60.0));
        assert_eq!(parse_human(" 3 "), Ok(3.0));
        assert!(parse_human("fast").is_err());
        assert!(parse_human("3 weeks").is_err());
        assert_eq!("20ms".parse::<Span>(), Ok(Span::from_millis(20)));
    }

    #[test]
    fn spans_round_trip_through_json() {
        for text in ["\"250ms\"", "\"1500ms\"", "0.0001"] {
            let span: Span = serde_json::from_str(text).unwrap();
            let back: Span = serde_json::from_str(&serde_json::to_string(&span).unwrap()).unwrap();
            assert!((span.as_secs_f64() - back.as_secs_f64()).abs() < 1e-12);
        }
    }

    #[test]
    fn distributions_parse_in_three_shapes() {
        let fixed: Distribution = serde_json::from_str("\"5ms\"").unwrap();
        assert_eq!(fixed, Distribution::Fixed(Span::from_millis(5)));
        let uniform: Distribution = serde_json::from_str(r#"{"min":"1ms","max":2}"#).unwrap();
        assert!(matches!(uniform, Distribution::Uniform { .. }));
        let tail: Distribution = serde_json::from_str(r#"{"p50":"1s","p99":"3s"}"#).unwrap();
        assert!(matches!(tail, Distribution::LogNormal { .. }));
        assert!(serde_json::from_str::<Distribution>(r#"{"p50":"1s"}"#).is_err());
    }

    #[test]
    fn samples_stay_in_bounds() {
        let mut rng = Rng::seeded(9);
        let uniform = Distribution::Uniform {
            min: Span::from_millis(10),
            max: Span::from_millis(20),
        };
        let tail = Distribution::LogNormal {
            p50: Span::from_millis(100),
            p99: Span::from_millis(1000),
        };
        let mut tail_samples = Vec::new();
        for _ in 0..2000 {
            let d = uniform.sample(&mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
            tail_samples.push(tail.sample(&mut rng));
        }
        tail_samples.sort();
        let median = tail_samples[1000].as_secs_f64();
        assert!((0.08..0.125).contains(&median), "median {median}");
        assert!(tail_samples.iter().all(|d| *d <= Duration::from_secs(4)));
    }

    #[test]
    fn bad_bounds_name_their_field() {
        let d = Distribution::Uniform {
            min: Span::from_millis(5),
            max: Span::from_millis(1),
        };
        assert!(
            d.check("latency")
                .unwrap_err()
                .to_string()
                .contains("latency")
        );
        let neg = Distribution::Fixed(Span::from_secs_f64(-1.0));
        assert!(
            neg.check("token_interval")
                .unwrap_err()
                .to_string()
                .contains("token_interval")
        );
    }
}
