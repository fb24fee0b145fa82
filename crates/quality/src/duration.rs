//! Human durations in suite files and graders: `"250ms"`, `"2s"`, `"1.5s"`, `"2m"`.
//!
//! The configuration crate has its own parser, but this crate sits beside it in the
//! layering, not above it; a duration here is a number and one of three units, which
//! is all a latency threshold or a case timeout needs.

use std::time::Duration;

/// Parses `"250ms"`, `"2s"`, `"1.5s"` or `"2m"`: a positive number and a unit.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!(
            "{text:?} is not a duration: write a number and ms, s or m (\"250ms\", \"2s\")"
        ));
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: {number:?} is not a number"))?;
    let seconds = value * scale;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{text:?} must be above 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Milliseconds as a whole number, for reports and stored settings.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_say_why_not() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse(" 1.5s "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "2", "2h", "-1s", "0ms", "xs", "2 days"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
