//! `holdfast demo`: the whole product on one machine, with nothing else running, under
//! injected failures, in one command.
//!
//! It wipes and opens a data directory (embedded SQLite), starts three mock providers
//! in process (a flaky primary with an outage, a rate-limited second in the other wire
//! format, a healthy fallback) and a flaky tool, builds the gateway and the engine from
//! a configuration loaded like any other, registers a multi-agent workflow, and runs
//! tasks of it at a steady rate for `--duration` while a simulated editor answers the
//! approvals. A live view shows progress; then a report says what happened and what
//! would have failed without holdfast, every figure read from the server's own
//! `/metrics`. `--keep-running` leaves the server up afterwards for the dashboard.
//!
//! The decision that shapes it: the demo is glue over the same public pieces
//! `holdfast serve` uses (config loader, `Gateway`, `Engine`, `serve`), and it watches
//! itself only through `/metrics`, so it cannot show anything the product does not do.

mod gate;
mod report;
mod scrape;
mod setup;
mod tool;
mod view;
mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use holdfast_config::Config;
use holdfast_engine::{Engine, Scope, Settings};
use holdfast_mock::Span;
use holdfast_policy::{Clock, SystemClock};
use holdfast_server::Gateway;
use holdfast_store::{TaskFilter, TaskStatus};
use tokio::sync::watch;

use super::usage;
use report::{Figures, Report};
use scrape::Scraper;
use setup::{Schedule, until};
use view::{Phase, View};
use workload::Tally;

/// How long tasks in flight get to finish once submitting stops.
const GRACE: Duration = Duration::from_secs(10);
/// How often the view is refreshed (and `/metrics` scraped).
const TICK: Duration = Duration::from_millis(250);

/// Arguments of `holdfast demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long to submit tasks ("30s", "2m"); then tasks in flight get up to 10s to
    /// finish and the report is printed.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    duration: Span,
    /// After the report, keep serving (gateway, engine, dashboard) until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// The data directory (SQLite store, log, the generated configuration). It is WIPED
    /// at start so that runs are repeatable; a non-empty directory that is not a
    /// previous demo's is refused.
    #[arg(long, default_value = "holdfast-demo-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Address to serve on, a loopback one (the demo has no client keys); port 0
    /// picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Tasks submitted per second, 0.1..=100.
    #[arg(long, default_value_t = 4.0, value_name = "N")]
    tasks_per_second: f64,
    /// Seed for every injected fault and every choice of the simulated editor.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_report: Option<PathBuf>,
}

/// Runs the demo.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let duration = args.duration.duration();
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(24 * 3600) {
        return Err(usage("--duration must be between 1s and 24h"));
    }
    if !(0.1..=100.0).contains(&args.tasks_per_second) {
        return Err(usage("--tasks-per-second must be between 0.1 and 100"));
    }
    if !args.listen.ip().is_loopback() {
        // The demo has no client keys: every caller of its API is an admin.
        return Err(usage(format!(
            "--listen {}: the demo serves without client keys, so only on a loopback \
             address (127.0.0.1)",
            args.listen
        )));
    }
    let dir = setup::data_dir(&args.data_dir)?;
    setup::log_to_file(&dir)?;
    super::runtime()?.block_on(demo(args, duration, dir))
}

/// What runs until the end: the servers' stop signal and their tasks.
struct Running {
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), holdfast_server::ServerError>>,
    scheduler: tokio::task::JoinHandle<()>,
}

async fn demo(args: Args, duration: Duration, dir: PathBuf) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (stop, stopped) = watch::channel(false);
    let schedule = Schedule::for_run(duration);
    let mocks = setup::mocks(schedule, args.seed, clock.clone(), &stopped).await?;
    let tool_faults = tool::Faults {
        transient: 0.05,
        permanent: 0.04,
        seed: args.seed,
    };
    let tool = tool::start(tool_faults, until(stopped.clone())).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "binding {} (another server there? try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let (cheap, cheap_addr) = gate::cheap_mock(args.seed + 10, clock.clone(), &stopped).await?;
    let gated = setup::Gated {
        suite: gate::write_suite(&dir)?,
        cheap: cheap_addr,
    };
    let text = setup::config_text(addr, &dir, &mocks, tool, schedule, &gated)?;
    let config = setup::load(&text, &dir)?;
    let (gateway, engine) = build(&config, clock.clone(), &format!("http://{tool}")).await?;
    intro(addr, &dir, schedule);
    let change = tokio::spawn(gate::change(
        gateway.clone(),
        text.clone(),
        clock.clone(),
        duration,
    ));
    let learner = gateway.clone();
    let running = Running {
        stop,
        server: tokio::spawn(holdfast_server::serve(
            listener,
            gateway,
            until(stopped.clone()),
        )),
        scheduler: tokio::spawn({
            let engine = engine.clone();
            async move { engine.run(until(stopped)).await }
        }),
    };
    let targets: Vec<String> = mocks.providers.iter().map(|p| p.0.to_owned()).collect();
    mocks.start_the_clock();
    let driven = drive(&args, duration, (&engine, &learner), &clock, addr, &targets).await;
    // A run cut short by Ctrl-C may end before the change was sent.
    if !change.is_finished() {
        change.abort();
    }
    let gate = match change.await {
        Ok(mut outcome) => {
            gate::count(&mut outcome, &cheap);
            Some(outcome)
        }
        Err(_) => None,
    };
    let report = match driven {
        Ok(Driven {
            figures,
            answers,
            ran,
        }) => Report {
            duration,
            ran,
            tasks_per_second: args.tasks_per_second,
            seed: args.seed,
            targets,
            metrics_url: format!("http://{addr}/metrics"),
            figures,
            answers,
            gate,
        },
        Err(e) => {
            shut_down(running, &clock).await;
            return Err(e);
        }
    };
    print!("{}", report.text());
    if let Some(path) = &args.json_report {
        write_json(path, &report)?;
    }
    if args.keep_running {
        println!(
            "\nstill serving on http://{addr} (dashboard http://{addr}/dashboard); Ctrl-C to stop"
        );
        super::shutdown_signal().await;
    }
    shut_down(running, &clock).await;
    Ok(ExitCode::SUCCESS)
}

/// The gateway and the engine, with the demo's workflow registered.
async fn build(
    config: &Config,
    clock: Arc<dyn Clock>,
    tool: &str,
) -> anyhow::Result<(Gateway, Engine)> {
    let gateway = Gateway::new(config, clock.clone()).context("building the gateway")?;
    let store = holdfast_store::open(&config.store.url)
        .await
        .context("opening the demo's store")?;
    let settings = Settings {
        node_id: config.engine.node_id.clone(),
        lease: config.engine.lease,
        poll_interval: config.engine.poll_interval,
        max_concurrent_tasks: config.engine.max_concurrent_tasks,
        max_input_bytes: config.engine.max_input_bytes,
        max_response_bytes: holdfast_engine::attempt::MAX_RESPONSE_BYTES,
        egress: config.engine.egress.clone(),
    };
    let engine_store = Arc::clone(&store);
    let engine = Engine::new(
        store,
        clock,
        settings,
        Some(gateway.llm()),
        gateway.task_events(),
    );
    engine
        .register(workload::definition(tool))
        .await
        .context("registering the demo's workflow")?;
    let gateway = gateway.with_engine(engine.clone());
    // The history the quality gate records its verdicts in. The demo's own address
    // and store win over the shell's `HOLDFAST_LISTEN` and `HOLDFAST_STORE_URL` on a
    // reload too, as they did at start.
    let file = holdfast_server::ConfigFile {
        path: Some(PathBuf::from(&config.source.name)),
        overrides: holdfast_config::Overrides {
            listen: Some(config.server.listen.to_string()),
            store_url: Some(config.store.url.clone()),
        },
    };
    gateway
        .record_history(engine_store, file)
        .await
        .context("recording the demo's configuration")?;
    Ok((gateway, engine))
}

fn intro(addr: SocketAddr, dir: &Path, schedule: Schedule) {
    println!("listening on {addr}");
    println!("dashboard  http://{addr}/dashboard");
    println!("metrics    http://{addr}/metrics");
    println!(
        "data       {} (holdfast.db, holdfast.log, holdfast.toml)",
        dir.display()
    );
    println!(
        "faults     primary (OpenAI format): 10% 503s, down from {} to {} · \
         second (Anthropic format): 30% 429s with Retry-After · fallback: healthy · \
         tool: 5% transient errors, 4% of announcements refused",
        seconds(schedule.outage_start),
        seconds(schedule.outage_end)
    );
    println!(
        "workflow   {}: research (llm) → draft (llm) → fact_check (tool) → approve (person) \
         → publish (tool, undo: unpublish) → announce (tool)",
        workload::WORKFLOW
    );
    println!(
        "gate       mid-run, the route `{}` is pointed at a cheaper model; the quality gate \
         runs the suite {} through it first\n",
        workload::ROUTE,
        gate::SUITE
    );
}

/// What a run of the workload leaves.
struct Driven {
    figures: Figures,
    answers: workload::Answers,
    /// How long tasks were submitted: `--duration`, or less after a Ctrl-C.
    ran: Duration,
}

/// `15s`, or `0.5s` when the span is not a whole number of seconds.
fn seconds(span: Duration) -> String {
    if span.subsec_millis() == 0 {
        format!("{}s", span.as_secs())
    } else {
        format!("{:.1}s", span.as_secs_f64())
    }
}

/// Runs the workload with the live view, then lets it finish: returns the settled
/// figures and the editor's answers.
async fn drive(
    args: &Args,
    duration: Duration,
    (engine, gateway): (&Engine, &Gateway),
    clock: &Arc<dyn Clock>,
    addr: SocketAddr,
    targets: &[String],
) -> anyhow::Result<Driven> {
    let scraper = Scraper::new(addr)?;
    let tally = Arc::new(Tally::default());
    let (halt_submitting, submitting) = watch::channel(false);
    let (halt_reviewing, reviewing) = watch::channel(false);
    let start = clock.now();
    let submitter = tokio::spawn(workload::submit(
        engine.clone(),
        clock.clone(),
        args.tasks_per_second,
        start + duration,
        args.seed,
        submitting,
    ));
    let reviewer = tokio::spawn(workload::review(
        (engine.clone(), gateway.clone()),
        clock.clone(),
        tally.clone(),
        args.seed.wrapping_add(100),
        reviewing,
    ));
    let (interrupt, mut interrupted) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = interrupt.send(true);
    });
    let mut view = View::new(duration, targets.to_vec());
    let mut figures = Figures::default();
    let mut finishing_since = None;
    let mut ran = duration;
    loop {
        let now = clock.now();
        let elapsed = now.saturating_duration_since(start);
        match scraper.scrape().await {
            Ok(scrape) => figures = Figures::from_scrape(&scrape),
            Err(e) => tracing::warn!(error = %e, "the demo could not read its own /metrics"),
        }
        let stopping = elapsed >= duration || *interrupted.borrow();
        let phase = if stopping {
            Phase::Finishing
        } else {
            Phase::Running
        };
        view.update(elapsed, phase, &figures, tally.answers());
        if stopping {
            let since = *finishing_since.get_or_insert(now);
            ran = ran.min(elapsed);
            let _ = halt_submitting.send(true);
            let done = submitter.is_finished() && figures.finished() >= figures.tasks_submitted;
            if done || now.saturating_duration_since(since) >= GRACE {
                break;
            }
        }
        tokio::select! {
            () = clock.sleep_until(now + TICK) => {}
            // Once stopping, a Ctrl-C changes nothing more (and its sender may be gone).
            _ = interrupted.changed(), if !stopping => {}
        }
    }
    ctrl_c.abort();
    cancel_unfinished(engine).await;
    let _ = halt_reviewing.send(true);
    let _ = reviewer.await;
    let figures = settle(&scraper, clock).await?;
    let elapsed = clock.now().saturating_duration_since(start);
    view.update(elapsed, Phase::Finishing, &figures, tally.answers());
    view.finish();
    Ok(Driven {
        figures,
        answers: tally.answers(),
        ran,
    })
}

/// Cancels the demo's tasks that did not finish within the grace period, so that the
/// report is final: nothing runs on after it.
async fn cancel_unfinished(engine: &Engine) {
    for status in [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Waiting] {
        let filter = TaskFilter {
            status: Some(status),
            workflow: Some(workload::WORKFLOW.to_owned()),
            limit: 1000,
            ..TaskFilter::default()
        };
        // Cancelling changes the status, so the first page is read again until empty;
        // bounded in case a task cannot be cancelled.
        for _ in 0..100 {
            let page = match engine.tasks(&filter, &Scope::All).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "the demo could not list unfinished tasks");
                    break;
                }
            };
            if page.tasks.is_empty() {
                break;
            }
            for task in page.tasks {
                let reason = "the demo ended before this task finished";
                if let Err(e) = engine.cancel(&task.task_id, &Scope::All, reason).await {
                    tracing::warn!(task_id = %task.task_id, error = %e, "could not cancel");
                }
            }
        }
    }
}

/// Scrapes until two scrapes in a row agree (a call or a step that was in flight has
/// landed), for at most 5 s, and returns the last figures.
async fn settle(scraper: &Scraper, clock: &Arc<dyn Clock>) -> anyhow::Result<Figures> {
    let give_up = clock.now() + Duration::from_secs(5);
    let mut last = Figures::from_scrape(&scraper.scrape().await?);
    loop {
        clock
            .sleep_until(clock.now() + Duration::from_millis(300))
            .await;
        let next = Figures::from_scrape(&scraper.scrape().await?);
        if next == last || clock.now() >= give_up {
            return Ok(next);
        }
        last = next;
    }
}

fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&report.json())?;
    // Written whole, then renamed: a reader polling for the file never sees half of it.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text + "\n")
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Stops the servers and the engine; waits a little for them, never for ever.
async fn shut_down(running: Running, clock: &Arc<dyn Clock>) {
    let _ = running.stop.send(true);
    let wait = async {
        if let Ok(Err(e)) = running.server.await {
            tracing::warn!(error = %e, "the demo's server stopped with an error");
        }
        let _ = running.scheduler.await;
    };
    tokio::select! {
        () = wait => {}
        () = clock.sleep_until(clock.now() + Duration::from_secs(10)) => {
            tracing::warn!("the demo's servers took over 10s to stop; exiting anyway");
        }
    }
}
