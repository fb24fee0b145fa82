//! `holdfast serve --config FILE`: the gateway and the workflow engine, in one process.
//!
//! Loads and validates the configuration (every error printed with its file, line and
//! field, exit code 2), opens the store (`store.url`, the embedded SQLite file by
//! default), registers the configuration's workflow files (a bad one stops the start
//! with its file name and field path, exit code 2), binds, prints `listening on ADDR`
//! on stdout once the socket is bound (so a test can start it on port 0 and read the
//! port), and serves until Ctrl-C or SIGTERM. Then the HTTP server lets requests in
//! flight finish and the engine lets the tasks it runs finish their current step.
//!
//! Without client keys every caller is an admin, so the server refuses to listen
//! beyond loopback unless `--insecure-no-auth` says so, and then accepts any `Host`.
//!
//! At start the configuration's text is recorded in the store's configuration history
//! (the same text as the newest version is not a new version) and its version logged.
//! SIGHUP reads the file again and applies it if it is valid, as
//! `POST /admin/config/reload` does; a refused file is logged with every problem and
//! the running configuration keeps serving.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_config::{Config, LoadOptions, Overrides, process_env};
use holdfast_engine::{ArtifactStore, Engine, EngineError, GuardSettings, Settings, StoreGuard};
use holdfast_policy::{Clock, SystemClock};
use holdfast_server::{ConfigFile, Gateway};
use holdfast_telemetry::Telemetry;
use serde_json::Value;
use tokio::sync::watch;

use super::usage;

/// Arguments of `holdfast serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file (TOML); `HOLDFAST_CONFIG` when not given.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, overriding `server.listen` and `HOLDFAST_LISTEN`; port 0
    /// picks a free port.
    #[arg(long)]
    listen: Option<String>,
    /// The store's URL, overriding `store.url` and `HOLDFAST_STORE_URL`.
    #[arg(long)]
    store_url: Option<String>,
    /// Serve without client keys on an address other than loopback. Without keys
    /// every caller is an admin: only for a network where everyone may be one.
    #[arg(long)]
    insecure_no_auth: bool,
    /// The prefixes (comma-separated) that a `key_env` of a configuration sent
    /// through the API may start with; `HOLDFAST_KEY_ENV_PREFIXES` when not given,
    /// else `HOLDFAST_,OPENAI_,ANTHROPIC_,AZURE_OPENAI_,GEMINI_,MISTRAL_`.
    #[arg(long, value_name = "LIST")]
    key_env_prefixes: Option<String>,
}

/// Serves the gateway and runs the engine until Ctrl-C or SIGTERM.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.config.is_none()
        && process_env(holdfast_config::ENV_CONFIG).is_none_or(|v| v.is_empty())
    {
        return Err(usage(
            "no configuration: pass --config FILE or set HOLDFAST_CONFIG",
        ));
    }
    let file = ConfigFile {
        path: args.config,
        overrides: Overrides {
            listen: args.listen,
            store_url: args.store_url,
        },
    };
    let options = LoadOptions {
        path: file.path.clone(),
        env: &process_env,
        overrides: file.overrides.clone(),
        allow_missing_secrets: false,
    };
    let config = holdfast_config::load(options).map_err(|errors| usage(errors.to_string()))?;
    crate::logging::apply(&config.logging);
    let open = config.client_keys.is_empty();
    if open && !config.server.listen.ip().is_loopback() && !args.insecure_no_auth {
        return Err(usage(format!(
            "refusing to listen on {} without client keys: anyone who can reach it could \
             call every model and read and change every task. Add [[client_keys]] to the \
             configuration, listen on a loopback address (127.0.0.1), or pass \
             --insecure-no-auth if everyone on that network may be an admin",
            config.server.listen
        )));
    }
    let prefixes = args
        .key_env_prefixes
        .or_else(|| process_env(holdfast_config::ENV_KEY_ENV_PREFIXES))
        .map(|list| holdfast_config::parse_key_env_prefixes(&list))
        .unwrap_or_else(|| {
            holdfast_config::DEFAULT_KEY_ENV_PREFIXES
                .iter()
                .map(|p| (*p).to_owned())
                .collect()
        });
    if prefixes.is_empty() {
        return Err(usage(
            "--key-env-prefixes: give at least one prefix (a configuration sent through \
             the API could then name no key at all)",
        ));
    }
    let exposed = open && args.insecure_no_auth;
    super::runtime()?.block_on(serve(config, file, prefixes, exposed))
}

async fn serve(
    config: Config,
    file: ConfigFile,
    key_env_prefixes: Vec<String>,
    exposed: bool,
) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut gateway = Gateway::new(&config, Arc::clone(&clock))
        .map_err(|e| usage(e.to_string()))?
        .with_key_env_prefixes(key_env_prefixes);
    if exposed {
        tracing::warn!(
            listen = %config.server.listen,
            "--insecure-no-auth: serving without client keys beyond loopback; every caller is an admin"
        );
        gateway = gateway.allow_any_host();
    }
    let telemetry = match &config.telemetry {
        Some(settings) => Some(Telemetry::start(settings).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    if let Some(telemetry) = &telemetry {
        gateway = gateway.with_telemetry(Arc::clone(telemetry));
    }
    // The URL is not in the message: a postgres URL may hold a password (the store's
    // own errors redact it).
    let opened = holdfast_store::open(&config.store.url)
        .await
        .context("opening the store (store.url)")?;
    // Every call to the store, the engine's and the API's, passes the guard: bounded
    // by `store.timeout`, and told to `/ready` and `/metrics`.
    let guard = Arc::new(StoreGuard::new(
        opened,
        Arc::clone(&clock),
        GuardSettings {
            timeout: config.store.timeout,
            probe_interval: config.store.probe_interval,
        },
        Some(gateway.store_events()),
    ));
    gateway = gateway.with_store_health(guard.health());
    let guarded: Arc<dyn holdfast_store::Store> = guard.clone();
    // Shared rate limits and breakers go through the guard too: it reports an outage.
    // The process id keeps nodes apart that share a host name (the default node id).
    let _sharing = config.share_health.then(|| {
        let node = format!("{}:{}", config.engine.node_id, std::process::id());
        gateway.share_health(guarded.clone(), node)
    });
    // Large values become objects on their way to the store, outside the guard: an
    // object's transfer is not bounded by `store.timeout`.
    let artifacts = match &config.artifacts {
        Some(settings) => Some(Arc::new(
            ArtifactStore::open(guarded.clone(), settings.clone())
                .context("opening the artifact store (artifacts.url)")?,
        )),
        None => None,
    };
    let store: Arc<dyn holdfast_store::Store> = match &artifacts {
        Some(artifacts) => artifacts.clone(),
        None => guarded,
    };
    let engine = Engine::new(
        Arc::clone(&store),
        Arc::clone(&clock),
        engine_settings(&config),
        Some(gateway.llm()),
        task_events(&gateway, telemetry, &clock),
    );
    let engine = match &config.store.outbox {
        Some(path) => engine
            .with_outbox(
                path.clone(),
                config.store.outbox_max,
                Some(guard.health()),
                Some(gateway.outbox_events()),
            )
            .context("opening the outbox (store.outbox_path)")?,
        None => engine,
    };
    for file in &config.engine.workflows {
        register(&engine, file).await?;
    }
    let game_days = super::game_days::load(&config)?;
    let gateway = gateway
        .with_engine(engine.clone())
        .with_sampling()
        .await
        .map_err(|e| usage(format!("production sampling: {e}")))?;
    let version = gateway
        .record_history(store, file)
        .await
        .context("recording the configuration in the store's history")?;
    reload_on_hangup(&gateway)?;
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(
        routes = config.routes.len(),
        targets = config.targets.len(),
        workflows = config.engine.workflows.len(),
        node_id = %config.engine.node_id,
        config_version = version,
        "holdfast serving"
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop.send(true);
    });
    tokio::spawn({
        let stopped = stopped.clone();
        async move { guard.watch(until(stopped)).await }
    });
    tokio::spawn({
        let (engine, stopped) = (engine.clone(), stopped.clone());
        async move { engine.drain_outbox(until(stopped)).await }
    });
    if let Some(artifacts) = artifacts {
        let (clock, stopped) = (Arc::clone(&clock), stopped.clone());
        tokio::spawn(async move {
            artifacts
                .sweep_every_interval(clock.as_ref(), until(stopped))
                .await
        });
    }
    let scheduler = tokio::spawn({
        let stopped = stopped.clone();
        async move { engine.run(until(stopped)).await }
    });
    let game_days = tokio::spawn({
        let (sink, stopped) = (gateway.game_day_sink(), stopped.clone());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        async move {
            super::game_days::run(&config, game_days, addr, clock, sink, until(stopped)).await;
        }
    });
    let served = holdfast_server::serve(listener, gateway, until(stopped)).await;
    if let Err(e) = scheduler.await {
        tracing::error!(error = %e, "the engine's scheduler stopped abnormally");
    }
    // A game day under way finishes, rollbacks included, before the process ends.
    if let Err(e) = game_days.await {
        tracing::error!(error = %e, "the game-day schedule stopped abnormally");
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The engine's settings from the configuration's `[engine]`.
pub(crate) fn engine_settings(config: &Config) -> Settings {
    Settings {
        node_id: config.engine.node_id.clone(),
        lease: config.engine.lease,
        poll_interval: config.engine.poll_interval,
        max_concurrent_tasks: config.engine.max_concurrent_tasks,
        max_input_bytes: config.engine.max_input_bytes,
        max_response_bytes: config
            .artifacts
            .as_ref()
            .map_or(holdfast_engine::attempt::MAX_RESPONSE_BYTES, |a| {
                a.max_output
            }),
        egress: config.engine.egress.clone(),
    }
}

/// Reads the configuration file again on every SIGHUP. The handler is installed
/// before the server says it listens: SIGHUP's default action ends the process.
#[cfg(unix)]
fn reload_on_hangup(gateway: &Gateway) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let gateway = gateway.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match gateway.reload_file().await {
                Ok(applied) => tracing::info!(
                    version = applied.version.unwrap_or(0),
                    changed = applied.changed,
                    "SIGHUP: configuration file read again"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: the configuration file was refused; the running one keeps serving"
                ),
            }
        }
    });
    Ok(())
}

/// SIGHUP does not exist here: reload with `POST /admin/config/reload`.
#[cfg(not(unix))]
fn reload_on_hangup(_gateway: &Gateway) -> anyhow::Result<()> {
    Ok(())
}

/// Completes once `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Registers the workflow definition in `file`; a bad one is a usage error naming the
/// file and each field at fault.
pub(crate) async fn register(engine: &Engine, file: &Path) -> anyhow::Result<()> {
    let shown = file.display();
    let source = read_definition(file)?;
    match engine.register(source).await {
        Ok(def) => {
            tracing::info!(workflow = %def.name, version = def.version, file = %shown, "workflow registered");
            Ok(())
        }
        Err(EngineError::Invalid { problems }) => {
            let lines: Vec<String> = problems.iter().map(|p| format!("{shown}: {p}")).collect();
            Err(usage(lines.join("\n")))
        }
        Err(EngineError::Store(holdfast_store::StoreError::Conflict { id, reason, .. })) => {
            Err(usage(format!(
                "{shown}: workflow {id} is already registered with another definition ({reason}); \
                 give the changed definition a new `version`"
            )))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("registering {shown}"))),
    }
}

/// A definition file as JSON: TOML files are converted (and checked) by the engine.
pub(crate) fn read_definition(file: &Path) -> anyhow::Result<Value> {
    let shown = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| usage(format!("{shown}: cannot read: {e}")))?;
    let is_toml = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        holdfast_engine::parse_toml(&text)
            .map(|workflow| workflow.source)
            .map_err(|e| match e {
                EngineError::Invalid { problems } => usage(
                    problems
                        .iter()
                        .map(|p| format!("{shown}: {p}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                other => usage(format!("{shown}: {other}")),
            })
    } else {
        serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "{shown}:{}:{}: not valid JSON: {e}",
                e.line(),
                e.column()
            ))
        })
    }
}

/// Where the engine's task events go: the gateway's metrics, and the task's spans when
/// traces are exported.
fn task_events(
    gateway: &Gateway,
    telemetry: Option<Arc<Telemetry>>,
    clock: &Arc<dyn Clock>,
) -> holdfast_engine::EventSink {
    let metrics = gateway.task_events();
    let Some(telemetry) = telemetry else {
        return metrics;
    };
    let clock = Arc::clone(clock);
    Arc::new(move |event| {
        metrics(event);
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(clock.unix_millis());
        telemetry.task_event(event, now);
    })
}
