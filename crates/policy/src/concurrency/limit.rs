//! The adaptive concurrency limit of one target: how many calls may be in flight.
//!
//! A gradient limiter in the manner of Netflix's Gradient2: the target's recent
//! latency (a moving average over the last ten to a hundred answers) against its
//! long-run latency (one over about a thousand) says whether calls queue inside the
//! provider. Both are kept on the logarithm of the latency per output token, so that
//! neither a long answer nor one answer in the heavy tail of an LLM's latencies moves
//! them much. The long-run one stops learning once recent latency is halfway to the
//! tolerance, so that overload does not become the norm, unless it lasts a whole
//! `baseline_window` (then the provider's normal has changed, and is taken as it is);
//! it is kept within twice the recent one, so that it follows a provider that got
//! faster. An earlier design took the lowest the recent average reached as the no-load
//! latency: with heavy-tailed latencies that sits far below the typical answer, and
//! it shed healthy traffic.
//!
//! Recent latency within `tolerance` of the long-run latency counts as no load; so
//! does anything within three standard errors of the recent average, which the spread
//! of single answers sets: a provider whose answers vary tenfold is not judged
//! overloaded by the luck of its last few (the average then spans more answers).
//! Beyond, the limit is cut to its share `long-run / recent` (Vegas's estimate of the
//! calls not queued in the provider, at least half); an overload answer (429, 503, a
//! timeout) cuts it by `backoff` as AIMD does. A cut is made once per window, as TCP
//! does: the answers of calls sent before the calls in flight came down to the cut
//! limit ran at the old load and cannot cut again, so that one overload is one cut,
//! and a provider that refuses a share of calls at any load does not drive the limit
//! to its floor. Otherwise, while the limit is used, it grows by Gradient2's headroom
//! (its square root) spread over a round trip, a tenth as fast just under the limit of
//! the last small cut: that is where the provider's knee was, and every probe above it
//! slows every call in flight. Until the first sign of load the limit grows with
//! demand instead.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_positive, check_range};

/// Adaptive limit settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The limit before anything is known; within `min..=max`. Until the first sign of
    /// load it grows by one per call that finds every slot taken.
    pub initial: u32,
    /// The limit never goes below this; ≥ 1.
    pub min: u32,
    /// The limit never goes above this; ≥ `min`.
    pub max: u32,
    /// Recent latency up to this multiple of the long-run latency counts as no load
    /// (or more, where the target's latencies vary so much that a smaller rise could
    /// be chance); in `1.0..=10.0`. Low by default: past a provider's knee every call
    /// in flight slows, and the first tenth is the first sign of it.
    pub tolerance: f64,
    /// The factor an overload answer multiplies the limit by; in `0.1..=0.99`.
    pub backoff: f64,
    /// How long recent latency must stay over the tolerance before it is taken as the
    /// provider's new normal; > 0.
    pub baseline_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial: 4,
            min: 1,
            max: 1_000,
            tolerance: 1.1,
            backoff: 0.9,
            baseline_window: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.min == 0 {
            return Err(InvalidSetting::new("concurrency.min", "must be at least 1"));
        }
        if self.max < self.min {
            return Err(InvalidSetting::new(
                "concurrency.max",
                format!("{} is below concurrency.min ({})", self.max, self.min),
            ));
        }
        if !(self.min..=self.max).contains(&self.initial) {
            return Err(InvalidSetting::new(
                "concurrency.initial",
                format!("{} is outside {}..={}", self.initial, self.min, self.max),
            ));
        }
        check_range("concurrency.tolerance", self.tolerance, 1.0, 10.0)?;
        check_range("concurrency.backoff", self.backoff, 0.1, 0.99)?;
        check_positive("concurrency.baseline_window", self.baseline_window)?;
        Ok(())
    }
}

/// How an attempt ended, as the limit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// An answer, after `latency`, `units` long (output tokens, or 1 when unknown).
    Answered {
        /// From start to answer.
        latency: Duration,
        /// What the latency is divided by.
        units: u32,
    },
    /// The target said it is over capacity, or did not answer in time, after
    /// `latency`.
    Overloaded {
        /// From start to refusal.
        latency: Duration,
    },
    /// Says nothing about load (a bad request, a cancelled hedge).
    Neutral,
}

/// Weight of the newest answer in the recent average: between about the last ten
/// answers (a provider whose latency hardly varies) and the last hundred (one whose
/// latencies vary tenfold, where ten would be mostly luck).
const RECENT_WEIGHT: (f64, f64) = (0.01, 0.1);
/// Weight of the newest answer in the long-run average: about the last thousand.
const LONG_WEIGHT: f64 = 0.002;
/// Answers before the averages are judged: until then they lean on too few.
const WARM_UP: u32 = 20;
/// Standard errors of the recent average that count as chance, not load.
const NOISE: f64 = 3.0;
/// The long-run average is kept within this factor above the recent one, so that it
/// follows a provider that got faster (or the end of an overload) without waiting a
/// thousand answers.
const RECOVERY: f64 = 2.0;
/// The share of Gradient2's headroom added per round trip, and the share of it left
/// just under the limit of the last cut.
const GROWTH: f64 = 0.2;
const CAUTION: f64 = 0.1;
/// A latency cut by this factor or less deep marks the knee.
const KNEE_CUT: f64 = 0.8;

/// The limit and what it is learned from.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    config: Config,
    limit: f64,
    /// The logarithm of seconds per unit: its recent and long-run averages, and the
    /// spread (variance) of single answers.
    recent: Option<f64>,
    long: Option<f64>,
    spread: f64,
    /// The last answer counted in the spread.
    previous: Option<f64>,
    /// Since when recent latency has been over the tolerance, if it is.
    over_since: Option<Instant>,
    /// When the limit was last cut, and when the calls in flight came down to the
    /// cut limit afterwards.
    cut_made: Option<Instant>,
    settled: Option<Instant>,
    /// Answers of attempts started since then, and the sum of their logarithms.
    fresh: u32,
    fresh_sum: f64,
    /// The limit the last latency cut was made from: the provider's knee, as far as
    /// is known.
    knee: Option<f64>,
    /// Answers seen: the averages mean something only after a few.
    answers: u32,
    /// No sign of load yet: the limit follows demand.
    slow_start: bool,
}

impl AdaptiveLimit {
    /// A limit at `config.initial`.
    pub fn new(config: Config, _now: Instant) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(AdaptiveLimit {
            config,
            limit: f64::from(config.initial),
            recent: None,
            long: None,
            spread: 0.0,
            previous: None,
            over_since: None,
            cut_made: None,
            settled: None,
            fresh: 0,
            fresh_sum: 0.0,
            knee: None,
            answers: 0,
            slow_start: true,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls allowed in flight now.
    pub fn current(&self) -> u32 {
        // In min..=max by construction; the cast only drops the fraction.
        self.limit as u32
    }

    /// The long-run latency per unit (a geometric mean), once one answer has been seen.
    pub fn baseline(&self) -> Option<Duration> {
        self.long.map(seconds)
    }

    /// The recent latency per unit (a geometric mean), once one answer has been seen.
    pub fn recent(&self) -> Option<Duration> {
        self.recent.map(seconds)
    }

    /// A call found every slot taken. Until the first sign of load the limit grows
    /// to meet demand: growing only with answers (TCP's slow start) takes minutes to
    /// reach the hundreds of calls an LLM keeps in flight for seconds each, and
    /// calls wait, or are shed, meanwhile.
    pub fn wanted(&mut self) {
        if self.slow_start {
            self.limit = (self.limit + 1.0).min(f64::from(self.config.max));
        }
    }

    /// Learns from one finished attempt, which ran with `in_flight` calls (itself
    /// included) on the target.
    pub fn record(&mut self, now: Instant, sample: Sample, in_flight: u32) {
        let latency = match sample {
            Sample::Answered { latency, .. } | Sample::Overloaded { latency } => latency,
            Sample::Neutral => return,
        };
        // An attempt that started before the calls in flight came down to the last
        // cut's limit ran at the old load: what it says was acted on already, and
        // acted on again it would cut twice for one overload (TCP's once per window).
        // One that started after ran at the new limit, so an overload it meets is news.
        if self.settled.is_none() && in_flight <= self.current() {
            self.settled = Some(now);
            // What the recent average holds beyond the tolerance is the old load's:
            // the answers from here on say whether the new limit is still too high.
            if let (Some(recent), Some(long)) = (self.recent, self.long) {
                self.recent = Some(recent.min(long + self.tolerance()));
            }
        }
        let started = now.since_origin().saturating_sub(latency);
        let fresh = self.cut_made.is_none()
            || self
                .settled
                .is_some_and(|settled| started >= settled.since_origin());
        if !fresh {
            return;
        }
        match sample {
            Sample::Answered { latency, units } => {
                let per_unit = latency.as_secs_f64() / f64::from(units.max(1));
                self.fresh = self.fresh.saturating_add(1);
                self.fresh_sum += per_unit.max(1e-9).ln();
                self.observe(now, per_unit);
                self.adjust(now, in_flight);
            }
            Sample::Overloaded { .. } => self.cut(now, self.config.backoff),
            Sample::Neutral => {}
        }
    }

    fn observe(&mut self, now: Instant, per_unit: f64) {
        let x = per_unit.max(1e-9).ln();
        self.answers = self.answers.saturating_add(1);
        let n = f64::from(self.answers);
        // Until an average has seen enough answers it is their plain mean, not a
        // moving one leaning on the first.
        let recent = match self.recent {
            Some(r) => r + self.recent_weight().max(1.0 / n) * (x - r),
            None => x,
        };
        self.recent = Some(recent);
        let Some(long) = self.long else {
            self.long = Some(x);
            self.previous = Some(x);
            return;
        };
        let rise = recent - long;
        let judged = self.answers > WARM_UP;
        if judged && rise > self.tolerance() {
            let since = *self.over_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.config.baseline_window {
                // Cuts did not bring latency back: it is the provider's latency now,
                // as the answers since the last cut tell it (the recent average was
                // held down at each cut).
                let latest = self.fresh_sum / f64::from(self.fresh.max(1));
                self.long = Some(if self.fresh > 0 { latest } else { recent });
                self.recent = self.long;
                self.over_since = None;
            }
            return;
        }
        self.over_since = None;
        let weight = LONG_WEIGHT.max(1.0 / n);
        if let Some(previous) = self.previous {
            // Half the squared step between successive answers: their variance when
            // they are independent draws, yet nearly blind to a level that moves with
            // load, which must not pass for noise.
            let step = x - previous;
            self.spread += weight * (step * step / 2.0 - self.spread);
        }
        self.previous = Some(x);
        // Halfway to the tolerance, and beyond what chance explains: a step of load.
        // Learned, answers just under the tolerance would raise the long-run latency
        // until the next step up looked normal too.
        let stepped = judged && rise > (self.tolerance() / 2.0).max(self.noise());
        let long = if stepped {
            long
        } else {
            long + weight * (x - long)
        };
        self.long = Some(long.min(recent + RECOVERY.ln() + self.noise()));
    }

    /// The recent average's weight: as heavy as lets a rise of `tolerance` stand out
    /// from the noise of single answers, within [`RECENT_WEIGHT`].
    fn recent_weight(&self) -> f64 {
        let tolerance = self.config.tolerance.ln();
        let (lightest, heaviest) = RECENT_WEIGHT;
        if self.spread <= 0.0 {
            return heaviest;
        }
        // The standard error of an average of weight w is σ·√(w / (2 − w)).
        (2.0 * tolerance * tolerance / (NOISE * NOISE * self.spread)).clamp(lightest, heaviest)
    }

    /// Standard errors of the recent average, in the logarithm.
    fn noise(&self) -> f64 {
        let weight = self.recent_weight();
        NOISE * (self.spread * weight / (2.0 - weight)).sqrt()
    }

    /// How far (in the logarithm) recent latency may rise over the long-run one and
    /// still count as no load.
    fn tolerance(&self) -> f64 {
        self.config.tolerance.ln().max(self.noise())
    }

    fn cut(&mut self, now: Instant, factor: f64) {
        self.limit = (self.limit * factor).max(f64::from(self.config.min));
        self.cut_made = Some(now);
        self.settled = None;
        self.fresh = 0;
        self.fresh_sum = 0.0;
        self.slow_start = false;
    }

    fn adjust(&mut self, now: Instant, in_flight: u32) {
        let (Some(recent), Some(long)) = (self.recent, self.long) else {
            return;
        };
        // Grow only when the limit is actually used: an idle target's limit must not
        // drift up to its maximum and then let a burst through unchecked.
        let used = f64::from(in_flight) >= self.limit * 0.5;
        let rise = recent - long;
        let limit = self.limit;
        if self.answers > WARM_UP && rise > self.tolerance() {
            // Once the recent average holds mostly answers sent since the last cut.
            let window = (1.0 / self.recent_weight()).round() as u32;
            if self.fresh >= window {
                // Calls in the provider beyond its no-load pace are queued there: keep
                // the share that is not (Vegas's estimate), at least half.
                let factor = (-rise).exp().max(0.5);
                // A small cut was a step just over the knee; a deep one says only that
                // the limit was far beyond it (or that calls of an older, higher
                // limit still crowd the provider), not where the knee is.
                self.knee = (factor >= KNEE_CUT).then_some(limit);
                self.cut(now, factor);
            }
            return;
        }
        if !used {
            return;
        }
        let next = if self.slow_start {
            // One more per answer doubles the limit every round trip, until the first
            // sign of load.
            limit + 1.0
        } else {
            if self.knee.is_some_and(|knee| limit >= knee + 1.0) {
                // Passed without a sign of load: the knee moved.
                self.knee = None;
            }
            let near_knee = self.knee.is_some_and(|knee| limit + 1.0 >= knee);
            let share = if near_knee { GROWTH * CAUTION } else { GROWTH };
            // Gradient2's headroom, spread over the round trip's `limit` answers.
            limit + share * limit.sqrt() / limit.max(1.0)
        };
        self.limit = next.clamp(f64::from(self.config.min), f64::from(self.config.max));
    }
}

fn seconds(log: f64) -> Duration {
    Duration::try_from_secs_f64(log.exp()).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    fn answered(ms: u64) -> Sample {
        Sample::Answered {
            latency: Duration::from_millis(ms),
            units: 1,
        }
    }

    #[test]
    fn grows_while_latency_stays_flat_and_the_limit_is_used() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..200 {
            let in_flight = limit.current();
            limit.record(at(i), answered(100), in_flight);
        }
        assert!(limit.current() > 100, "limit {}", limit.current());
    }

    #[test]
    fn an_idle_target_keeps_its_limit() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..200 {
            limit.record(at(i), answered(100), 1);
        }
        assert_eq!(limit.current(), 4);
    }

    /// `answers` answers of a provider kept at the limit, from `from_us`: each takes
    /// `latency(in flight)` ms and they come back spread over that time. The instant
    /// of the last one.
    fn saturate(
        limit: &mut AdaptiveLimit,
        from_us: u64,
        answers: u64,
        mut latency: impl FnMut(u32) -> u64,
    ) -> u64 {
        let mut now = from_us;
        for _ in 0..answers {
            let in_flight = limit.current();
            let ms = latency(in_flight);
            now += ms * 1_000 / u64::from(in_flight);
            let sample = answered(ms);
            limit.record(
                Instant::from_origin(Duration::from_micros(now)),
                sample,
                in_flight,
            );
        }
        now
    }

    #[test]
    fn settles_where_latency_starts_to_grow_with_load() {
        // A provider whose latency grows in proportion beyond 10 calls in flight: at a
        // tolerance of 1.1 the limit settles at 10 or 11. Light traffic first teaches
        // the no-load latency, then a flood uses every slot.
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..100 {
            limit.record(at(i * 100), answered(100), 1);
        }
        let latency = |in_flight: u32| 100 * u64::from(in_flight.max(10)) / 10;
        let now = saturate(&mut limit, 10_000_000, 2_000, latency);
        let mut seen = Vec::new();
        saturate(&mut limit, now, 1_000, |in_flight| {
            seen.push(in_flight);
            latency(in_flight)
        });
        let mean = seen.iter().map(|&l| f64::from(l)).sum::<f64>() / seen.len() as f64;
        assert!((9.5..=11.5).contains(&mean), "limit {mean:.2}");
    }

    #[test]
    fn overload_answers_cut_the_limit_down_to_its_floor() {
        let config = Config {
            initial: 20,
            ..Config::default()
        };
        let mut limit = AdaptiveLimit::new(config, at(0)).unwrap();
        let refused = Sample::Overloaded {
            latency: Duration::from_millis(100),
        };
        limit.record(at(1_000), answered(100), 1);
        limit.record(at(1_000), refused, 20);
        assert_eq!(limit.current(), 18);
        // Refusals while the calls of the old limit are still in flight are the same
        // signal.
        for i in 1..100 {
            limit.record(at(1_000 + i), refused, 20);
        }
        assert_eq!(limit.current(), 18);
        // Once they are down to the limit, each refusal of a call sent since is news.
        for i in 1..100 {
            limit.record(at(1_000 + i * 200), refused, 1);
        }
        assert_eq!(limit.current(), 1);
    }

    #[test]
    fn long_answers_are_not_mistaken_for_overload() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..500 {
            let units = if i % 2 == 0 { 10 } else { 500 };
            let sample = Sample::Answered {
                latency: Duration::from_millis(u64::from(units) * 20),
                units,
            };
            let in_flight = limit.current();
            limit.record(at(i), sample, in_flight);
        }
        assert!(limit.current() > 100, "limit {}", limit.current());
    }

    #[test]
    fn overload_does_not_become_the_norm_unless_it_lasts() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..1_000 {
            limit.record(at(i * 100), answered(100), 1);
        }
        // Three times slower whatever the limit: cut after cut does not bring it back,
        // for some 45 s.
        let now = saturate(&mut limit, 100_000_000, 150, |_| 300);
        let baseline = limit.baseline().unwrap().as_secs_f64();
        assert!((0.099..0.101).contains(&baseline), "{baseline}");
        assert_eq!(limit.current(), 1);
        // A whole window of it: that is the provider's latency now, and the limit
        // grows again from there.
        let now = saturate(&mut limit, now, 100, |_| 300);
        let baseline = limit.baseline().unwrap().as_secs_f64();
        assert!((0.29..0.31).contains(&baseline), "{baseline}");
        saturate(&mut limit, now, 300, |_| 300);
        assert!(limit.current() > 5, "limit {}", limit.current());
    }

    #[test]
    fn a_provider_that_got_faster_is_followed_within_a_few_answers() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..1_000 {
            limit.record(at(i), answered(400), 1);
        }
        for i in 1_000..1_100 {
            limit.record(at(i), answered(100), 1);
        }
        // Kept within twice the recent latency: an overload back to 400 ms shows.
        let baseline = limit.baseline().unwrap().as_secs_f64();
        assert!(baseline <= 0.21, "{baseline}");
    }

    #[test]
    fn bad_settings_are_refused_with_their_field() {
        let config = Config {
            min: 5,
            initial: 2,
            ..Config::default()
        };
        let err = AdaptiveLimit::new(config, at(0)).unwrap_err();
        assert_eq!(err.field, "concurrency.initial");
        let config = Config {
            backoff: 1.0,
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "concurrency.backoff");
    }
}
