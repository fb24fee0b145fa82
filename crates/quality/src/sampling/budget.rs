//! The judge's spending per hour for one task type.
//!
//! The decision: a fixed window, not a sliding one. The budget resets at the start of
//! each hour counted from the first sample, so "spent" is one number and one start
//! time, and a burst at the end of one window and the start of the next can spend
//! twice the budget within an hour at most: the budget bounds spending per hour, and
//! a few samples more or less scored is of no consequence.

/// One hour, in milliseconds.
const HOUR_MS: u64 = 3_600_000;

/// A budget per hour, in US dollars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Budget {
    per_hour: f64,
    window_start_ms: Option<u64>,
    spent: f64,
}

impl Budget {
    /// A budget of `per_hour` US dollars each hour.
    pub(crate) fn new(per_hour: f64) -> Budget {
        Budget {
            per_hour,
            window_start_ms: None,
            spent: 0.0,
        }
    }

    /// Whether a sample may be scored at `now_ms`: something is left of this hour's
    /// budget. A grading that costs nothing is always allowed (`needs_judge` false).
    pub(crate) fn allows(&mut self, now_ms: u64, needs_judge: bool) -> bool {
        self.roll(now_ms);
        !needs_judge || self.spent < self.per_hour
    }

    /// Records `usd` spent at `now_ms`.
    pub(crate) fn spend(&mut self, now_ms: u64, usd: f64) {
        self.roll(now_ms);
        if usd.is_finite() && usd > 0.0 {
            self.spent += usd;
        }
    }

    fn roll(&mut self, now_ms: u64) {
        match self.window_start_ms {
            Some(start) if now_ms.saturating_sub(start) < HOUR_MS => {}
            _ => {
                self.window_start_ms = Some(now_ms);
                self.spent = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_judges_until_the_hour_is_over() {
        let mut budget = Budget::new(0.01);
        assert!(budget.allows(0, true));
        budget.spend(0, 0.006);
        assert!(budget.allows(1_000, true));
        budget.spend(1_000, 0.006);
        assert!(!budget.allows(2_000, true), "spent 0.012 of 0.01");
        assert!(
            budget.allows(2_000, false),
            "deterministic graders cost nothing"
        );
        assert!(budget.allows(HOUR_MS, true), "a new hour, a new budget");
    }

    #[test]
    fn a_zero_budget_never_pays_a_judge() {
        let mut budget = Budget::new(0.0);
        assert!(!budget.allows(0, true));
        assert!(budget.allows(0, false));
    }
}
