//! Load shedding and adaptive concurrency per target: how many calls holdfast lets
//! into a provider at once, who waits for a slot, and who is turned away.
//!
//! A provider that slows down under load (a brownout) is pushed further over by every
//! call sent to it beyond what it can serve. A [`Limiter`] puts an [`AdaptiveLimit`]
//! on the calls in flight, learned from the target's latency and overload answers;
//! calls over the limit wait in a bounded [`WaitQueue`] ranked by priority and
//! deadline, and are shed with a Retry-After when they cannot be served in time; a
//! [`Throttle`] refuses a share of calls locally while the target keeps refusing them
//! itself. It is pure state like the rest of the pipeline: the call asks again at its
//! wake-up instead of being called back.

mod limit;
mod queue;
mod throttle;

use std::time::Duration;

pub use limit::{AdaptiveLimit, Config as LimitConfig, Sample};
pub use queue::{Full, Rank, WaitQueue};
pub use throttle::{Config as ThrottleConfig, Throttle};

use crate::clock::Instant;
use crate::outcome::Outcome;
use crate::setting::{InvalidSetting, check_positive};

/// Who is served first when a target is at its limit, and shed last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// A person or an agent is waiting for the answer.
    #[default]
    Interactive,
    /// Work that can wait or be retried later.
    Batch,
}

impl Priority {
    /// A stable name for configuration and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Batch => "batch",
        }
    }
}

/// A target's limiter settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The adaptive limit.
    pub limit: LimitConfig,
    /// Client-side throttling; `None` turns it off.
    pub throttle: Option<ThrottleConfig>,
    /// Calls that may wait for a slot; ≥ 1.
    pub max_queue: usize,
    /// The longest a call waits for a slot before it is shed; > 0.
    pub max_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limit: LimitConfig::default(),
            throttle: Some(ThrottleConfig::default()),
            max_queue: 1_000,
            max_wait: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.limit.validate()?;
        if let Some(throttle) = &self.throttle {
            throttle.validate()?;
        }
        if self.max_queue == 0 {
            return Err(InvalidSetting::new(
                "concurrency.max_queue",
                "must be at least 1",
            ));
        }
        check_positive("concurrency.max_wait", self.max_wait)?;
        Ok(())
    }
}

/// What a call asking for a slot is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free for it: start now.
    Go,
    /// Wait, and ask again at this instant.
    Wait(Instant),
    /// Refused locally: the target keeps refusing work (client-side throttling).
    Throttled,
    /// It cannot be served in time: give up, and come back after this long.
    Shed(Duration),
}

/// Shortest and longest interval between a waiting call's looks at the queue.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);
/// Looks per expected wait: a slot freed stays empty until the call next in line
/// looks, so the first in line looks often and the last seldom.
const LOOKS: u32 = 8;
/// Under a standing queue a call waits at most this many slots' worth (or a tenth of
/// `max_wait`, if longer): enough to keep every slot busy, short enough that what an
/// admitted call spends in line stays small against its time at the provider.
const STANDING_SLOTS: f64 = 2.0;
/// A waiting call that has not looked for this many of its intervals has gone.
const STALE_POLLS: u32 = 50;
/// The Retry-After of a shed call when nothing better is known.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Weight of the newest latency in the whole-call average (for wait estimates).
const SERVICE_WEIGHT: f64 = 0.1;

/// One target's limit, queue and throttle.
#[derive(Debug, Clone)]
pub struct Limiter {
    config: Config,
    limit: AdaptiveLimit,
    throttle: Option<Throttle>,
    queue: WaitQueue,
    /// Since when calls of each priority or a better one have been waiting without
    /// running out (by [`Priority`] order: interactive, then batch).
    waiting_since: [Option<Instant>; 2],
    in_flight: u32,
    /// Seconds a whole call takes, on average: how fast slots free up.
    service: Option<f64>,
    sheds: u64,
    throttled: u64,
}

impl Limiter {
    /// A limiter with validated `config`.
    pub fn new(config: Config, now: Instant) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(Limiter {
            limit: AdaptiveLimit::new(config.limit, now)?,
            throttle: config.throttle.map(Throttle::new).transpose()?,
            queue: WaitQueue::new(config.max_queue),
            waiting_since: [None; 2],
            config,
            in_flight: 0,
            service: None,
            sheds: 0,
            throttled: 0,
        })
    }

    /// Whether a throttle may refuse calls (and so needs a random draw).
    pub fn throttles(&self) -> bool {
        self.throttle.is_some()
    }

    /// Calls allowed in flight now.
    pub fn limit(&self) -> u32 {
        self.limit.current()
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Calls waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Calls shed since the start.
    pub fn sheds(&self) -> u64 {
        self.sheds
    }

    /// Calls refused locally by the throttle since the start.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// The adaptive limit, to read its estimates.
    pub fn adaptive(&self) -> &AdaptiveLimit {
        &self.limit
    }

    /// Whether the call ranked `rank` may start now, given a uniform `draw` in `[0, 1)`
    /// for the throttle and how long it has `waited` in the queue already. Changes
    /// nothing: [`Limiter::enqueue`] and [`Limiter::start`] do.
    pub fn check(&self, now: Instant, rank: Rank, waited: Duration, draw: f64) -> Admission {
        let queued = self.queue.contains(rank);
        if !queued
            && let Some(throttle) = &self.throttle
            && !throttle.allows(now, draw)
        {
            return Admission::Throttled;
        }
        let free = self.limit().saturating_sub(self.in_flight) as usize;
        let ahead = self.queue.ahead_of(rank);
        if ahead < free {
            return Admission::Go;
        }
        let wait = self.estimated_wait(ahead + 1 - free);
        let too_late = now + wait > rank.deadline;
        if too_late || waited.saturating_add(wait) > self.patience(now, rank) {
            return Admission::Shed(self.retry_after(wait));
        }
        let look = (wait / LOOKS).clamp(POLL_MIN, POLL_MAX);
        Admission::Wait(now + look)
    }

    /// How long the call ranked `rank` may wait for a slot. A queue that has held
    /// calls of its priority (or a better one) for `max_wait` without running out is
    /// not a burst being absorbed but a standing queue (overload): every call that
    /// waits long there is late, and the target gains nothing from it, since a call
    /// or two in line keep its slots busy. CoDel's insight, as Facebook applies it to
    /// server queues. Per priority, so that interactive calls arriving behind a
    /// standing queue of batch calls still wait their full `max_wait`.
    fn patience(&self, now: Instant, rank: Rank) -> Duration {
        let standing = self.waiting_since[rank.priority as usize]
            .is_some_and(|since| now.saturating_duration_since(since) >= self.config.max_wait);
        if !standing {
            return self.config.max_wait;
        }
        let slots = self
            .estimated_wait(1)
            .mul_f64(STANDING_SLOTS)
            .max(self.config.max_wait / 10);
        slots.min(self.config.max_wait)
    }

    /// Puts the call ranked `rank` in the queue (or notes that it looked again);
    /// `Err` with the Retry-After to give it when the queue has no room for it.
    pub fn enqueue(&mut self, now: Instant, rank: Rank) -> Result<(), Duration> {
        self.queue
            .forget_stale(now, POLL_MAX.saturating_mul(STALE_POLLS));
        self.note_empty();
        if !self.queue.contains(rank) {
            self.limit.wanted();
        }
        for (class, since) in self.waiting_since.iter_mut().enumerate() {
            if rank.priority as usize <= class && since.is_none() {
                *since = Some(now);
            }
        }
        self.queue.join(now, rank).map_err(|Full| {
            self.sheds += 1;
            self.retry_after(self.estimated_wait(self.queue.len()))
        })
    }

    /// Takes the call out of the queue, if it is there (it started elsewhere, or ended).
    pub fn leave(&mut self, rank: Rank) {
        self.queue.leave(rank);
        self.note_empty();
    }

    fn note_empty(&mut self) {
        let best = self.queue.best().map_or(usize::MAX, |p| p as usize);
        for (class, since) in self.waiting_since.iter_mut().enumerate() {
            if best > class {
                *since = None;
            }
        }
    }

    /// Keeps what was learned and forgets the calls: for a registry that takes over
    /// from another, whose calls in flight and waiting end against the old one.
    pub fn hand_over(&mut self) {
        self.in_flight = 0;
        self.queue = WaitQueue::new(self.config.max_queue);
        self.waiting_since = [None; 2];
    }

    /// Counts a call shed after [`Limiter::check`] said so.
    pub fn count_shed(&mut self) {
        self.sheds += 1;
    }

    /// Counts a call refused by the throttle.
    pub fn count_throttled(&mut self) {
        self.throttled += 1;
    }

    /// The call ranked `rank` starts an attempt: it leaves the queue and takes a slot.
    pub fn start(&mut self, rank: Rank) {
        self.queue.leave(rank);
        self.note_empty();
        self.in_flight += 1;
    }

    /// An attempt that took a slot ended after `latency` with `outcome`, `units` long
    /// (output tokens when known).
    pub fn finish(&mut self, now: Instant, outcome: Outcome, latency: Duration, units: u32) {
        let in_flight = self.in_flight;
        self.in_flight = self.in_flight.saturating_sub(1);
        let sample = sample(outcome, latency, units);
        self.limit.record(now, sample, in_flight);
        if let Sample::Answered { latency, .. } = sample {
            let seconds = latency.as_secs_f64();
            self.service = Some(match self.service {
                Some(s) => s + SERVICE_WEIGHT * (seconds - s),
                None => seconds,
            });
        }
        if let Some(throttle) = &mut self.throttle
            && outcome != Outcome::Cancelled
        {
            throttle.record(now, !matches!(sample, Sample::Overloaded { .. }));
        }
    }

    /// How long the `nth` call in line waits for a slot, at the current pace.
    fn estimated_wait(&self, nth: usize) -> Duration {
        let Some(service) = self.service else {
            return Duration::ZERO;
        };
        let per_slot = service / f64::from(self.limit().max(1));
        Duration::try_from_secs_f64(per_slot * nth as f64).unwrap_or(Duration::MAX)
    }

    fn retry_after(&self, wait: Duration) -> Duration {
        wait.max(SHED_RETRY_AFTER)
            .min(self.config.max_wait.max(SHED_RETRY_AFTER))
    }
}

/// What an attempt's outcome says about the target's load.
fn sample(outcome: Outcome, latency: Duration, units: u32) -> Sample {
    match outcome {
        Outcome::Ok => Sample::Answered { latency, units },
        Outcome::RateLimited { .. } | Outcome::Overloaded { .. } | Outcome::Timeout(_) => {
            Sample::Overloaded { latency }
        }
        Outcome::QuotaExhausted
        | Outcome::ServerError
        | Outcome::Connection
        | Outcome::Auth
        | Outcome::BadRequest
        | Outcome::NotFound
        | Outcome::ContextOverflow
        | Outcome::ContentFiltered
        | Outcome::InvalidOutput
        | Outcome::StreamInterrupted
        | Outcome::Cancelled
        | Outcome::EgressDenied => Sample::Neutral,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
