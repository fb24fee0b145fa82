//! The part of `holdfast serve` that runs `[chaos] schedule`: the scheduled
//! experiments are read and checked before the server binds (a bad one stops the start
//! with its line and field, as a bad workflow file does), then run against the node's
//! own address by `holdfast_chaos::schedule`, each result logged, appended to the
//! `[chaos] history` file when there is one, and handed to the server's game-day sink
//! (dashboard, `/metrics`, the `chaos_failed` alert). At start the history's latest
//! results are handed to the sink first, so a restart keeps the panel and the alert.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use holdfast_chaos::experiment::{Experiment, Report, Runner};
use holdfast_chaos::schedule::{self, GameDay, When};
use holdfast_config::{Config, GameDayTime};
use holdfast_policy::Clock;
use holdfast_server::{GameDayResult, GameDaySink};

use super::usage;

/// The scheduled experiments, read and checked.
pub(crate) fn load(config: &Config) -> anyhow::Result<Vec<GameDay>> {
    let mut days = Vec::with_capacity(config.chaos.schedule.len());
    for entry in &config.chaos.schedule {
        let vars: BTreeMap<String, String> = entry.vars.clone();
        let experiment = Experiment::load(&entry.file, &vars)
            .map_err(|e| usage(format!("[chaos] schedule: {e}")))?;
        days.push(GameDay {
            file: entry.file.display().to_string(),
            experiment,
            when: match entry.when {
                GameDayTime::Every(period) => When::Every(period),
                GameDayTime::DailyAt { minute_of_day } => When::DailyAt { minute_of_day },
            },
        });
    }
    Ok(days)
}

/// Runs `days` against the server at `addr` until `shutdown`.
pub(crate) async fn run(
    config: &Config,
    days: Vec<GameDay>,
    addr: SocketAddr,
    clock: Arc<dyn Clock>,
    sink: GameDaySink,
    shutdown: impl Future<Output = ()>,
) {
    // A node listening on every interface is reached on loopback.
    let host = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let key = config.chaos.client_key.as_ref().and_then(|name| {
        let entry = config.client_keys.iter().find(|k| &k.name == name)?;
        entry.key.as_ref().map(|secret| secret.expose().to_owned())
    });
    let runner = Runner {
        server: format!("http://{}", SocketAddr::new(host, addr.port())),
        key,
        clock,
        progress: Arc::new(|line: &str| tracing::debug!(target: "holdfast::game_day", "{line}")),
    };
    let history = config.chaos.history.clone();
    if let Some(path) = &history {
        for result in read_history(path) {
            sink(result);
        }
    }
    let record = move |day: &GameDay, report: Result<Report, String>| {
        let result = match report {
            Ok(report) => GameDayResult {
                experiment: day.file.clone(),
                title: report.title.clone(),
                started_unix_ms: report.started_unix_ms,
                passed: report.verdict.passed(),
                verdict: report.verdict.to_string(),
            },
            Err(why) => GameDayResult {
                experiment: day.file.clone(),
                title: day.experiment.title.clone(),
                started_unix_ms: 0,
                passed: false,
                verdict: format!("FAILED: the experiment could not start: {why}"),
            },
        };
        let (experiment, verdict) = (&result.experiment, &result.verdict);
        if result.passed {
            tracing::info!(%experiment, %verdict, "game day passed");
        } else {
            tracing::warn!(%experiment, %verdict, "game day failed");
        }
        if let Some(path) = &history
            && let Err(e) = append(path, &result)
        {
            tracing::warn!(file = %path.display(), error = %e, "a game day could not be written to the history");
        }
        sink(result);
    };
    schedule::run(runner, days, record, shutdown).await;
}

/// The most results read back from the history at start.
const READ_BACK: usize = 100;

/// The latest results of the history file, oldest first; none when it does not exist
/// yet. A line that cannot be read is logged and skipped.
fn read_history(path: &Path) -> Vec<GameDayResult> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the game-day history could not be read");
            return Vec::new();
        }
    };
    let mut results = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(result) => results.push(result),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = i + 1, error = %e, "a game-day history line was skipped");
            }
        }
    }
    let skip = results.len().saturating_sub(READ_BACK);
    results.split_off(skip)
}

/// Appends one result to the history file, created if need be.
fn append(path: &Path, result: &GameDayResult) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(result).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(&line)?;
    file.sync_data()
}
