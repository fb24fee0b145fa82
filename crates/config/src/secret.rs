//! Secrets (provider keys, client keys) that cannot leak by accident.
//!
//! A secret is read from the environment variable the file names, never from the file.
//! Its `Debug` and `Display` print `**REDACTED**`, so a `{:?}` of a whole configuration
//! in a log or an error is safe; the value comes out only through [`Secret::expose`],
//! a name that stands out in review.

use std::fmt;
use std::sync::Arc;

/// A secret value. Prints as `**REDACTED**`.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: for the one header or comparison that needs it, never for
    /// logs, metrics, events or errors.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time that does not depend on where they
    /// first differ (for checking client keys).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, byte) in a.iter().enumerate() {
            let other = b.get(i).copied().unwrap_or(!*byte);
            diff |= usize::from(byte ^ other);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_redacted_and_exposes_on_request() {
        let secret = Secret::new("sk-very-secret");
        assert_eq!(
            format!("{secret:?} {secret} {secret:#?}"),
            "**REDACTED** **REDACTED** **REDACTED**"
        );
        assert_eq!(secret.expose(), "sk-very-secret");
    }

    #[test]
    fn matches_only_the_same_value() {
        let secret = Secret::new("abc");
        assert!(secret.matches("abc"));
        for other in ["", "ab", "abd", "abcd", "xbc"] {
            assert!(!secret.matches(other), "{other}");
        }
    }
}
