//! The fallback chain: which target to try next when one fails.
//!
//! A route is an ordered chain of targets (another deployment of the same model, then a
//! cheaper or larger-context model). Where a failed call may go depends on why it
//! failed: a retryable or target-specific failure (an outage, a refused key) may go to
//! any later target; a context overflow only to a target with a larger context window; a
//! content-filter refusal only to a target configured to take those; a bad request
//! nowhere, since every target would refuse it.

use std::time::Duration;

use crate::outcome::Outcome;
use crate::setting::InvalidSetting;

/// Identifies a target's shared state (breaker, budget, limits) in a
/// [`Registry`](crate::pipeline::Registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u32);

/// One target in a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The target.
    pub target: TargetId,
    /// Its context window in tokens, when known.
    pub context_window: Option<u64>,
    /// The longest one attempt on it may take (the deadline may cut it shorter).
    pub attempt_timeout: Duration,
    /// Whether requests that another target's content filter refused may go here.
    pub takes_filtered: bool,
}

impl Link {
    /// A link with no known context window, not taking filtered requests.
    pub fn new(target: TargetId, attempt_timeout: Duration) -> Self {
        Link {
            target,
            context_window: None,
            attempt_timeout,
            takes_filtered: false,
        }
    }

    /// Whether a request of `tokens` fits this target's context window.
    pub fn fits(&self, tokens: Option<u64>) -> bool {
        match (tokens, self.context_window) {
            (Some(tokens), Some(window)) => tokens <= window,
            (None, _) | (_, None) => true,
        }
    }
}

/// An ordered, non-empty chain of targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    links: Vec<Link>,
}

impl Chain {
    /// A chain of `links`, in order of preference.
    pub fn new(links: Vec<Link>) -> Result<Self, InvalidSetting> {
        if links.is_empty() {
            return Err(InvalidSetting::new(
                "targets",
                "a route needs at least one target",
            ));
        }
        for (i, link) in links.iter().enumerate() {
            if links[..i].iter().any(|l| l.target == link.target) {
                return Err(InvalidSetting::new(
                    "targets",
                    "a target appears twice in one route",
                ));
            }
            if link.attempt_timeout.is_zero() {
                return Err(InvalidSetting::new(
                    "timeouts.total",
                    "must be longer than zero",
                ));
            }
        }
        Ok(Chain { links })
    }

    /// The links, in order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link at `index`.
    pub fn get(&self, index: usize) -> Option<&Link> {
        self.links.get(index)
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Always false: a chain is never empty.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The first link after `from` not yet `used` that meets `needs`.
    pub fn next(&self, from: usize, needs: Needs, used: &[bool]) -> Option<usize> {
        (from + 1..self.links.len()).find(|&i| {
            let link = &self.links[i];
            !used.get(i).copied().unwrap_or(true) && needs.met_by(link)
        })
    }
}

/// What a fallback target must offer, given why earlier targets failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A context window larger than this.
    pub window_above: Option<u64>,
    /// Configured to take requests another target's content filter refused.
    pub takes_filtered: bool,
}

impl Needs {
    /// What a fallback needs after `outcome` on `failed`, on top of `self`; `None` when
    /// the outcome may not fall back at all.
    pub fn after(self, outcome: Outcome, failed: &Link) -> Option<Needs> {
        if !outcome.may_fall_back() {
            return None;
        }
        let mut needs = self;
        match outcome {
            Outcome::ContextOverflow => {
                // An unknown window cannot knowingly be beaten: any known one will do.
                let window = failed.context_window.unwrap_or(0);
                needs.window_above = Some(window.max(self.window_above.unwrap_or(0)));
            }
            Outcome::ContentFiltered => needs.takes_filtered = true,
            _ => {}
        }
        Some(needs)
    }

    /// Whether `link` offers what is needed.
    pub fn met_by(self, link: &Link) -> bool {
        (!self.takes_filtered || link.takes_filtered)
            && self
                .window_above
                .is_none_or(|above| link.context_window.is_some_and(|w| w > above))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        let link = |id, window, filtered| Link {
            target: TargetId(id),
            context_window: Some(window),
            attempt_timeout: Duration::from_secs(30),
            takes_filtered: filtered,
        };
        Chain::new(vec![
            link(0, 8_000, false),
            link(1, 8_000, false),
            link(2, 128_000, true),
        ])
        .unwrap()
    }

    #[test]
    fn outages_and_refused_keys_fall_back_in_order() {
        assert_eq!(
            next(0, Outcome::ServerError, &[true, false, false]),
            Some(1)
        );
        assert_eq!(next(0, Outcome::Auth, &[true, true, false]), Some(2));
        assert_eq!(next(2, Outcome::ServerError, &[true, true, true]), None);
    }

    fn next(from: usize, outcome: Outcome, used: &[bool]) -> Option<usize> {
        let c = chain();
        let needs = Needs::default().after(outcome, &c.links()[from])?;
        c.next(from, needs, used)
    }

    #[test]
    fn context_overflow_goes_only_to_a_larger_window() {
        assert_eq!(
            next(0, Outcome::ContextOverflow, &[true, false, false]),
            Some(2)
        );
        assert_eq!(
            next(2, Outcome::ContextOverflow, &[true, false, true]),
            None
        );
    }

    #[test]
    fn content_filtered_goes_only_to_targets_that_take_it() {
        assert_eq!(
            next(0, Outcome::ContentFiltered, &[true, false, false]),
            Some(2)
        );
    }

    #[test]
    fn bad_requests_never_fall_back() {
        assert_eq!(next(0, Outcome::BadRequest, &[true, false, false]), None);
    }

    #[test]
    fn rejects_empty_and_duplicate_chains() {
        assert_eq!(Chain::new(vec![]).unwrap_err().field, "targets");
        let l = Link::new(TargetId(1), Duration::from_secs(1));
        assert_eq!(Chain::new(vec![l.clone(), l]).unwrap_err().field, "targets");
    }

    #[test]
    fn fits_checks_known_windows_only() {
        let c = chain();
        let l = &c.links()[0];
        assert!(l.fits(Some(8_000)));
        assert!(!l.fits(Some(8_001)));
        assert!(l.fits(None));
    }
}
