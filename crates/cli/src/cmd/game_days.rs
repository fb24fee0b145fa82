//! The part of `holdfast serve` that runs `[chaos] schedule`: the scheduled
//! experiments are read and checked before the server binds (a bad one stops the start
//! with its line and field, as a bad workflow file does), then run against the node's
//! own address by `holdfast_chaos::schedule`, each result handed to the server's
//! game-day sink (dashboard, `/metrics`, the `chaos_failed` alert).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
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
        sink(result);
    };
    schedule::run(runner, days, record, shutdown).await;
}
