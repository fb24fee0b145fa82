//! CPU time of this process and of the whole machine, from `/proc` (Linux only).
//!
//! A throughput figure alone cannot say whether a run waited on the disk or ran out of
//! cores; the two CPU figures beside it can: a run that keeps every core busy is bound
//! by CPU (its own, or a database server's on the same machine), one that does not is
//! bound by waiting.

use std::time::Duration;

use anyhow::Context;

/// CPU time this process's threads have run so far (the sum of each live thread's
/// `/proc/self/task/TID/schedstat`, in nanoseconds).
pub fn process() -> anyhow::Result<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")?;
    let mut nanos = 0u64;
    for task in tasks {
        // A thread may exit between the listing and the read: it no longer counts.
        let Ok(text) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        nanos += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .context("parsing schedstat")?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// The machine's CPU counters (`cpu` line of `/proc/stat`), in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    busy: u64,
    total: u64,
}

impl Machine {
    /// The busy fraction of all cores since `before`, 0..=1.
    pub fn busy_since(&self, before: &Machine) -> f64 {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(before.busy) as f64 / total as f64
    }
}

/// Reads the machine's CPU counters now.
pub fn machine() -> anyhow::Result<Machine> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(Machine {
        busy: total.saturating_sub(idle),
        total,
    })
}
