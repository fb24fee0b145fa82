//! The human forms durations and sizes are written in: `"250ms"`, `"30s"`, `"2m"`,
//! `"4MiB"`.
//!
//! A bare number of seconds or bytes is ambiguous to a reader (is `30` seconds or
//! milliseconds?), so durations always carry a unit; sizes may be a plain byte count,
//! which is not ambiguous.

use std::fmt;
use std::time::Duration;

use holdfast_policy::setting::parse_duration;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration written as a number and a unit: `ms`, `s`, `m` or `h` (`"250ms"`,
/// `"1.5s"`, `"2m"`). `"0"` is zero; negative durations are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }

    /// `s` seconds.
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like \"250ms\", \"30s\" or \"2m\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        parse_duration("duration", text)
            .map(HumanDuration)
            .map_err(|e| E::custom(e.problem))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanDuration, E> {
        Err(E::custom(format!(
            "{n} has no unit: write a duration as a string like \"{n}s\" or \"{n}ms\""
        )))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanDuration, E> {
        Err(E::custom(format!(
            "{n} has no unit: write a duration as a string like \"{n}s\" or \"{n}ms\""
        )))
    }
}

/// A size in bytes: a plain integer (`4194304`) or a number and a unit: `B`, `KB`,
/// `MB`, `GB` (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), as in `"4MiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size like \"4MiB\" or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
        u64::try_from(n)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("{n} is negative; a size is at least 0 bytes")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
        parse_size(text).map(ByteSize).map_err(E::custom)
    }
}

/// Parses `"4MiB"`, `"512KB"`, `"100B"`, `"1.5GiB"`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like \"4MiB\" or \"512KB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    let bytes = value * scale as f64;
    if bytes.is_finite() && bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(format!("`{text}` is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        d: Option<HumanDuration>,
        s: Option<ByteSize>,
    }

    fn doc(text: &str) -> Result<Doc, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(
            doc("d = \"250ms\"").unwrap().d,
            Some(HumanDuration::millis(250))
        );
        assert_eq!(doc("d = \"2m\"").unwrap().d, Some(HumanDuration::secs(120)));
        let err = doc("d = 30").err().unwrap();
        assert!(err.message().contains("\"30s\""), "{err}");
        assert!(doc("d = \"-5s\"").is_err());
    }

    #[test]
    fn sizes_take_units_or_bytes() {
        assert_eq!(doc("s = \"4MiB\"").unwrap().s, Some(ByteSize(4 << 20)));
        assert_eq!(doc("s = \"512KB\"").unwrap().s, Some(ByteSize(512_000)));
        assert_eq!(doc("s = 1024").unwrap().s, Some(ByteSize(1024)));
        assert!(doc("s = -1").is_err());
        assert!(doc("s = \"4 parsecs\"").is_err());
        assert!(doc("s = \"MiB\"").is_err());
    }
}
