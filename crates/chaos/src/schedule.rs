//! Game days: experiments of the library run against the live deployment at set times,
//! so that a safeguard broken by a later configuration change is caught by the next
//! run rather than by the next outage.
//!
//! The decision: one experiment at a time, in the order they fall due, each next run
//! counted from the end of the last (a run that overran its period does not queue a
//! second one behind it). When a run is due is a pure function ([`next_due`]) of the
//! entry and an instant, so the schedule is tested without waiting; the loop only
//! sleeps until the earliest one and hands each report on.

use std::future::Future;
use std::time::Duration;

use crate::experiment::{Experiment, Report, Runner};

/// One day in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// When a scheduled experiment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every period, counted from the start and then from the end of each run.
    Every(Duration),
    /// Every day at this many minutes after midnight, UTC.
    DailyAt {
        /// Minutes after midnight UTC, below 1440.
        minute_of_day: u32,
    },
}

/// A scheduled experiment.
#[derive(Debug, Clone)]
pub struct GameDay {
    /// The file it was read from.
    pub file: String,
    /// The experiment, its placeholders filled in.
    pub experiment: Experiment,
    /// When it runs.
    pub when: When,
}

/// The first instant (Unix milliseconds) after `after_ms` at which `when` is due.
pub fn next_due(when: When, after_ms: u64) -> u64 {
    match when {
        When::Every(period) => {
            let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
            after_ms.saturating_add(period.max(1))
        }
        When::DailyAt { minute_of_day } => {
            let today = after_ms - after_ms % DAY_MS + u64::from(minute_of_day) * 60_000;
            if today > after_ms {
                today
            } else {
                today + DAY_MS
            }
        }
    }
}

/// Runs `days` on their schedule until `shutdown` completes, handing each finished
/// run to `record` (a run that could not start is an `Err` with why). A run under way
/// when `shutdown` completes is finished first, rollbacks included.
pub async fn run(
    runner: Runner,
    days: Vec<GameDay>,
    record: impl Fn(&GameDay, Result<Report, String>) + Send,
    shutdown: impl Future<Output = ()>,
) {
    if days.is_empty() {
        return;
    }
    let clock = std::sync::Arc::clone(&runner.clock);
    let start = clock.unix_millis();
    let mut due: Vec<u64> = days.iter().map(|d| next_due(d.when, start)).collect();
    tokio::pin!(shutdown);
    loop {
        let Some((i, at)) = due.iter().copied().enumerate().min_by_key(|(_, at)| *at) else {
            return;
        };
        let wait = Duration::from_millis(at.saturating_sub(clock.unix_millis()));
        tokio::select! {
            () = clock.sleep_until(clock.now() + wait) => {}
            () = &mut shutdown => return,
        }
        let day = &days[i];
        tracing::info!(experiment = %day.file, "game day: running a scheduled experiment");
        // Not cut short by a shutdown: its rollbacks must run, so the caller waits
        // for this future to end.
        let report = runner.run(&day.experiment, &day.file).await;
        record(day, report);
        due[i] = next_due(day.when, clock.unix_millis());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counts_from_the_instant_given() {
        let when = When::Every(Duration::from_secs(2));
        assert_eq!(next_due(when, 10_000), 12_000);
    }

    #[test]
    fn a_daily_time_is_today_when_still_ahead_and_tomorrow_otherwise() {
        let when = When::DailyAt { minute_of_day: 210 }; // 03:30
        let day = 20_000 * DAY_MS;
        let at = day + 210 * 60_000;
        assert_eq!(next_due(when, day), at);
        assert_eq!(next_due(when, at - 1), at);
        assert_eq!(next_due(when, at), at + DAY_MS);
        assert_eq!(next_due(when, day + 23 * 3_600_000), at + DAY_MS);
    }
}
