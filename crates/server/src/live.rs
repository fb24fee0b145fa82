//! The running configuration: reload, history and rollback.
//!
//! The decision that shapes it: a reload never edits the running state. It loads and
//! validates the new text through the config crate exactly as a start does (the same
//! environment, the same `--listen` and `--store-url` flags), builds a complete new
//! [`Inner`] beside the running one, records the text in the store's configuration
//! history, and only then swaps it in with one atomic store into an [`ArcSwap`]. The
//! router reaches the current state once per request (`FromRef` below: one `load_full`,
//! a reference-count increment), so a request in flight keeps the `Arc<Inner>` it
//! started with and finishes on the old configuration, while the next request runs on
//! the new one. Any failure before the swap (a syntax error, a bad field, a missing
//! secret, a setting that needs a restart, a store that cannot record) leaves the
//! running configuration untouched: a bad configuration never replaces a good one.
//!
//! Recording comes before the swap so that the history never misses a configuration
//! that served traffic; the same text as the newest version is not a new version (the
//! store's rule), and a text identical to the running one changes nothing.
//!
//! What needs a restart, and is refused with the field named when it differs:
//! `server.listen` (the socket is bound), `server.max_connections` (the listener
//! counts against it from start), `store.url`, `store.timeout` and
//! `store.probe_interval` (the store is open and guarded), `[engine]`
//! (the node id is in every lease; the scheduler and the registered workflows were set
//! up at start), `[alerts]` (the evaluation loop and webhooks run from start),
//! `[quality.sampling]` (the scorer and its suites were set up at start) and
//! `cluster.share_health` (the loop sharing health runs from start).
//!
//! A rollback is a reload of a stored text, validated again (the environment may have
//! changed since), and recorded as a new version; the history shows which version a
//! version restored by matching its SHA-256 with an earlier one's.
//!
//! Reloads are serialised by one async mutex, so two cannot interleave their build,
//! record and swap.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use axum::extract::FromRef;
use holdfast_config::{Config, ConfigErrors, OnFail, Overrides};
use holdfast_quality::rollout::Pinned;
use holdfast_store::{ConfigVersion, Store, StoreError};

use crate::access::Bound;
use crate::error::ServerError;
use crate::gateway::{Gateway, Inner};
use crate::rollout::{self, Decision};

/// How many versions `history` looks back to find what a rollback restored.
const RESTORED_LOOKBACK: u32 = 1000;

/// The current configuration state and what reloading it needs.
pub(crate) struct Live {
    current: ArcSwap<Inner>,
    running: tokio::sync::Mutex<Running>,
    history: OnceLock<History>,
    /// Where the server listens, for open mode's `Host` check (`access.rs`).
    bound: std::sync::Mutex<Bound>,
    /// The prefixes a `key_env` of a configuration sent through the API (or restored
    /// by a rollback) may start with; the defaults when not set.
    key_env_prefixes: OnceLock<Vec<String>>,
    /// The states a running gate's workflow tasks call models through.
    pinned: Pinned<Inner>,
}

/// The configuration being served, as loaded.
pub(crate) struct Running {
    pub(crate) config: Config,
    /// Its version in the history, once recorded.
    pub(crate) version: Option<u64>,
}

/// Where versions are recorded and how the file is read again.
struct History {
    store: Arc<dyn Store>,
    file: ConfigFile,
}

/// How a running server reads its configuration file again (SIGHUP,
/// `POST /admin/config/reload`): the same file and flags as at start.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// The file; `None`: the one `HOLDFAST_CONFIG` names.
    pub path: Option<PathBuf>,
    /// The flags given at start, which win over the file as they did then.
    pub overrides: Overrides,
}

/// A reload that went through.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The running configuration's version, when a history is attached (after a
    /// gate's rollback, the version that restored the previous text).
    pub version: Option<u64>,
    /// Whether the text differed from the running one (false: nothing was swapped).
    pub changed: bool,
    /// The quality gate's decision, when a gate judged the version.
    pub gate: Option<Decision>,
}

/// Why a reload or a history request was refused; the running configuration is
/// unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The text does not load: every problem with its line, column and field.
    #[error("the configuration is invalid:\n{0}")]
    Invalid(ConfigErrors),
    /// The text changes settings that only a restart can change: `(field, message)`.
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    NeedsRestart(Vec<(String, String)>),
    /// The configuration loads but cannot be served (a setting the server refuses).
    #[error("{0}")]
    Unservable(String),
    /// No history is attached (a server built without a store).
    #[error("this server keeps no configuration history")]
    NoHistory,
    /// No such version in the history.
    #[error("configuration version {0} does not exist")]
    NoSuchVersion(u64),
    /// A rollback without a version when the running one is the first.
    #[error("there is no version before the running one to roll back to")]
    NoPrevious,
    /// The store failed.
    #[error("the configuration history: {0}")]
    Store(#[from] StoreError),
    /// The quality gate refused the version (recorded in the history, never served).
    #[error("configuration version {version} refused by the quality gate: {}", decision.summary)]
    GateFailed {
        /// The refused version.
        version: u64,
        /// The gate's decision.
        decision: Decision,
    },
}

/// One version as the history shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionRow {
    pub(crate) version: ConfigVersion,
    /// Whether it is the one running.
    pub(crate) applied: bool,
    /// The earlier version with the same text, when this one restored it.
    pub(crate) restored_from: Option<u64>,
    /// The quality gate's verdict on it, when a gate judged it.
    pub(crate) gate: Option<holdfast_store::ConfigGate>,
}

/// Each request's gateway: the state current when it arrived.
impl FromRef<Arc<Live>> for Gateway {
    fn from_ref(live: &Arc<Live>) -> Gateway {
        Gateway {
            inner: live.current.load_full(),
            live: Arc::clone(live),
        }
    }
}

impl Live {
    pub(crate) fn new(inner: Arc<Inner>, config: Config) -> Live {
        Live {
            current: ArcSwap::new(inner),
            running: tokio::sync::Mutex::new(Running {
                config,
                version: None,
            }),
            history: OnceLock::new(),
            bound: std::sync::Mutex::new(Bound::Unknown),
            key_env_prefixes: OnceLock::new(),
            pinned: Pinned::default(),
        }
    }

    /// The state the model calls of `tenant`'s tasks run on: the current one, or for
    /// a gate's tasks the state it judges; `None` for a gate's task no gate here runs.
    pub(crate) fn state_for(&self, tenant: &str) -> Option<Arc<Inner>> {
        self.pinned.state_for(tenant, || self.current())
    }

    /// Where the server listens, as open mode's `Host` check knows it.
    pub(crate) fn bound(&self) -> Bound {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the address `serve` bound, unless any host was allowed.
    pub(crate) fn bind(&self, addr: std::net::SocketAddr) {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if *bound != Bound::AnyHost {
            *bound = Bound::At(addr);
        }
    }

    /// The state new requests run on.
    pub(crate) fn current(&self) -> Arc<Inner> {
        self.current.load_full()
    }

    /// The state new requests run on, for a look that does not outlive the caller
    /// (cheaper than [`Live::current`]: no reference count is taken).
    pub(crate) fn peek(&self) -> arc_swap::Guard<Arc<Inner>> {
        self.current.load()
    }

    /// The configuration being served, locked: no reload swaps the state while the
    /// guard is held, so [`Live::current`] read under it is this configuration's.
    pub(crate) async fn running(&self) -> tokio::sync::MutexGuard<'_, Running> {
        self.running.lock().await
    }

    fn history(&self) -> Result<&History, ReloadError> {
        self.history.get().ok_or(ReloadError::NoHistory)
    }

    /// The store the history is kept in, once attached.
    pub(crate) fn history_store(&self) -> Option<Arc<dyn Store>> {
        self.history.get().map(|h| Arc::clone(&h.store))
    }

    /// Loads `text`, which came through the API (or from the history), like a start
    /// would, naming it `name` in errors; its `key_env` fields may only name variables
    /// with an allowed prefix.
    fn load_text(
        &self,
        text: &str,
        name: &str,
        overrides: &Overrides,
    ) -> Result<Config, ReloadError> {
        let env = with_flags(overrides);
        let defaults = || {
            holdfast_config::DEFAULT_KEY_ENV_PREFIXES
                .iter()
                .map(|p| (*p).to_owned())
                .collect()
        };
        let prefixes = self.key_env_prefixes.get_or_init(defaults);
        Config::from_posted_text(text, name, &env, prefixes).map_err(ReloadError::Invalid)
    }

    /// Applies `config` unless it is the running text: checks what needs a restart,
    /// builds, records, judges it by the quality gate if one is set, swaps.
    async fn apply(&self, config: Config) -> Result<Applied, ReloadError> {
        let mut running = self.running.lock().await;
        if config.source.text == running.config.source.text {
            return Ok(Applied {
                version: running.version,
                changed: false,
                gate: None,
            });
        }
        let fixed = needs_restart(&running.config, &config);
        if !fixed.is_empty() {
            return Err(ReloadError::NeedsRestart(fixed));
        }
        let old = self.current();
        let inner = Inner::build(&config, Arc::clone(&old.clock), Some(&old))
            .map_err(|e| ReloadError::Unservable(e.to_string()))?;
        let inner = Arc::new(inner);
        let gate = match rollout::gate_for(&running.config, &config) {
            Some(gate) => {
                let suites = rollout::load_suites(&gate).map_err(ReloadError::Unservable)?;
                let history = self.history.get().ok_or_else(|| {
                    ReloadError::Unservable(
                        "[quality] gate needs the configuration history (a store) to record \
                         its runs and verdicts"
                            .to_owned(),
                    )
                })?;
                Some((gate, suites, history))
            }
            None => None,
        };
        let version = self.record(&config, &old).await?;
        let Some((gate, suites, history)) = gate else {
            self.swap(&mut running, config, inner, &old, version);
            return Ok(Applied {
                version,
                changed: true,
                gate: None,
            });
        };
        // A gate implies a history, so the version was recorded.
        let version = version.ok_or(ReloadError::NoHistory)?;
        let changed = rollout::change(&running.config, &config, &old).await;
        let store = &history.store;
        let serving = rollout::subject(&old, "serving", running.version, version);
        let candidate = rollout::subject(&inner, "candidate", Some(version), version);
        let _pins = self.pinned.pin(version, &old, &inner);
        if gate.on_fail != OnFail::Rollback {
            // Judged beside the serving state: nothing reaches the candidate's routes
            // but the suites until the verdict.
            let verdict =
                rollout::judge(store, &old, &suites, &changed, version, candidate, serving).await;
            let decision = rollout::decide(&verdict, gate.on_fail);
            let failing = rollout::failing_suites(&verdict);
            rollout::record(store, &old, version, &decision, failing).await;
            if decision.action == "refused" {
                return Err(ReloadError::GateFailed { version, decision });
            }
            self.swap(&mut running, config, inner, &old, Some(version));
            return Ok(Applied {
                version: Some(version),
                changed: true,
                gate: Some(decision),
            });
        }
        // `rollback`: live first, judged while serving, restored when it fails.
        let (previous, previous_version) = (running.config.clone(), running.version);
        self.swap(
            &mut running,
            config,
            Arc::clone(&inner),
            &old,
            Some(version),
        );
        let verdict = rollout::judge(
            store, &inner, &suites, &changed, version, candidate, serving,
        )
        .await;
        let mut decision = rollout::decide(&verdict, gate.on_fail);
        let failing = rollout::failing_suites(&verdict);
        if decision.passed {
            rollout::record(store, &inner, version, &decision, failing).await;
            return Ok(Applied {
                version: Some(version),
                changed: true,
                gate: Some(decision),
            });
        }
        let restored = Inner::build(&previous, Arc::clone(&inner.clock), Some(&inner))
            .map_err(|e| ReloadError::Unservable(format!("rolling back: {e}")))?;
        let back = self.record(&previous, &inner).await?;
        decision.report["rolled_back_to"] = serde_json::json!(back);
        decision.report["restored_version"] = serde_json::json!(previous_version);
        rollout::record(store, &inner, version, &decision, failing).await;
        self.swap(&mut running, previous, Arc::new(restored), &inner, back);
        Ok(Applied {
            version: back,
            changed: true,
            gate: Some(decision),
        })
    }

    /// Records `config`'s text in the history, when one is attached.
    async fn record(&self, config: &Config, old: &Inner) -> Result<Option<u64>, ReloadError> {
        let Some(history) = self.history.get() else {
            return Ok(None);
        };
        let now = old.clock.unix_millis();
        let recorded = history
            .store
            .record_config(&config.source.text, now)
            .await?;
        Ok(Some(recorded.version))
    }

    /// Puts `inner` (built from `config`, recorded as `version`) in place of `old`.
    fn swap(
        &self,
        running: &mut Running,
        config: Config,
        inner: Arc<Inner>,
        old: &Inner,
        version: Option<u64>,
    ) {
        inner.take_over_health(old);
        inner.ledger.count_in(Arc::clone(&inner.metrics));
        self.current.store(inner);
        tracing::info!(
            version = version.unwrap_or(0),
            routes = config.routes.len(),
            targets = config.targets.len(),
            "configuration reloaded"
        );
        running.config = config;
        running.version = version;
    }
}

/// The newest version before `running` that a quality gate did not turn away (a
/// refused version never served; a rolled-back one failed its gate while serving).
async fn previous_served(store: &dyn Store, running: u64) -> Result<u64, ReloadError> {
    let turned_away: std::collections::HashSet<u64> = store
        .config_gates(1, running - 1)
        .await?
        .into_iter()
        .filter(|g| g.action == "refused" || g.action == "rolled_back")
        .map(|g| g.version)
        .collect();
    (1..running)
        .rev()
        .find(|v| !turned_away.contains(v))
        .ok_or(ReloadError::NoPrevious)
}

/// The process environment, with the start's flags where they override it.
fn with_flags(overrides: &Overrides) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        let flag = match name {
            holdfast_config::ENV_LISTEN => overrides.listen.clone(),
            holdfast_config::ENV_STORE_URL => overrides.store_url.clone(),
            _ => None,
        };
        flag.or_else(|| holdfast_config::process_env(name))
    }
}

/// The settings of `new` that differ from `old` and only a restart can change.
fn needs_restart(old: &Config, new: &Config) -> Vec<(String, String)> {
    let restart = "differs from the running configuration and only changes with a restart";
    let mut fixed = Vec::new();
    if old.server.listen != new.server.listen {
        fixed.push(("server.listen".to_owned(), restart.to_owned()));
    }
    // The listener's other settings apply to the connections accepted after a reload.
    if old.server.listener.max_connections != new.server.listener.max_connections {
        fixed.push(("server.max_connections".to_owned(), restart.to_owned()));
    }
    // Compared, never shown: a postgres URL may hold a password.
    if old.store.url != new.store.url {
        fixed.push(("store.url".to_owned(), restart.to_owned()));
    }
    if old.store.timeout != new.store.timeout {
        fixed.push(("store.timeout".to_owned(), restart.to_owned()));
    }
    if old.store.outbox != new.store.outbox || old.store.outbox_max != new.store.outbox_max {
        fixed.push(("store.outbox".to_owned(), restart.to_owned()));
    }
    if old.store.probe_interval != new.store.probe_interval {
        fixed.push(("store.probe_interval".to_owned(), restart.to_owned()));
    }
    if old.engine.node_id != new.engine.node_id {
        fixed.push(("engine.node_id".to_owned(), restart.to_owned()));
    } else if old.engine != new.engine {
        fixed.push(("engine".to_owned(), restart.to_owned()));
    }
    if old.share_health != new.share_health {
        fixed.push(("cluster.share_health".to_owned(), restart.to_owned()));
    }
    if old.telemetry != new.telemetry {
        fixed.push(("telemetry".to_owned(), restart.to_owned()));
    }
    // `Alerts` has no `PartialEq`; its `Debug` shows every setting (a secret only
    // redacted, so a changed webhook secret alone is not seen as a change).
    if old.quality.sampling != new.quality.sampling {
        fixed.push(("quality.sampling".to_owned(), restart.to_owned()));
    }
    if format!("{:?}", old.alerts) != format!("{:?}", new.alerts) {
        fixed.push(("alerts".to_owned(), restart.to_owned()));
    }
    fixed
}

impl Gateway {
    /// Lets a configuration sent through the API (or restored by a rollback) name
    /// only `key_env` variables that start with one of `prefixes` (instead of
    /// [`holdfast_config::DEFAULT_KEY_ENV_PREFIXES`]). Set before serving; a second
    /// call keeps the first.
    pub fn with_key_env_prefixes(self, prefixes: Vec<String>) -> Gateway {
        if self.live.key_env_prefixes.set(prefixes).is_err() {
            tracing::warn!("key_env prefixes are already set; keeping the first");
        }
        self
    }

    /// Accepts any `Host` without client keys: for `serve --insecure-no-auth` on a
    /// public address, where the loopback-only `Host` check cannot hold.
    pub fn allow_any_host(self) -> Gateway {
        *self.live.bound.lock().unwrap_or_else(|e| e.into_inner()) = Bound::AnyHost;
        self
    }

    /// Attaches the configuration history: records the running configuration's text
    /// in `store` (the same text as the newest version is not a new version) and
    /// remembers how to read `file` again. Answers the running version.
    pub async fn record_history(
        &self,
        store: Arc<dyn Store>,
        file: ConfigFile,
    ) -> Result<u64, ServerError> {
        let live = &self.live;
        let mut running = live.running.lock().await;
        let now = self.inner.clock.unix_millis();
        let recorded = store
            .record_config(&running.config.source.text, now)
            .await
            .map_err(|e| ServerError::Config(format!("recording the configuration: {e}")))?;
        running.version = Some(recorded.version);
        if live.history.set(History { store, file }).is_err() {
            tracing::warn!("a configuration history is already attached; keeping the first");
        }
        Ok(recorded.version)
    }

    /// Reads the configuration file again (as SIGHUP does) and applies it if it is
    /// valid; otherwise the running configuration keeps serving.
    pub async fn reload_file(&self) -> Result<Applied, ReloadError> {
        let file = self.live.history()?.file.clone();
        let options = holdfast_config::LoadOptions {
            path: file.path.clone(),
            env: &holdfast_config::process_env,
            overrides: file.overrides.clone(),
            allow_missing_secrets: false,
        };
        let config = holdfast_config::load(options).map_err(ReloadError::Invalid)?;
        self.live.apply(config).await
    }

    /// Applies `text` (a configuration sent through the API) if it is valid. Errors
    /// name the running file, so that `[engine] workflows` resolve as they did.
    pub async fn reload_text(&self, text: &str) -> Result<Applied, ReloadError> {
        let (name, overrides) = self.source_name().await;
        let config = self.live.load_text(text, &name, &overrides)?;
        self.live.apply(config).await
    }

    /// Applies stored version `to` again (default: the newest before the running one
    /// that a quality gate did not refuse or roll back), recorded as a new version.
    pub async fn rollback(&self, to: Option<u64>) -> Result<Applied, ReloadError> {
        let history = self.live.history()?;
        let to = match to {
            Some(v) => v,
            None => {
                let running = self.live.running.lock().await.version;
                match running {
                    Some(v) if v > 1 => previous_served(&*history.store, v).await?,
                    _ => return Err(ReloadError::NoPrevious),
                }
            }
        };
        let stored = history
            .store
            .get_config(to)
            .await?
            .ok_or(ReloadError::NoSuchVersion(to))?;
        let (name, overrides) = self.source_name().await;
        let config = self.live.load_text(&stored.text, &name, &overrides)?;
        self.live.apply(config).await
    }

    /// The newest `limit` versions, newest first.
    pub(crate) async fn history(&self, limit: u32) -> Result<Vec<VersionRow>, ReloadError> {
        let history = self.live.history()?;
        let running = self.live.running.lock().await.version;
        let all = history
            .store
            .list_configs(limit.max(RESTORED_LOOKBACK))
            .await?;
        let shown = &all[..all.len().min(limit as usize)];
        let mut gates = match (shown.last(), shown.first()) {
            (Some(oldest), Some(newest)) => {
                history
                    .store
                    .config_gates(oldest.version, newest.version)
                    .await?
            }
            _ => Vec::new(),
        };
        let rows = all
            .iter()
            .enumerate()
            .take(limit as usize)
            .map(|(i, v)| VersionRow {
                version: v.clone(),
                applied: running == Some(v.version),
                restored_from: all[i + 1..]
                    .iter()
                    .find(|older| older.sha256 == v.sha256)
                    .map(|older| older.version),
                gate: gates
                    .iter()
                    .position(|g| g.version == v.version)
                    .map(|at| gates.swap_remove(at)),
            })
            .collect();
        Ok(rows)
    }

    /// The text of version `v`.
    pub(crate) async fn version_text(&self, v: u64) -> Result<String, ReloadError> {
        let history = self.live.history()?;
        let stored = history.store.get_config(v).await?;
        stored.map(|s| s.text).ok_or(ReloadError::NoSuchVersion(v))
    }

    /// The running file's name and the start's flags.
    async fn source_name(&self) -> (String, Overrides) {
        let name = self.live.running.lock().await.config.source.name.clone();
        let overrides = self
            .live
            .history
            .get()
            .map(|h| h.file.overrides.clone())
            .unwrap_or_default();
        (name, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(route_to: &str, extra_target: &str) -> Config {
        let text = format!(
            "[providers.p]\nformat = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n\
             [targets.a]\nprovider = \"p\"\nmodel = \"m\"\ncontext_window = 1000\n\n\
             [targets.b]\nprovider = \"p\"\nmodel = \"m\"\ncontext_window = 1000\n\n\
             {extra_target}\
             [routes.smart]\ntargets = [\"{route_to}\"]\n"
        );
        Config::from_toml_str(&text, "test.toml", &|_| None).expect("valid")
    }

    fn gateway() -> Gateway {
        let clock: Arc<dyn holdfast_policy::Clock> = Arc::new(holdfast_policy::SystemClock::new());
        Gateway::new(&config("a", ""), clock).expect("builds")
    }

    fn chain_of(inner: &Inner) -> Vec<String> {
        let route = &inner.routes["smart"];
        route
            .chain
            .links()
            .iter()
            .map(|l| inner.target_name(l.target).to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_old_state_and_counters_continue() {
        let gateway = gateway();
        let in_flight = Gateway::from_ref(&gateway.live);
        in_flight
            .inner
            .metrics
            .attempt(0, holdfast_policy::Outcome::Ok, 0);
        let text = config("b", "").source.text.to_string();
        let applied = gateway.reload_text(&text).await.expect("reloads");
        assert!(applied.changed);
        let next = Gateway::from_ref(&gateway.live);
        assert_eq!(chain_of(&in_flight.inner), ["a"]);
        assert_eq!(chain_of(&next.inner), ["b"]);
        // Same names: the very same counters go on.
        assert!(Arc::ptr_eq(&in_flight.inner.metrics, &next.inner.metrics));
        assert!(Arc::ptr_eq(&in_flight.inner.ledger, &next.inner.ledger));
        // New names: totals are carried into the new metrics.
        let more = config(
            "c",
            "[targets.c]\nprovider = \"p\"\nmodel = \"m\"\ncontext_window = 1000\n\n",
        );
        gateway
            .reload_text(&more.source.text)
            .await
            .expect("reloads");
        let last = Gateway::from_ref(&gateway.live);
        assert!(!Arc::ptr_eq(&next.inner.metrics, &last.inner.metrics));
        let text = last.inner.metrics.render();
        assert!(text.contains("target=\"a\",outcome=\"ok\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn a_bad_text_changes_nothing() {
        let gateway = gateway();
        let before = gateway.live.current();
        let err = gateway
            .reload_text("[routes.smart]\ntargets = [\"nope\"]\n")
            .await
            .expect_err("refused");
        assert!(matches!(err, ReloadError::Invalid(_)), "{err}");
        assert!(Arc::ptr_eq(&before, &gateway.live.current()));
        assert!(matches!(
            gateway.rollback(None).await,
            Err(ReloadError::NoHistory)
        ));
    }
}
