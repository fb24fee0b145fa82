//! The configuration file as written: the reference for every field.
//!
//! These types mirror the TOML one to one, reject unknown fields (a typo must not
//! silently fall back to a default), and hold their defaults in `Default`. They are
//! checked and resolved into [`crate::Config`] by validation, which is where references
//! between sections (a route naming a target) and ranges are checked; nothing here is
//! used by the server directly.
//!
//! A minimal file:
//!
//! ```toml
//! [providers.openai]
//! format = "openai"
//! base_url = "https://api.openai.com/v1"
//! key_env = "OPENAI_API_KEY"
//!
//! [targets."gpt-4o"]
//! provider = "openai"
//! model = "gpt-4o"
//! context_window = 128000
//!
//! [routes.smart]
//! targets = ["gpt-4o"]
//! ```

mod alerts;
mod artifacts;
mod chaos;
mod policy;
mod quality;
mod route;
mod target;
mod telemetry;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use alerts::{Alerts, RuleOverride, Severity, Threshold, Webhook};
pub use artifacts::Artifacts;
pub use chaos::{Chaos, GameDay};
pub use policy::{Breaker, Budget, Hedge, Jitter, Policy, Retry};
pub use quality::{FewShotLibrary, FewShotSimilarity, Gate, OnFail, Quality, Sampling};
pub use route::{Degraded, FewShot, FewShotMode, MidStream, RetryOn, Route};
pub use target::{Concurrency, Price, Probe, ProbeKind, Provider, Target, Timeouts};
pub use telemetry::{OtlpProtocol, Telemetry};

use crate::units::{ByteSize, HumanDuration};

/// The whole file. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Document {
    /// `[server]`: where the gateway listens.
    pub server: Server,
    /// `[store]`: where durable state lives.
    pub store: Store,
    /// `[[client_keys]]`: the keys clients present to holdfast. With none, the gateway
    /// accepts requests without a key.
    pub client_keys: Vec<ClientKey>,
    /// `[providers.NAME]`: the APIs holdfast calls.
    pub providers: BTreeMap<String, Provider>,
    /// `[targets.NAME]`: a model deployment at a provider, the unit that breakers, rate
    /// limits and prices apply to.
    pub targets: BTreeMap<String, Target>,
    /// `[routes.NAME]`: the model names clients ask for, each an ordered chain of
    /// targets.
    pub routes: BTreeMap<String, Route>,
    /// `[policies.NAME]`: how calls retry, fail over and hedge. A `default` policy
    /// always exists; writing `[policies.default]` replaces its settings.
    pub policies: BTreeMap<String, Policy>,
    /// `[agents]`: protection per calling agent.
    pub agents: Agents,
    /// `[idempotency]`: how long repeated requests are answered from memory.
    pub idempotency: Idempotency,
    /// `[logging]`: what the server logs.
    pub logging: Logging,
    /// `[engine]`: how this node runs workflows.
    pub engine: Engine,
    /// `[alerts]`: the alert rules over the server's own metrics, and where notices go.
    pub alerts: Alerts,
    /// `[quality]`: the quality loop: the gate on configuration changes.
    pub quality: Quality,
    /// `[chaos]`: experiments run against this deployment at set times (game days).
    pub chaos: Chaos,
    /// `[telemetry]`: traces exported over OTLP (off by default).
    pub telemetry: Telemetry,
    /// `[artifacts]`: large step outputs and task inputs kept in object storage.
    pub artifacts: Artifacts,
    /// `[cluster]`: what the nodes sharing one PostgreSQL database share beyond it.
    pub cluster: Cluster,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The socket address the gateway listens on, `IP:port` (`"0.0.0.0:8080"` for all
    /// interfaces; port 0 picks a free port). Default `"127.0.0.1:8080"`.
    /// Overridden by the environment variable `HOLDFAST_LISTEN`, then by `--listen`.
    pub listen: String,
    /// The largest request body accepted, as bytes or a size like `"4MiB"`; at least 1
    /// byte. Larger requests get HTTP 413. Default `"4MiB"`.
    pub body_limit: ByteSize,
    /// How long a client has to send a whole request head (request line and headers),
    /// from its connection being accepted, or, on a kept-alive connection, from the
    /// first byte of its next request. A connection that takes longer is closed without
    /// an answer (a slowloris client sending one header byte a second). > 0. Default
    /// `"10s"`.
    pub header_read_timeout: HumanDuration,
    /// How long a client has to send a whole request body once its head arrived. A
    /// body that trickles in slower is cut: HTTP 408 `request_timeout` and the
    /// connection closed. Answers, streamed ones included, are never cut by it. > 0.
    /// Default `"60s"` (a 4 MiB body at about 70 KB/s).
    pub body_read_timeout: HumanDuration,
    /// How long a kept-alive connection may sit idle between a response and the first
    /// byte of the next request before it is closed. > 0. Default `"75s"`: longer than
    /// the 60 s idle timeout common in load balancers, so that the balancer closes
    /// first and never reuses a connection holdfast is closing.
    pub idle_timeout: HumanDuration,
    /// The most client connections open at once, 1..=1000000. Beyond it, new
    /// connections wait in the kernel's accept queue until one closes (they are not
    /// refused). Keep it below the process's open-file limit (`ulimit -n`), which
    /// provider connections and the store count against too. Only a restart changes
    /// it. Default 10000.
    pub max_connections: u64,
    /// The largest request head (request line and headers) accepted, as bytes or a
    /// size like `"64KiB"`; `"1KiB"` to `"1MiB"`. A larger head gets HTTP 431 and the
    /// connection is closed. It also bounds the memory a connection holds while its
    /// head trickles in. Default `"64KiB"`.
    pub max_header_bytes: ByteSize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".to_owned(),
            body_limit: ByteSize(4 << 20),
            header_read_timeout: HumanDuration::secs(10),
            body_read_timeout: HumanDuration::secs(60),
            idle_timeout: HumanDuration::secs(75),
            max_connections: 10_000,
            max_header_bytes: ByteSize(64 << 10),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// The database URL: `sqlite://PATH` (a file, created if missing; a relative path
    /// is relative to the working directory) for one node, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMS]` for several nodes
    /// sharing one database. PostgreSQL parameters: `schema=NAME` (a schema of its own,
    /// created if missing) and TLS: `sslmode=disable`, `prefer` (the default: TLS when
    /// the server offers it, certificate unchecked), `require` (TLS or no connection,
    /// certificate unchecked), `verify-ca` (and the server's certificate signed by the
    /// CA in `sslrootcert=PATH`, a PEM file, or by a public web root) or `verify-full`
    /// (and issued for HOST); `sslcert=PATH` and `sslkey=PATH` for a client
    /// certificate. A URL whose TLS cannot be had stops `holdfast serve` with the cause
    /// (no TLS on the server, a certificate that did not verify, an unreadable
    /// `sslrootcert`); no message shows the password. Default
    /// `"sqlite://holdfast-data/holdfast.db"`. Overridden by the environment variable
    /// `HOLDFAST_STORE_URL`, then by `--store-url`.
    pub url: String,
    /// The longest an API call waits for the store: past it the call answers 503
    /// `store_unavailable` with `Retry-After` instead of hanging, and a running task
    /// holds its step result and retries the commit. `"100ms"` to `"60s"`; default
    /// `"3s"`. A write that timed out may still be committed later: a client retries
    /// with the same idempotency key.
    pub timeout: HumanDuration,
    /// How often the store is probed while nothing else reaches it, so that `/ready`
    /// and `holdfast_store_up` change within `probe_interval` plus twice that (the
    /// probe's own wait) of an outage starting or ending. `"50ms"` to `"10s"`;
    /// default `"250ms"`.
    pub probe_interval: HumanDuration,
    /// Queue task submissions while the store is unavailable instead of refusing
    /// them: each is checked against the workflow versions this node knows, written to
    /// `outbox_path` with fsync, answered 202 with its idempotency key and status
    /// `queued`, and submitted in order once the store is back (a kill -9 meanwhile
    /// loses nothing: a restart replays the file). Default `false`: 503
    /// `store_unavailable`.
    pub outbox: bool,
    /// The outbox file (created if missing; a relative path is relative to the working
    /// directory). One per node. Default `"holdfast-data/outbox.jsonl"`.
    pub outbox_path: PathBuf,
    /// The most the outbox file may hold: a submission that would take it past this is
    /// not queued but answered 503 `outbox_full` with `Retry-After`, so that a long
    /// outage cannot fill the node's disk (`holdfast_outbox_bytes` and
    /// `holdfast_outbox_refused_total` show it). `"1KiB"` to `"1TiB"`; default `"64MiB"`.
    pub outbox_max: ByteSize,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            url: "sqlite://holdfast-data/holdfast.db".to_owned(),
            timeout: HumanDuration::secs(3),
            probe_interval: HumanDuration::millis(250),
            outbox: false,
            outbox_path: PathBuf::from("holdfast-data/outbox.jsonl"),
            outbox_max: ByteSize(64 << 20),
        }
    }
}

/// `[[client_keys]]`: one key clients may present (`Authorization: Bearer KEY`).
///
/// Each key has a role, which bounds what it may do (`docs/security.md` has the table of
/// every endpoint and the least role it needs), and a tenant, which bounds whose data it
/// sees: tasks, worker jobs, escalations, the attempt ledger, idempotent answers and
/// cached answers belong to the tenant of the key that made them, and another tenant's
/// are answered 404.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    /// A name for the key, shown in metrics and logs instead of the key, and recorded
    /// as who answered an escalation; unique among client keys. Required.
    pub name: String,
    /// What the key may do, each role adding to the one before: `"agent"` (model calls;
    /// its tenant's tasks, worker jobs and ledger), `"reviewer"` (also its tenant's
    /// escalation inbox), `"operator"` (also reading every tenant's data, the alerts and
    /// the configuration history, draining and restoring targets, drills), `"admin"`
    /// (also configuration writes, reloads and rollbacks, and workflow registration).
    /// Default `"agent"`.
    #[serde(default)]
    pub role: Role,
    /// The tenant the key acts for: 1 to 200 characters of letters, digits and
    /// `_ . : / @ -`. Keys of one tenant share its data. Default: the key's `name`
    /// (which must then follow the same rule).
    pub tenant: Option<String>,
    /// The environment variable holding the key. The key itself never goes in the file.
    /// Required; the variable must be set and not empty.
    pub key_env: String,
    /// Requests per minute allowed with this key; at least 1. Default: unlimited.
    pub requests_per_minute: Option<u64>,
    /// Prompt tokens per minute allowed with this key; at least 1. Default: unlimited.
    pub tokens_per_minute: Option<u64>,
    /// Requests this key may have in flight at once, 1..=1000000, every endpoint
    /// counted (a stream until its last byte, a request whose body is still arriving
    /// included); one more gets HTTP 429 `too_many_concurrent_requests`. Bounds what
    /// one key (a leaked one, a runaway agent) can hold of the server. Default 1000.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u64,
    /// The key's place when a target is at its concurrency limit (`concurrency` on the
    /// target): `"interactive"` calls are served first and shed last, `"batch"` calls
    /// wait behind them and are shed first. Default `"interactive"`.
    #[serde(default)]
    pub priority: Priority,
}

/// A client key's priority (see [`ClientKey::priority`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Someone waits for the answer.
    #[default]
    Interactive,
    /// Work that can wait.
    Batch,
}

impl From<Priority> for holdfast_policy::concurrency::Priority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Interactive => holdfast_policy::concurrency::Priority::Interactive,
            Priority::Batch => holdfast_policy::concurrency::Priority::Batch,
        }
    }
}

/// `[[client_keys]] max_concurrent_requests` when it is left out.
fn default_max_concurrent_requests() -> u64 {
    1000
}

/// What a client key may do (see [`ClientKey::role`]); each role includes the ones
/// before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Model calls, and its tenant's tasks, worker jobs and ledger.
    #[default]
    Agent,
    /// Also its tenant's escalation inbox.
    Reviewer,
    /// Also every tenant's data, alerts and history (read), drains and drills.
    Operator,
    /// Also configuration writes, reloads, rollbacks and workflow registration.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Agent, Role::Reviewer, Role::Operator, Role::Admin];

    /// How the file (and `docs/security.md`) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[agents]`: calls that carry an `x-holdfast-agent` header are also protected per
/// agent, so one runaway agent trips its own breaker instead of the target's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agents {
    /// The breaker each agent gets; the same fields as a policy's `breaker`. On by
    /// default; `breaker = { enabled = false }` turns per-agent breakers off.
    pub breaker: Breaker,
}

/// `[idempotency]`: a request repeated with the same `Idempotency-Key` header within
/// `ttl` gets the first answer again instead of a second call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Idempotency {
    /// How long an answer is kept; > 0. Default `"10m"`.
    pub ttl: HumanDuration,
    /// How many answers are kept at most (the oldest go first); at least 1. Default
    /// 10000.
    pub capacity: u64,
    /// How many bytes of answers are kept at most (the oldest go first), as bytes or a
    /// size like `"64MiB"`; at least `"1KiB"`. An answer larger than this is not kept
    /// at all: the client still gets it, and a repeat calls upstream again. Default
    /// `"64MiB"`.
    pub max_bytes: ByteSize,
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency {
            ttl: HumanDuration::secs(600),
            capacity: 10_000,
            max_bytes: ByteSize(64 << 20),
        }
    }
}

/// `[cluster]`: what several nodes on one PostgreSQL database share besides tasks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// Share targets' rate limits and breakers, and client keys' rate limits, with
    /// every node on the same PostgreSQL database: a target's or a key's
    /// `requests_per_minute` and `tokens_per_minute` are held by all nodes together (each node takes units from one shared bucket in small
    /// batches, a few times a second), and a breaker that opens on one node, or is
    /// reset there by `holdfast targets reset`, does so on every node within a second.
    /// No call waits on the database: if it does not answer within 500 ms, a node
    /// falls back to its own limits and breakers (logged, and
    /// `holdfast_cluster_shared_health_up` 0) until it answers again. Needs a
    /// `postgres://` `store.url` (a SQLite file has one node). Default `false`.
    pub share_health: bool,
}

/// `[engine]`: the workflow engine. Tasks and their state live in `[store]`; these
/// settings say how this node takes part in running them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Engine {
    /// This node's name in task leases: 1 to 200 characters of letters, digits and
    /// `_ . : / @ -`. Keep it stable across restarts, so that a restarted node takes
    /// its own unfinished tasks back at once instead of waiting for their leases to
    /// expire, and unique among the nodes sharing one database. Default: the
    /// environment variable `HOSTNAME` (other characters replaced by `-`), else
    /// `"node-1"`.
    pub node_id: Option<String>,
    /// How long a task lease lasts without renewal; a dead node's tasks are taken over
    /// this long after its last renewal. At least `"100ms"`. Default `"10s"`.
    pub lease: HumanDuration,
    /// How often an idle node looks for due work; > 0 and at most `lease`. Default
    /// `"50ms"`.
    pub poll_interval: HumanDuration,
    /// The most tasks this node runs at once; 1..=100000. Default 1024: a task mostly
    /// waits (on a model, a tool, a worker), so a node runs many at once.
    pub max_concurrent_tasks: u64,
    /// The largest task input accepted, in bytes of JSON: bytes, or a size like
    /// `"256KiB"`; 1 byte to `"1MiB"` (the store's document limit), or to
    /// `artifacts.max_output` with `[artifacts]`. Default 262144.
    pub max_input_bytes: ByteSize,
    /// Workflow definition files (`.json` or `.toml`) registered when the server
    /// starts; a relative path is relative to this configuration file's directory. A
    /// file that does not parse stops the server with its name and the field at fault.
    /// Registering the same definition again is a no-op; a changed definition needs a
    /// new `version`. Default: none.
    pub workflows: Vec<String>,
    /// `[engine.egress]`: where `http` steps may send requests.
    pub egress: Egress,
}

/// `[engine.egress]`: where workflow `http` steps (tool calls) may send requests.
///
/// A step's URL is a template over the task's input and the tool's answer goes back to
/// the caller, so by default a tool call reaches public addresses only. Denied unless
/// opened below: loopback (`127.0.0.0/8`, `::1`), private networks (RFC 1918,
/// `100.64.0.0/10`, `fc00::/7`), link-local (`169.254.0.0/16`, `fe80::/10`), cloud
/// metadata addresses (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`,
/// `168.63.129.16`, …), reserved and documentation ranges, and the IPv4-mapped, NAT64
/// and 6to4 forms of all of these; never opened: the unspecified address (`0.0.0.0`,
/// `::`), multicast and broadcast. The address checked is the one connected to, after
/// DNS resolution, on every connection and every redirect hop; a refused call fails
/// its step with the class `egress_denied`, is not retried, and sends nothing.
/// Changing this section needs a restart.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Egress {
    /// The URLs tool calls may go to; with none (the default), any URL whose host is a
    /// public address. Each pattern is `SCHEME://HOST[:PORT][PATH]`:
    /// - `SCHEME`: `http` or `https`.
    /// - `HOST`: a host name (`api.example.com`, matched exactly, case-insensitive), an
    ///   IP address (`10.0.0.5`, `[fd00::5]`), `*.example.com` (any name under
    ///   `example.com`, not `example.com` itself) or `*` (any host).
    /// - `PORT`: 1..=65535, or `*` for any; when left out, the scheme's own port only
    ///   (80 or 443).
    /// - `PATH`: starts with `/`; `*` matches any run of characters, `/` included, the
    ///   rest matches itself (`/v1/*`); when left out, any path. The query string is
    ///   never matched.
    ///
    /// No user name, password, query or fragment. Wildcards only ever reach public
    /// addresses. A pattern whose host is an exact name or IP address *names* that
    /// host, which is what opens non-public addresses: an IP literal opens itself
    /// (`http://127.0.0.1:8081/*`), a host name opens whatever it resolves to
    /// (`http://tools.internal:8080/*` may resolve to `10.0.0.7`), except that a
    /// metadata address opens only to a pattern naming that address itself. When some
    /// patterns name a URL's host, only they can match it (a wildcard does not widen
    /// them).
    pub allow: Vec<String>,
    /// Whether a tool's redirects (301, 302, 303, 307, 308) are followed. When true,
    /// every hop is checked as the first request is, up to 5 hops. Headers set by the
    /// step go along to every hop (except `Authorization` and cookies across hosts),
    /// so keep this off for tools that take credentials in other headers. When false,
    /// a redirect answer fails the step with `egress_denied`. Default false.
    pub follow_redirects: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            node_id: None,
            lease: HumanDuration::secs(10),
            poll_interval: HumanDuration::millis(50),
            max_concurrent_tasks: 1024,
            max_input_bytes: ByteSize(256 * 1024),
            workflows: Vec::new(),
            egress: Egress::default(),
        }
    }
}

/// `[logging]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// Which logs to show, as `tracing` filter directives: a level (`"error"`, `"warn"`,
    /// `"info"`, `"debug"`, `"trace"`) optionally with per-module levels
    /// (`"info,holdfast_policy=debug"`). Not empty. `HOLDFAST_LOG`, when set, wins.
    /// Default `"info"`.
    pub filter: String,
    /// `"text"`: one line a person reads, coloured only on a terminal; `"json"`: one
    /// JSON object per line for a log pipeline. Default `"text"`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            filter: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}
