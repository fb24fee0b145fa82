//! How a provider degrades with load: the one capacity model the simulator's targets
//! and the mock provider (`holdfast mock-provider --capacity N`) share.
//!
//! Up to `calls` calls in flight a provider answers at its usual pace; beyond that
//! each call takes longer by the square of the overload (calls in flight / `calls`):
//! an overloaded server thrashes, so it serves fewer calls per second the more it
//! holds; beyond twice `calls` it refuses new calls as overloaded. That is the
//! brownout a client makes worse by sending more (retries, no limit): every extra call
//! slows all the others, until they time out and are retried in turn.

use crate::setting::InvalidSetting;

/// A provider's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Calls it serves at full speed at once; ≥ 1.
    calls: u32,
}

/// What the calls in flight do to one more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Served at the usual pace.
    Within,
    /// Served, its latency multiplied by this factor (> 1, at most 4).
    Slowed(f64),
    /// Refused as overloaded (503).
    Over,
}

impl Capacity {
    /// A provider serving `calls` calls at once at full speed.
    pub fn new(calls: u32) -> Result<Self, InvalidSetting> {
        if calls == 0 {
            return Err(InvalidSetting::new("capacity", "must be at least 1"));
        }
        Ok(Capacity { calls })
    }

    /// Calls served at full speed at once.
    pub fn calls(self) -> u32 {
        self.calls
    }

    /// What a call meets when `in_flight` calls, itself included, are in the provider.
    pub fn load(self, in_flight: u32) -> Load {
        if in_flight <= self.calls {
            Load::Within
        } else if in_flight <= self.calls.saturating_mul(2) {
            let overload = f64::from(in_flight) / f64::from(self.calls);
            Load::Slowed(overload * overload)
        } else {
            Load::Over
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_beyond_capacity_and_refuses_beyond_twice_it() {
        let capacity = Capacity::new(10).unwrap();
        assert_eq!(capacity.load(10), Load::Within);
        assert_eq!(capacity.load(15), Load::Slowed(2.25));
        assert_eq!(capacity.load(20), Load::Slowed(4.0));
        assert_eq!(capacity.load(21), Load::Over);
        assert!(Capacity::new(0).is_err());
    }
}
