//! Time, injected.
//!
//! Every mechanism in the policy reads time through [`Clock`] and takes `now` as an
//! argument, so the seeded simulator and the tests can drive hours of traffic in
//! milliseconds and get the same trace from the same seed. [`Instant`] is our own
//! monotonic point (nanoseconds since the clock's origin) rather than
//! `std::time::Instant`, because a simulated clock must be able to name any point.

use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::time::Duration;

/// A point on a [`Clock`]'s monotonic timeline, in nanoseconds since its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    /// The last instant: the deadline of a call that has none.
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `elapsed` after the origin.
    pub fn from_origin(elapsed: Duration) -> Self {
        Instant(saturating_nanos(elapsed))
    }

    /// Time since the origin.
    pub fn since_origin(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Nanoseconds since the origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(saturating_nanos(rhs)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(saturating_nanos(rhs)))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.since_origin().as_secs_f64())
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A future that completes at a point in time.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of time for everything in holdfast.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Completes once [`Clock::now`] has reached `at`.
    fn sleep_until(&self, at: Instant) -> Sleep;

    /// Milliseconds since the Unix epoch, for timestamps people read and stores keep.
    fn unix_millis(&self) -> u64;
}

/// The one real clock: tokio's monotonic time, so that tests which pause tokio's time
/// (`tokio::time::pause`) control it too.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: tokio::time::Instant,
    unix_origin_millis: u64,
}

impl SystemClock {
    /// A clock whose origin is now.
    #[allow(clippy::disallowed_methods)] // the one real clock
    pub fn new() -> Self {
        let unix_origin_millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        SystemClock {
            origin: tokio::time::Instant::now(),
            unix_origin_millis,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one real clock
    fn now(&self) -> Instant {
        Instant::from_origin(tokio::time::Instant::now().saturating_duration_since(self.origin))
    }

    #[allow(clippy::disallowed_methods)] // the one real clock
    fn sleep_until(&self, at: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(self.origin + at.since_origin()))
    }

    fn unix_millis(&self) -> u64 {
        self.unix_origin_millis
            .saturating_add(u64::try_from(self.now().since_origin().as_millis()).unwrap_or(0))
    }
}

/// A clock that moves only when told to: for pure tests and the simulator.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: std::sync::Arc<std::sync::Mutex<Instant>>,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock at its origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = *now + by;
    }

    /// Moves the clock to `at` if that is later than now.
    pub fn advance_to(&self, at: Instant) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if at > *now {
            *now = at;
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes at once: a manual clock's owner advances it explicitly.
    fn sleep_until(&self, at: Instant) -> Sleep {
        self.advance_to(at);
        Box::pin(std::future::ready(()))
    }

    fn unix_millis(&self) -> u64 {
        u64::try_from(self.now().since_origin().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_origin(Duration::from_secs(1));
        assert_eq!((t - Duration::from_secs(5)), Instant::ZERO);
        assert_eq!(
            t.saturating_duration_since(t + Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!((t + Duration::MAX).as_nanos(), u64::MAX);
    }

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(5));
        clock.advance_to(Instant::ZERO);
        assert_eq!(clock.now(), Instant::from_origin(Duration::from_millis(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_follows_paused_tokio_time() {
        let clock = SystemClock::new();
        let start = clock.now();
        clock.sleep_until(start + Duration::from_secs(30)).await;
        assert!(clock.now() >= start + Duration::from_secs(30));
    }
}
