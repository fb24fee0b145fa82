//! Timing helpers: the one place benchmarks read the wall clock.

use std::time::Duration;

/// Runs `f` `iterations` times and returns the mean time per iteration.
#[allow(clippy::disallowed_methods)] // benchmarks measure wall time by definition
pub fn mean_per_iteration(iterations: u32, mut f: impl FnMut()) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations.max(1)
}

/// Times one future.
#[allow(clippy::disallowed_methods)] // benchmarks measure wall time by definition
pub async fn time_async<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = std::time::Instant::now();
    let value = f.await;
    (value, start.elapsed())
}

/// Formats a duration in the unit that reads best.
pub fn human(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 10_000 {
        format!("{nanos} ns")
    } else if nanos < 10_000_000 {
        format!("{:.1} µs", nanos as f64 / 1e3)
    } else {
        format!("{:.1} ms", nanos as f64 / 1e6)
    }
}

/// Measures wall time: latency samples and run lengths.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts now.
    #[allow(clippy::disallowed_methods)] // benchmarks measure wall time by definition
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Waits in real time (a benchmark paces itself by the wall clock).
#[allow(clippy::disallowed_methods)] // benchmarks run in real time by definition
pub async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// The `p`-th percentile (0..=100) of sorted samples, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
