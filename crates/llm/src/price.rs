//! Prices and the cost of a call.
//!
//! Prices are per million tokens, as providers publish them, so a configured price can
//! be checked against the provider's page by eye. A price is validated when it is made
//! (finite, not negative): a NaN in a price would silently poison every cost total.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// The price of a target, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPrice")]
pub struct Price {
    input_per_mtok: f64,
    output_per_mtok: f64,
}

/// A price as written, before validation.
#[derive(Deserialize)]
struct RawPrice {
    input_per_mtok: f64,
    output_per_mtok: f64,
}

impl TryFrom<RawPrice> for Price {
    type Error = PriceError;
    fn try_from(raw: RawPrice) -> Result<Self, PriceError> {
        Price::new(raw.input_per_mtok, raw.output_per_mtok)
    }
}

/// Why a price was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// A per-token price is negative, infinite or NaN.
    #[error("`{field}` must be a finite number >= 0, got {value}")]
    Invalid {
        /// `input_per_mtok` or `output_per_mtok`.
        field: &'static str,
        /// The refused value.
        value: f64,
    },
}

impl Price {
    /// Free: for local models and tests.
    pub const FREE: Price = Price {
        input_per_mtok: 0.0,
        output_per_mtok: 0.0,
    };

    /// A price from dollars per million input and output tokens; each must be finite
    /// and at least zero.
    pub fn new(input_per_mtok: f64, output_per_mtok: f64) -> Result<Self, PriceError> {
        for (field, value) in [
            ("input_per_mtok", input_per_mtok),
            ("output_per_mtok", output_per_mtok),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PriceError::Invalid { field, value });
            }
        }
        Ok(Price {
            input_per_mtok,
            output_per_mtok,
        })
    }

    /// Dollars per million input (prompt) tokens.
    pub fn input_per_mtok(&self) -> f64 {
        self.input_per_mtok
    }

    /// Dollars per million output (completion) tokens.
    pub fn output_per_mtok(&self) -> f64 {
        self.output_per_mtok
    }
}

/// Tokens consumed by one or more calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (cached ones included).
    pub input_tokens: u64,
    /// Generated tokens (reasoning ones included).
    pub output_tokens: u64,
}

impl Usage {
    /// Usage of `input_tokens` in and `output_tokens` out.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
        }
    }

    /// Input and output together.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, rhs: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(rhs.input_tokens),
            output_tokens: self.output_tokens.saturating_add(rhs.output_tokens),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        *self = *self + rhs;
    }
}

impl From<&crate::openai::Usage> for Usage {
    fn from(u: &crate::openai::Usage) -> Self {
        Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

/// The cost in US dollars of `usage` at `price`.
pub fn cost_usd(price: &Price, usage: &Usage) -> f64 {
    // u64 -> f64 loses precision only past 2^53 tokens.
    (usage.input_tokens as f64 * price.input_per_mtok
        + usage.output_tokens as f64 * price.output_per_mtok)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens() {
        let price = Price::new(2.5, 10.0).unwrap();
        let usage = Usage::new(1_000, 500) + Usage::new(1_000, 500);
        assert_eq!(usage, Usage::new(2_000, 1_000));
        assert!((cost_usd(&price, &usage) - 0.015).abs() < 1e-12);
        assert_eq!(cost_usd(&Price::FREE, &usage), 0.0);
    }

    #[test]
    fn bad_prices_are_refused_with_the_field() {
        for (i, o) in [(-1.0, 1.0), (1.0, f64::NAN), (f64::INFINITY, 0.0)] {
            assert!(Price::new(i, o).is_err());
        }
        let err = serde_json::from_str::<Price>(r#"{"input_per_mtok": 1, "output_per_mtok": -2}"#)
            .unwrap_err();
        assert!(err.to_string().contains("output_per_mtok"), "{err}");
    }

    #[test]
    fn usage_adds_without_overflow() {
        let mut usage = Usage::new(u64::MAX, 1);
        usage += Usage::new(1, 1);
        assert_eq!(usage, Usage::new(u64::MAX, 2));
    }
}
