//! Validated settings: the one error every policy constructor returns, and the
//! parsers for the human forms settings are written in.
//!
//! A bad setting is caught where it is built, with the name of the field that is wrong,
//! so that a configuration file can point at the exact line and a simulator scenario
//! fails before it runs.

use std::time::Duration;

/// A setting that a policy constructor refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid `{field}`: {problem}")]
pub struct InvalidSetting {
    /// The field's name, as written in the configuration (`retry.cap`, `budget.ratio`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl InvalidSetting {
    /// An error for `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        InvalidSetting {
            field,
            problem: problem.into(),
        }
    }
}

/// Checks that `value` is a finite number in `[low, high]`.
pub fn check_range(
    field: &'static str,
    value: f64,
    low: f64,
    high: f64,
) -> Result<f64, InvalidSetting> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidSetting::new(
            field,
            format!("{value} is outside {low}..={high}"),
        ))
    }
}

/// Checks that `value` is a rate in `(0, 1]`: a threshold of zero would always be met.
pub fn check_rate(field: &'static str, value: f64) -> Result<f64, InvalidSetting> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(InvalidSetting::new(
            field,
            format!("{value} is outside (0, 1]"),
        ))
    }
}

/// Checks that `value` is longer than zero.
pub fn check_positive(field: &'static str, value: Duration) -> Result<Duration, InvalidSetting> {
    if value.is_zero() {
        Err(InvalidSetting::new(field, "must be longer than zero"))
    } else {
        Ok(value)
    }
}

/// A duration from seconds, refusing negative, NaN and infinite values.
pub fn seconds(field: &'static str, secs: f64) -> Result<Duration, InvalidSetting> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| InvalidSetting::new(field, format!("{secs} is not a duration in seconds ≥ 0")))
}

/// Parses a human duration: a number followed by `ms`, `s`, `m` or `h` (`"250ms"`,
/// `"1.5s"`, `"2m"`). A bare `0` is allowed; negatives and other units are refused.
pub fn parse_duration(field: &'static str, text: &str) -> Result<Duration, InvalidSetting> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            InvalidSetting::new(field, format!("`{text}` has no unit (use ms, s, m or h)"))
        })?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        InvalidSetting::new(
            field,
            format!("`{text}` is not a duration like \"250ms\" or \"30s\""),
        )
    })?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(InvalidSetting::new(
                field,
                format!("`{text}` has an unknown unit `{unit}` (use ms, s, m or h)"),
            ));
        }
    };
    let secs = value * scale;
    if secs.is_finite() && Duration::try_from_secs_f64(secs).is_err() {
        return Err(InvalidSetting::new(
            field,
            format!("`{text}` is too long for a duration"),
        ));
    }
    seconds(field, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_duration("f", "250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("f", "1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("f", "2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("f", " 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("f", "0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_negative_and_unitless_durations_naming_the_field() {
        for bad in ["-5s", "5", "5 parsecs", "", "ms", "1.2.3s", "NaNs"] {
            let err = parse_duration("retry.base", bad).unwrap_err();
            assert_eq!(err.field, "retry.base", "{bad}");
        }
        assert!(seconds("timeout", -1.0).is_err());
        let err = parse_duration("for", "99999999999999999999h").unwrap_err();
        assert!(err.to_string().contains("too long for a duration"), "{err}");
        assert!(seconds("timeout", f64::NAN).is_err());
    }

    #[test]
    fn range_check_refuses_nan_and_out_of_range() {
        assert!(check_range("budget.ratio", 0.2, 0.0, 1.0).is_ok());
        assert!(check_range("budget.ratio", 1.5, 0.0, 1.0).is_err());
        assert!(check_range("budget.ratio", f64::NAN, 0.0, 1.0).is_err());
        assert_eq!(
            check_rate("breaker.failure_rate", 1.5)
                .unwrap_err()
                .to_string(),
            "invalid `breaker.failure_rate`: 1.5 is outside (0, 1]"
        );
        assert!(check_rate("breaker.failure_rate", 0.0).is_err());
    }
}
