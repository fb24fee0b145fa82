//! The workflow engine's throughput and recovery, each beside its physical limit.
//!
//! Why it exists: "durable steps per second" means nothing without the rate the same
//! database on the same disk commits at, so for SQLite (fsync on) and PostgreSQL this
//! measures, in one run, the raw commit rate and then the engine running a 3-step
//! workflow of zero sleeps (each step a committed result and nothing else), and prints
//! the ratio. A tally of store calls per step says where the time goes. With
//! `--recovery`, the release `holdfast serve` is killed with SIGKILL mid-load and
//! restarted on the same data: time to the first resumed step, and to the last
//! interrupted task done.
//!
//! Targets (the issue): ≥ 10,000 steps/s on SQLite, ≥ 5,000 on PostgreSQL; after a
//! restart, first step ≤ 0.3 s and every interrupted task done ≤ 1 s.
//!
//! On SQLite it also runs the same load behind the store guard and with the artifact
//! store on (`[artifacts]`, every value under its threshold), each printed as a ratio
//! to the plain runs.
//!
//! Run: `cargo run --release -p holdfast-bench --bin engine -- --help`
//! Environment: `HOLDFAST_BENCH_DIR` (default `target/engine-bench`; a real disk, not
//! tmpfs), `HOLDFAST_TEST_POSTGRES_URL` to measure PostgreSQL too.

// A benchmark binary: a failed setup step ends the run, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use holdfast_bench::counted::CountedStore;
use holdfast_bench::measure::human;
use holdfast_bench::raw::{self, RawRates};
use holdfast_bench::recovery;
use holdfast_bench::workflows::{self, Measured, Plan, STEPS};
use holdfast_store::Options;

const MIN_STEPS_SQLITE: f64 = 10_000.0;
const MIN_STEPS_POSTGRES: f64 = 5_000.0;
const MAX_FIRST_STEP: Duration = Duration::from_millis(300);
const MAX_LAST_DONE: Duration = Duration::from_secs(1);

const HELP: &str = "\
holdfast engine benchmark: durable steps/s and workflows/s beside the raw commit rate.

USAGE: engine [OPTIONS]

  --tasks N          tasks per engine run (3 steps each)            [default 9000]
  --engines N        engines (schedulers) on one store, 1..=4      [default 1]
  --submitters N     concurrent submitters                          [default 64]
  --max-concurrent N each engine's max_concurrent_tasks             [default 1024]
  --runs N           engine runs per backend (fresh store each)     [default 2]
  --only BACKEND     sqlite or postgres
  --no-raw           skip the raw commit rates
  --recovery         also run the kill -9 recovery test (needs `holdfast serve` with
                     the engine; build it: cargo build --release -p holdfast)
  --recovery-only    only the recovery test
  --recovery-tasks N tasks submitted before the kill                [default 500]
  --sleeps A,B,C     the recovery workflow's three sleeps     [default 100ms,300ms,100ms]
  --kill-after MS    ms after the last submission to kill           [default 300]
  -h, --help         this text

Environment: HOLDFAST_BENCH_DIR (default target/engine-bench; must be a real disk),
HOLDFAST_TEST_POSTGRES_URL (PostgreSQL is skipped without it).";

#[derive(Debug, Clone)]
struct Args {
    plan: Plan,
    runs: usize,
    only: Option<String>,
    raw: bool,
    engine: bool,
    recovery: Option<recovery::Plan>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        plan: Plan {
            tasks: 9000,
            engines: 1,
            submitters: 64,
            max_concurrent: 1024,
        },
        runs: 2,
        only: None,
        raw: true,
        engine: true,
        recovery: None,
    };
    let mut rec = recovery::Plan {
        tasks: 500,
        sleeps: ["100ms".into(), "300ms".into(), "100ms".into()],
        kill_after: Duration::from_millis(300),
    };
    let mut want_recovery = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--tasks" => args.plan.tasks = value()?.parse()?,
            "--engines" => args.plan.engines = value()?.parse()?,
            "--submitters" => args.plan.submitters = value()?.parse()?,
            "--max-concurrent" => args.plan.max_concurrent = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--only" => args.only = Some(value()?),
            "--no-raw" => args.raw = false,
            "--recovery" => want_recovery = true,
            "--recovery-only" => {
                want_recovery = true;
                args.engine = false;
                args.raw = false;
            }
            "--recovery-tasks" => rec.tasks = value()?.parse()?,
            "--kill-after" => rec.kill_after = Duration::from_millis(value()?.parse()?),
            "--sleeps" => {
                let v = value()?;
                let parts: Vec<&str> = v.split(',').collect();
                let [a, b, c] = parts[..] else {
                    bail!("--sleeps takes three durations, e.g. 100ms,300ms,100ms");
                };
                rec.sleeps = [a.into(), b.into(), c.into()];
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    if !(1..=4).contains(&args.plan.engines) {
        bail!("--engines must be 1..=4");
    }
    if let Some(only) = &args.only
        && only != "sqlite"
        && only != "postgres"
    {
        bail!("--only takes sqlite or postgres");
    }
    args.recovery = want_recovery.then_some(rec);
    Ok(Some(args))
}

/// One backend's row of the table.
struct Row {
    backend: &'static str,
    raw: Option<RawRates>,
    runs: Vec<Measured>,
    submissions: Option<f64>,
    target: f64,
}

fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        println!("{HELP}");
        return Ok(());
    };
    let dir = PathBuf::from(
        std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| "target/engine-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("directory: {}", dir.display());
    println!(
        "plan: {} tasks x {STEPS} steps, {} engine(s), {} submitters, max_concurrent_tasks {}",
        args.plan.tasks, args.plan.engines, args.plan.submitters, args.plan.max_concurrent
    );
    let mut rows = Vec::new();
    if args.engine || args.raw {
        if args.only.as_deref() != Some("postgres") {
            rows.push(runtime.block_on(sqlite(&dir, &args))?);
        }
        if args.only.as_deref() != Some("sqlite") {
            if let Some(url) = holdfast_bench::needs::postgres_url() {
                rows.push(runtime.block_on(postgres(&url, &args))?);
            }
        }
        print_table(&rows);
    }
    if let Some(plan) = &args.recovery {
        let binary = holdfast_bench::process::holdfast_binary()?;
        let report = runtime.block_on(recovery::run(&binary, &dir.join("recovery"), plan))?;
        print_recovery(plan, &report);
    }
    Ok(())
}

async fn sqlite(dir: &Path, args: &Args) -> anyhow::Result<Row> {
    let raw = if args.raw {
        let raw = raw::sqlite(dir)?;
        println!(
            "raw SQLite (WAL, synchronous=FULL): {:.0} commits/s, {:.0} rows/s @{}",
            raw.commits,
            raw.rows_batched,
            raw::BATCH_ROWS
        );
        Some(raw)
    } else {
        None
    };
    let mut row = Row {
        backend: "sqlite",
        raw,
        runs: vec![],
        submissions: None,
        target: MIN_STEPS_SQLITE,
    };
    if !args.engine {
        return Ok(row);
    }
    let url = |name: &str| format!("sqlite://{}/{name}.db", dir.display());
    let store = holdfast_store::open(&url("submit-only")).await?;
    row.submissions = Some(
        workflows::submissions_per_second(store, args.plan.tasks, args.plan.submitters).await?,
    );
    for run in 0..args.runs {
        let store = holdfast_store::open(&url(&format!("engine-{run}"))).await?;
        let store = Arc::new(CountedStore::new(store));
        let measured = workflows::run(store, args.plan).await?;
        print_run("sqlite", &measured);
        row.runs.push(measured);
    }
    // The same run behind the store guard `holdfast serve` puts around every store
    // (a bounded wait and a health report per call), against the runs above.
    let store = holdfast_store::open(&url("engine-guarded")).await?;
    let guard = holdfast_engine::StoreGuard::new(
        store,
        Arc::new(holdfast_policy::SystemClock::new()),
        holdfast_engine::GuardSettings::default(),
        None,
    );
    let store = Arc::new(CountedStore::new(Arc::new(guard)));
    let guarded = workflows::run(store, args.plan).await?;
    print_run("sqlite, guarded", &guarded);
    let unguarded =
        row.runs.iter().map(Measured::steps_per_second).sum::<f64>() / row.runs.len().max(1) as f64;
    println!(
        "store guard: {:.0} steps/s guarded, {:.0} unguarded (mean of {} runs): ratio {:.3}",
        guarded.steps_per_second(),
        unguarded,
        row.runs.len(),
        guarded.steps_per_second() / unguarded.max(1.0)
    );
    // The same run with `[artifacts]` on (a directory): every value here is small, so
    // none becomes an object and this is what the size check costs each value.
    let store = holdfast_store::open(&url("engine-artifacts")).await?;
    let settings = holdfast_engine::ArtifactSettings {
        url: format!("file://{}/artifacts", dir.display()),
        threshold: 256 << 10,
        max_output: 64 << 20,
        sweep_interval: Duration::from_secs(3600),
        sweep_grace: Duration::from_secs(3600),
    };
    let artifacts = holdfast_engine::ArtifactStore::open(store, settings)?;
    let store = Arc::new(CountedStore::new(Arc::new(artifacts)));
    let with = workflows::run(store, args.plan).await?;
    print_run("sqlite, artifacts on", &with);
    println!(
        "artifacts: {:.0} steps/s with the artifact store on (small values), {:.0} off \
         (mean of {} runs): ratio {:.3}",
        with.steps_per_second(),
        unguarded,
        row.runs.len(),
        with.steps_per_second() / unguarded.max(1.0)
    );
    Ok(row)
}

async fn postgres(url: &str, args: &Args) -> anyhow::Result<Row> {
    let schema = |name: &str| format!("hf_engine_bench_{}_{name}", std::process::id());
    let raw = if args.raw {
        let raw = raw::postgres(url, &schema("raw"), 64).await?;
        println!(
            "raw PostgreSQL: {:.0} commits/s (1 conn), {:.0} commits/s (64 conns), {:.0} rows/s @{}",
            raw.commits,
            raw.commits_concurrent.unwrap_or(0.0),
            raw.rows_batched,
            raw::BATCH_ROWS
        );
        Some(raw)
    } else {
        None
    };
    let mut row = Row {
        backend: "postgres",
        raw,
        runs: vec![],
        submissions: None,
        target: MIN_STEPS_POSTGRES,
    };
    if !args.engine {
        return Ok(row);
    }
    let options = |name: &str| Options {
        postgres_schema: Some(schema(name)),
        postgres_max_connections: 64,
        ..Options::default()
    };
    let mut schemas = vec![schema("submit")];
    let result = async {
        let store = holdfast_store::open_with(url, options("submit")).await?;
        row.submissions = Some(
            workflows::submissions_per_second(store, args.plan.tasks, args.plan.submitters).await?,
        );
        for run in 0..args.runs {
            let name = format!("engine{run}");
            schemas.push(schema(&name));
            let store = holdfast_store::open_with(url, options(&name)).await?;
            let store = Arc::new(CountedStore::new(store));
            let measured = workflows::run(store, args.plan).await?;
            print_run("postgres", &measured);
            row.runs.push(measured);
        }
        anyhow::Ok(())
    }
    .await;
    drop_schemas(url, &schemas).await?;
    result?;
    Ok(row)
}

async fn drop_schemas(url: &str, schemas: &[String]) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for schema in schemas {
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
            .await?;
    }
    Ok(())
}

/// One engine run: its rates, CPU, and store calls per step.
fn print_run(backend: &str, m: &Measured) {
    let steps = m.steps.max(1) as f64;
    println!(
        "\n{backend}: {} tasks succeeded, {} failed, {} steps in {} (submitting took {}): \
         {:.0} steps/s, {:.0} workflows/s",
        m.succeeded,
        m.failed,
        m.steps,
        human(m.elapsed),
        human(m.submitting),
        m.steps_per_second(),
        m.workflows_per_second()
    );
    println!(
        "  CPU: this process {:.0}% of one core ({:.1} µs per step, so at most {:.0} steps/s \
         per core); machine {:.0}% busy (other processes included)",
        100.0 * m.cpu.as_secs_f64() / m.elapsed.as_secs_f64(),
        m.cpu.as_secs_f64() * 1e6 / steps,
        steps / m.cpu.as_secs_f64().max(1e-9),
        100.0 * m.machine_busy
    );
    println!("  store calls          per step   mean wait");
    for (method, tally) in &m.tallies {
        println!(
            "  {method:<20} {:>8.2}   {:>9}",
            tally.calls as f64 / steps,
            human(tally.waited / tally.calls.max(1) as u32)
        );
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<9} {:>11} {:>11} {:>12} {:>11} {:>11} {:>10} {:>8} {:>7}",
        "backend",
        "raw com/s",
        "raw com/s*",
        "raw rows/s",
        "submits/s",
        "steps/s",
        "wf/s",
        "ratio",
        "target"
    );
    println!(
        "{:<9} {:>11} {:>11} {:>12} {:>11} {:>11} {:>10} {:>8} {:>7}",
        "", "1 writer", "64 writers", "@100", "alone", "engine", "engine", "st/raw", ""
    );
    for row in rows {
        let raw = row.raw.unwrap_or_default();
        let cell = |v: f64| {
            if v > 0.0 {
                format!("{v:.0}")
            } else {
                "-".into()
            }
        };
        if row.runs.is_empty() {
            println!(
                "{:<9} {:>11} {:>11} {:>12}",
                row.backend,
                cell(raw.commits),
                cell(raw.commits_concurrent.unwrap_or(0.0)),
                cell(raw.rows_batched)
            );
        }
        for m in &row.runs {
            let steps = m.steps_per_second();
            let ratio = if raw.commits > 0.0 {
                format!("{:.1}x", steps / raw.commits)
            } else {
                "-".into()
            };
            let verdict = if steps >= row.target { "met" } else { "MISSED" };
            println!(
                "{:<9} {:>11} {:>11} {:>12} {:>11} {:>11.0} {:>10.0} {:>8} {:>7}",
                row.backend,
                cell(raw.commits),
                cell(raw.commits_concurrent.unwrap_or(0.0)),
                cell(raw.rows_batched),
                cell(row.submissions.unwrap_or(0.0)),
                steps,
                m.workflows_per_second(),
                ratio,
                verdict
            );
        }
    }
    println!(
        "targets: >= {MIN_STEPS_SQLITE:.0} steps/s on SQLite, >= {MIN_STEPS_POSTGRES:.0} on PostgreSQL; \
         ratio = engine steps/s / raw single-writer commits/s"
    );
}

fn print_recovery(plan: &recovery::Plan, r: &recovery::Report) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "\nkill -9 recovery (SQLite, {} tasks of sleeps {}, killed {} ms after the last submission)",
        plan.tasks,
        plan.sleeps.join(" + "),
        plan.kill_after.as_millis()
    );
    println!(
        "  submitted {}, interrupted {}, succeeded {}, lost {}, steps run again after commit {}",
        r.submitted, r.interrupted, r.succeeded, r.lost, r.repeated_steps
    );
    println!("  restart to `listening on`:         {}", human(r.startup));
    if let Some((line, after)) = &r.took_back {
        println!(
            "  recovery scan done after:          {}   ({line})",
            human(*after)
        );
    }
    println!(
        "  restart to first resumed step:     {}   (target <= {}: {})",
        human(r.first_step),
        human(MAX_FIRST_STEP),
        verdict(r.first_step <= MAX_FIRST_STEP)
    );
    println!(
        "  restart to first journal entry:    {}   (any kind: the first sign of work)",
        human(r.first_entry)
    );
    println!(
        "  worst durable-timer lateness:      {}   (fired after max(due, restart))",
        human(r.worst_timer_lateness)
    );
    println!(
        "  restart to last interrupted done:  {}   (target <= {}: {})",
        human(r.last_done),
        human(MAX_LAST_DONE),
        verdict(r.last_done <= MAX_LAST_DONE)
    );
}
