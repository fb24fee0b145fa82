//! The validated configuration: what the server runs with, in domain types.
//!
//! Everything here has been checked and resolved (durations parsed, references
//! followed, secrets read, policies built by the policy crate's constructors), so the
//! server never re-parses or re-validates: it looks up a route, takes its
//! `Arc<Policy>` and target names, and builds its registry from the targets'
//! `TargetSettings` and [`Config::pipeline`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holdfast_llm::client::{ApiKey, Endpoint, Timeouts};
use holdfast_llm::{Format, Price};
use holdfast_policy::pipeline::{self, Policy, TargetSettings};
use holdfast_policy::rate_limit;

pub use crate::schema::MidStream;
pub use crate::schema::{FewShot, FewShotMode};
use crate::secret::Secret;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The text it was loaded from, for history and rollback.
    pub source: Source,
    /// Where the gateway listens.
    pub server: Server,
    /// Where durable state lives.
    pub store: Store,
    /// Whether targets' rate limits and breakers are shared with the other nodes on
    /// the same PostgreSQL store (`[cluster] share_health`).
    pub share_health: bool,
    /// The keys clients may present, in file order. Empty: no key is required.
    pub client_keys: Vec<ClientKey>,
    /// Providers by name.
    pub providers: BTreeMap<String, Provider>,
    /// Targets by name.
    pub targets: BTreeMap<String, Target>,
    /// Routes by the model name clients ask for.
    pub routes: BTreeMap<String, Route>,
    /// The registry's shared settings: the global retry budget (the `default`
    /// policy's), the per-agent breaker and the hedge ratio.
    pub pipeline: pipeline::Settings,
    /// How long repeated requests are answered from memory.
    pub idempotency: Idempotency,
    /// What the server logs.
    pub logging: Logging,
    /// How this node runs workflows.
    pub engine: Engine,
    /// The alert rules and where their notices go.
    pub alerts: crate::alerts::Alerts,
    /// The quality loop's settings.
    pub quality: Quality,
    /// The game days: experiments run against this deployment at set times.
    pub chaos: Chaos,
    /// Where traces go; `None` when none are exported.
    pub telemetry: Option<Telemetry>,
    /// Where large values are kept as objects, if anywhere.
    pub artifacts: Option<holdfast_engine::ArtifactSettings>,
    /// Environment variables named by `key_env` that were not set. Empty unless the
    /// configuration was loaded with `allow_missing_secrets`; a server must refuse to
    /// start when it is not empty.
    pub missing_secrets: Vec<String>,
}

/// The text a configuration was loaded from.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    /// The file's name as given, or `<defaults>` when there was no file.
    pub name: String,
    /// The file's text, exactly as read. Holds no secrets: they come from the
    /// environment.
    pub text: Arc<str>,
    /// A stable version of the text: 16 hex digits of its 64-bit FNV-1a hash. The same
    /// text gives the same version on every machine and release.
    pub version: String,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("bytes", &self.text.len())
            .field("version", &self.version)
            .finish()
    }
}

/// Where the gateway listens, and how its listener guards itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// The socket address to bind.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes; ≥ 1.
    pub body_limit: u64,
    /// The listener's timeouts and caps.
    pub listener: Listener,
}

/// The listener's timeouts and caps (`[server]`): what a slow or flooding client can
/// hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// From a connection's accept (or, kept alive, its next request's first byte) to
    /// the end of the request head; > 0.
    pub header_read_timeout: Duration,
    /// From the end of a request head to the end of its body; > 0.
    pub body_read_timeout: Duration,
    /// From the end of a response to the next request's first byte; > 0.
    pub idle_timeout: Duration,
    /// Client connections open at once; 1..=1000000.
    pub max_connections: usize,
    /// The largest request head, in bytes; 1 KiB..=1 MiB.
    pub max_header_bytes: usize,
}

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// A `sqlite://` or `postgres://` URL that parses.
    pub url: String,
    /// The longest an API call waits for the store.
    pub timeout: Duration,
    /// How often the store is probed.
    pub probe_interval: Duration,
    /// Where submissions wait while the store is down; `None` refuses them with 503.
    pub outbox: Option<PathBuf>,
    /// The most bytes the outbox file may hold.
    pub outbox_max: u64,
}

/// A key clients may present.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// The key's name, for metrics and logs; unique.
    pub name: String,
    /// What the key may do.
    pub role: crate::schema::Role,
    /// The tenant it acts for (a valid store name).
    pub tenant: String,
    /// The key; `None` only when its variable was missing and the configuration was
    /// loaded with `allow_missing_secrets`.
    pub key: Option<Secret>,
    /// Requests allowed per minute with this key.
    pub requests: Option<rate_limit::Config>,
    /// Prompt tokens allowed per minute with this key.
    pub tokens: Option<rate_limit::Config>,
    /// Requests this key may have in flight at once; 1..=1000000.
    pub max_concurrent_requests: u32,
    /// Its calls' place at a target's concurrency limit.
    pub priority: holdfast_policy::concurrency::Priority,
}

/// An API holdfast calls.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name in the file.
    pub name: String,
    /// The wire format it speaks.
    pub format: Format,
    /// The API base URL (`http` or `https`).
    pub base_url: String,
    /// Its key, when it has one.
    pub key: Option<Secret>,
    /// Azure OpenAI's API version, when it is one.
    pub azure_api_version: Option<String>,
}

/// One model at one provider.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the file, as metrics show it.
    pub name: String,
    /// Its provider's name.
    pub provider: String,
    /// The provider's wire format.
    pub format: Format,
    /// The provider's base URL.
    pub base_url: String,
    /// The model name sent to the provider.
    pub model: String,
    /// The provider's key, when it has one.
    pub key: Option<Secret>,
    /// Azure OpenAI's API version, when the provider is one.
    pub azure_api_version: Option<String>,
    /// The context window in tokens; ≥ 1.
    pub context_window: u64,
    /// Its price.
    pub price: Price,
    /// The timeouts of one attempt; each > 0 and ≤ `total`.
    pub timeouts: Timeouts,
    /// Whether it continues an answer given as an assistant prefill.
    pub supports_prefill: bool,
    /// Whether requests another target's content filter refused may come here.
    pub takes_filtered: bool,
    /// Its active health probe while its breaker is open; `None` when turned off.
    pub probe: Option<Probe>,
    /// Its breaker, retry budget and rate limits, for the registry. The breaker and
    /// budget come from the policy of the first route (in file order) that lists the
    /// target, or from the `default` policy when no route does.
    pub settings: TargetSettings,
}

impl Target {
    /// The endpoint the provider client calls for this target.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            format: self.format,
            base_url: self.base_url.clone(),
            api_key: self.key.as_ref().map(|key| ApiKey::new(key.expose())),
            model: self.model.clone(),
            timeouts: self.timeouts,
            azure_api_version: self.azure_api_version.clone(),
        }
    }
}

/// An active health probe, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Between two probes; at least 100 ms.
    pub every: Duration,
    /// What it sends.
    pub kind: crate::schema::ProbeKind,
}

/// A model name clients ask for.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name clients ask for.
    pub name: String,
    /// Target names to try, in order; not empty, no repeats, all in
    /// [`Config::targets`].
    pub targets: Vec<String>,
    /// The policy's name.
    pub policy_name: String,
    /// The policy, shared by every route that names it.
    pub policy: Arc<Policy>,
    /// What to do when a stream breaks mid-answer.
    pub mid_stream: MidStream,
    /// Graceful degradation when every target failed.
    pub degraded: Option<Degraded>,
    /// Few-shot examples, checked: a valid library name, `k` in 1..=32.
    pub few_shot: Option<FewShot>,
}

/// Graceful degradation of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// Answer from the cache of successful answers.
    pub cache: bool,
    /// How long successful answers are cached; > 0.
    pub ttl: Duration,
    /// A fixed answer when nothing else is available; not empty.
    pub static_response: Option<String>,
}

/// Idempotent replay of repeated requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotency {
    /// How long an answer is kept; > 0.
    pub ttl: Duration,
    /// How many answers are kept at most; ≥ 1.
    pub capacity: u64,
    /// How many bytes of answers are kept at most; ≥ 1 KiB.
    pub max_bytes: u64,
}

/// How this node runs workflows: the engine's settings and the definitions to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// This node's name in leases: a valid store name (1..=200 of `[A-Za-z0-9_.:/@-]`).
    pub node_id: String,
    /// How long a task lease lasts without renewal; ≥ 100 ms.
    pub lease: Duration,
    /// How often an idle node looks for due work; > 0 and ≤ `lease`.
    pub poll_interval: Duration,
    /// The most tasks this node runs at once; 1..=100000.
    pub max_concurrent_tasks: usize,
    /// The largest task input, in bytes of JSON; 1..=1 MiB, or up to
    /// `artifacts.max_output` with artifacts.
    pub max_input_bytes: usize,
    /// Workflow definition files to register at startup, resolved against the
    /// configuration file's directory, in file order; each ends in `.json` or `.toml`.
    pub workflows: Vec<PathBuf>,
    /// Where `http` steps may send requests.
    pub egress: holdfast_engine::egress::Rules,
}

/// The quality loop's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quality {
    /// The gate on new configuration versions, when set.
    pub gate: Option<QualityGate>,
    /// Production sampling, by route or workflow name.
    pub sampling: std::collections::BTreeMap<String, QualitySampling>,
    /// Few-shot libraries that use embeddings: library → embedding route. Every other
    /// library is lexical.
    pub few_shot_embeddings: std::collections::BTreeMap<String, String>,
}

/// How a route's production answers, or a workflow's finished tasks, are sampled and scored.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySampling {
    /// The suite file, resolved against the configuration file's directory.
    pub suite: PathBuf,
    /// The share of answers sampled, in [0, 1].
    pub share: f64,
    /// The judge's budget per hour, in US dollars, at least 0.
    pub budget_per_hour: f64,
    /// How long samples are kept, at least a minute.
    pub retention: std::time::Duration,
}

/// The gate on new configuration versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityGate {
    /// The suite files, resolved against the configuration file's directory; not empty.
    pub suites: Vec<PathBuf>,
    /// What a failed gate does.
    pub on_fail: crate::schema::OnFail,
}

/// The game days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chaos {
    /// The scheduled experiments, in file order.
    pub schedule: Vec<ScheduledExperiment>,
    /// The `[[client_keys]]` name the experiments present, when keys are configured.
    pub client_key: Option<String>,
    /// The results' history file, resolved against the configuration file's directory.
    pub history: Option<PathBuf>,
}

/// One scheduled experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledExperiment {
    /// The experiment file, resolved against the configuration file's directory.
    pub file: PathBuf,
    /// When it runs.
    pub when: GameDayTime,
    /// Values of its `${name}` placeholders.
    pub vars: BTreeMap<String, String>,
}

/// When a scheduled experiment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GameDayTime {
    /// Every period, the first one period after the start; at least 1 s.
    Every(Duration),
    /// Every day at this many minutes after midnight, UTC; below 1440.
    DailyAt {
        /// Minutes after midnight UTC.
        minute_of_day: u32,
    },
}

/// What the server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `tracing` filter directives; valid.
    pub filter: String,
    /// How lines are written.
    pub format: crate::schema::LogFormat,
}

/// Trace export over OTLP, when `telemetry.otlp_endpoint` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// The collector's URL, `http://…`; for `http`, with `/v1/traces` when it had no
    /// path.
    pub endpoint: String,
    /// gRPC or HTTP.
    pub protocol: crate::schema::OtlpProtocol,
    /// 0.0..=1.0.
    pub sampling_ratio: f64,
    /// Not empty.
    pub service_name: String,
    /// At least 1.
    pub queue_size: usize,
}

/// What `holdfast config check` reports about a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Routes defined.
    pub routes: usize,
    /// Targets defined.
    pub targets: usize,
    /// Providers defined.
    pub providers: usize,
    /// Client keys defined.
    pub client_keys: usize,
    /// Secret variables that were not set (only when missing secrets were allowed).
    pub missing_secrets: Vec<String>,
}

/// `ok: 3 routes, 5 targets, 2 providers`, then the missing secrets if any.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok: {} routes, {} targets, {} providers",
            self.routes, self.targets, self.providers
        )?;
        if !self.missing_secrets.is_empty() {
            write!(f, " (not set: {})", self.missing_secrets.join(", "))?;
        }
        Ok(())
    }
}

impl Config {
    /// The counts `config check` prints.
    pub fn summary(&self) -> Summary {
        Summary {
            routes: self.routes.len(),
            targets: self.targets.len(),
            providers: self.providers.len(),
            client_keys: self.client_keys.len(),
            missing_secrets: self.missing_secrets.clone(),
        }
    }
}
