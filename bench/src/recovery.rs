//! Recovery after `kill -9`: the release `holdfast serve` on a SQLite data directory is
//! killed mid-load and started again on the same directory; how soon does work resume,
//! and when is every interrupted task done?
//!
//! Times are read from the tasks' journals (`at_ms` of `step_succeeded` and
//! `task_succeeded`), which the server stamps when it commits them, so polling adds no
//! error. The restart is timed twice: from the process's start and from its
//! `listening on` line. A task counts as interrupted when it finished after the kill.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use holdfast_policy::{Clock, SystemClock};
use serde_json::{Value, json};

use crate::measure::{Stopwatch, pause};
use crate::process::Server;

/// The workflow the recovery run registers.
const WORKFLOW: &str = "bench-recovery";

/// How long the restarted server may take to finish every task.
const DEADLINE: Duration = Duration::from_secs(120);

/// How to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Tasks to submit before the kill.
    pub tasks: usize,
    /// The three steps' sleeps, e.g. `["100ms", "300ms", "100ms"]`.
    pub sleeps: [String; 3],
    /// How long after the last submission the server is killed.
    pub kill_after: Duration,
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Tasks submitted.
    pub submitted: usize,
    /// Tasks that finished after the kill.
    pub interrupted: usize,
    /// Tasks that succeeded in the end.
    pub succeeded: usize,
    /// Tasks that failed, or were not found, or did not finish by the deadline.
    pub lost: usize,
    /// Steps that committed `step_succeeded` more than once (ran again after commit).
    pub repeated_steps: usize,
    /// From the restart's process start to its `listening on` line.
    pub startup: Duration,
    /// From the restart's process start to the first step committed after it.
    pub first_step: Duration,
    /// From the restart's process start to the first journal entry of any kind after it.
    pub first_entry: Duration,
    /// The latest a durable timer fired after it was due (or after the restart, if it
    /// fell due while the server was down), over the timers that fired after the restart.
    pub worst_timer_lateness: Duration,
    /// From the restart's process start to the last interrupted task done.
    pub last_done: Duration,
    /// The restarted server's log line about taking its tasks back, without colours,
    /// and when it was logged, after the restart's process start.
    pub took_back: Option<(String, Duration)>,
}

/// Runs the kill -9 scenario with the release binary `binary` in `dir` (emptied first).
pub async fn run(binary: &Path, dir: &Path, plan: &Plan) -> anyhow::Result<Report> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{}/holdfast.db\"\n\n\
             [engine]\nnode_id = \"bench-recovery\"\nmax_concurrent_tasks = {}\n",
            dir.display(),
            plan.tasks.max(1)
        ),
    )?;
    let args = vec![
        "serve".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    let clock = SystemClock::new();
    let http = reqwest::Client::new();

    let server = Server::start(binary, &args, &[])?;
    let base = format!("http://{}", server.addr());
    register(&http, &base, &plan.sleeps).await?;
    let ids = submit(&http, &base, plan.tasks).await?;
    pause(plan.kill_after).await;
    let killed_ms = clock.unix_millis();
    drop(server); // Child::kill is SIGKILL.

    let restarted_ms = clock.unix_millis();
    let restart = Stopwatch::start();
    let server = Server::start(binary, &args, &[])?;
    let startup = restart.elapsed();
    let base = format!("http://{}", server.addr());
    wait_all_finished(&http, &base, &ids, &restart).await?;

    let mut report = Report {
        submitted: ids.len(),
        interrupted: 0,
        succeeded: 0,
        lost: 0,
        repeated_steps: 0,
        startup,
        first_step: Duration::MAX,
        first_entry: Duration::MAX,
        worst_timer_lateness: Duration::ZERO,
        last_done: Duration::ZERO,
        took_back: None,
    };
    for id in &ids {
        let entries = journal(&http, &base, id).await?;
        report.add(&entries, killed_ms, restarted_ms);
    }
    report.took_back = server
        .stderr_tail()
        .lines()
        .find(|l| l.contains("took back") || l.contains("take back"))
        .map(strip_colours)
        .map(|line| {
            let at = line.split_whitespace().next().and_then(rfc3339_millis);
            let after = Duration::from_millis(at.unwrap_or(0).saturating_sub(restarted_ms));
            (line, after)
        });
    drop(server);
    Ok(report)
}

impl Report {
    /// Adds one task's journal.
    fn add(&mut self, entries: &[Value], killed_ms: u64, restarted_ms: u64) {
        let since_restart = |at_ms: u64| Duration::from_millis(at_ms.saturating_sub(restarted_ms));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut timers: HashMap<&str, u64> = HashMap::new();
        let mut done_at = None;
        for e in entries {
            let at_ms = e["at_ms"].as_u64().unwrap_or(0);
            if at_ms >= restarted_ms {
                self.first_entry = self.first_entry.min(since_restart(at_ms));
            }
            let step = e["data"]["step"].as_str().unwrap_or("?");
            match e["kind"].as_str().unwrap_or("") {
                "sleeping" => {
                    timers.insert(step, e["data"]["until_ms"].as_u64().unwrap_or(0));
                }
                "step_succeeded" => {
                    *seen.entry(step).or_default() += 1;
                    if at_ms >= restarted_ms {
                        self.first_step = self.first_step.min(since_restart(at_ms));
                        if let Some(&due) = timers.get(step) {
                            let late = at_ms.saturating_sub(due.max(restarted_ms));
                            self.worst_timer_lateness =
                                self.worst_timer_lateness.max(Duration::from_millis(late));
                        }
                    }
                }
                "task_succeeded" => done_at = Some(at_ms),
                _ => {}
            }
        }
        self.repeated_steps += seen.values().filter(|&&n| n > 1).count();
        match done_at {
            Some(at_ms) => {
                self.succeeded += 1;
                if at_ms > killed_ms {
                    self.interrupted += 1;
                    self.last_done = self.last_done.max(since_restart(at_ms));
                }
            }
            None => self.lost += 1,
        }
    }
}

async fn register(http: &reqwest::Client, base: &str, sleeps: &[String; 3]) -> anyhow::Result<()> {
    let definition = json!({
        "name": WORKFLOW,
        "version": 1,
        "steps": [
            {"name": "plan", "kind": "sleep", "duration": sleeps[0]},
            {"name": "call", "kind": "sleep", "duration": sleeps[1]},
            {"name": "answer", "kind": "sleep", "duration": sleeps[2]},
        ],
    });
    let answer = http
        .post(format!("{base}/v1/workflows"))
        .json(&definition)
        .send()
        .await?;
    let status = answer.status();
    if !status.is_success() {
        bail!(
            "POST /v1/workflows answered {status}: {} (does `holdfast serve` run the engine yet?)",
            answer.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Submits `tasks` tasks from 32 concurrent clients; returns their ids.
async fn submit(http: &reqwest::Client, base: &str, tasks: usize) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let (http, base, next) = (http.clone(), base.to_string(), next.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < tasks {
                    let answer = http
                        .post(format!("{base}/v1/tasks"))
                        .json(&json!({"workflow": WORKFLOW, "input": {"n": ids.len()}}))
                        .send()
                        .await?;
                    let status = answer.status();
                    let body: Value = answer.json().await?;
                    match body["task_id"].as_str() {
                        Some(id) if status.is_success() => ids.push(id.to_string()),
                        _ => bail!("POST /v1/tasks answered {status}: {body}"),
                    }
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(tasks);
    for h in handles {
        ids.extend(h.await.context("a submitter panicked")??);
    }
    Ok(ids)
}

/// Polls until every task has finished (succeeded, failed or cancelled) or the
/// deadline passes; a task that is not found counts as finished (and lost).
async fn wait_all_finished(
    http: &reqwest::Client,
    base: &str,
    ids: &[String],
    since: &Stopwatch,
) -> anyhow::Result<()> {
    let mut open: Vec<&String> = ids.iter().collect();
    while !open.is_empty() {
        if since.elapsed() > DEADLINE {
            bail!("{} tasks still unfinished after {DEADLINE:?}", open.len());
        }
        let mut still = Vec::new();
        for id in open {
            let answer = http.get(format!("{base}/v1/tasks/{id}")).send().await?;
            if answer.status() == reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            let task: Value = answer.json().await?;
            let status = task["status"].as_str().unwrap_or("");
            if !matches!(status, "succeeded" | "failed" | "cancelled") {
                still.push(id);
            }
        }
        open = still;
        if !open.is_empty() {
            pause(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

async fn journal(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<Vec<Value>> {
    let answer = http
        .get(format!("{base}/v1/tasks/{id}/journal?limit=1000"))
        .send()
        .await?;
    if !answer.status().is_success() {
        return Ok(Vec::new());
    }
    let body: Value = answer.json().await?;
    Ok(body["entries"].as_array().cloned().unwrap_or_default())
}

/// `line` without ANSI colour sequences.
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix milliseconds of a UTC timestamp such as `2026-11-23T18:21:28.715073Z`.
fn rfc3339_millis(text: &str) -> Option<u64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60;
    u64::try_from(secs * 1000 + (sec * 1000.0) as i64).ok()
}
