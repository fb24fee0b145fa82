//! From the file as written to the settings the server runs with, collecting every
//! problem on the way.
//!
//! Like ripgrep's `LowArgs` → `HiArgs`: the schema is what the user wrote, this turns it
//! into domain types. Each check records a [`Problem`] with the field's path and keeps
//! going, so one run reports every mistake; a value that failed is left out, and
//! anything that depends on it stays quiet instead of reporting the same mistake twice.

mod alerts;
mod artifacts;
mod chaos;
mod engine;
mod listener;
mod policy;
mod quality;
mod route;
mod target;
mod telemetry;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use holdfast_policy::InvalidSetting;
use holdfast_policy::rate_limit;

use crate::error::{At, Kind, Problem};
use crate::locate::Locator;
use crate::path::FieldPath;
use crate::resolved::{ClientKey, Config, Idempotency, Logging, Server, Source, Store};
use crate::schema::{self, Document};
use crate::secret::Secret;
use crate::units::HumanDuration;
use crate::{Env, Origin};

/// A value that may have been overridden from outside the file.
#[derive(Debug, Clone)]
pub(crate) struct Layered {
    /// The value that won.
    pub(crate) value: String,
    /// Where it came from; `None` for the file or the default.
    pub(crate) origin: Option<Origin>,
}

/// What validation needs besides the document.
pub(crate) struct Inputs<'a> {
    pub(crate) env: Env<'a>,
    pub(crate) allow_missing_secrets: bool,
    /// The prefixes a `key_env` must start with, when the text came from outside the
    /// machine (the API); `None` for files.
    pub(crate) key_env_prefixes: Option<&'a [String]>,
    pub(crate) listen: Layered,
    pub(crate) store_url: Layered,
    pub(crate) locator: &'a Locator<'a>,
}

/// Collects problems while values are checked.
pub(crate) struct Checker<'a> {
    env: Env<'a>,
    allow_missing_secrets: bool,
    key_env_prefixes: Option<&'a [String]>,
    problems: Vec<Problem>,
    missing_secrets: Vec<String>,
    /// Secret values seen so far, with the field that named them, to spot reuse.
    client_secrets: HashMap<String, FieldPath>,
}

impl Checker<'_> {
    /// Records a bad value at `path`.
    pub(crate) fn invalid(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push(Problem::invalid(path, message));
    }

    /// Records a setting a policy constructor refused; its field is relative to `prefix`.
    pub(crate) fn setting(&mut self, prefix: &FieldPath, error: InvalidSetting) {
        self.invalid(prefix.dotted(error.field), error.problem);
    }

    /// Reads the secret in `var`, named by the field at `path`. A text from the API
    /// may only name variables with an allowed prefix: otherwise a configuration
    /// posted from afar could send any secret of the process (a cloud key, a database
    /// password) to a `base_url` of its choosing. Such a variable is not even read.
    pub(crate) fn secret(&mut self, path: FieldPath, var: &str) -> Option<Secret> {
        if var.is_empty() {
            self.invalid(path, "names no environment variable");
            return None;
        }
        if let Some(prefixes) = self.key_env_prefixes
            && !prefixes.iter().any(|p| var.starts_with(p.as_str()))
        {
            let message = format!(
                "{var} may not be read by a configuration sent through the API: its name \
                 must start with one of {} (`holdfast serve --key-env-prefixes`)",
                prefixes.join(", ")
            );
            self.invalid(path, message);
            return None;
        }
        match (self.env)(var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            Some(_) | None if self.allow_missing_secrets => {
                self.missing_secrets.push(var.to_owned());
                None
            }
            Some(_) | None => {
                self.problems.push(Problem {
                    at: At::File(path),
                    kind: Kind::MissingSecret(var.to_owned()),
                });
                None
            }
        }
    }

    /// A per-minute rate limit, which must allow at least one unit.
    pub(crate) fn per_minute(
        &mut self,
        path: FieldPath,
        limit: Option<u64>,
    ) -> Option<rate_limit::Config> {
        match limit? {
            0 => {
                self.invalid(path, "must be at least 1 (leave it out for no limit)");
                None
            }
            limit => Some(rate_limit::Config::per_minute(limit)),
        }
    }

    /// A duration that must be longer than zero.
    pub(crate) fn positive(&mut self, path: FieldPath, value: HumanDuration) -> Option<Duration> {
        if value.0.is_zero() {
            self.invalid(path, "must be longer than zero");
            None
        } else {
            Some(value.0)
        }
    }
}

/// `(known: a, b)` for messages about unknown names.
pub(crate) fn known<'k>(names: impl Iterator<Item = &'k String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "(none are defined)".to_owned()
    } else {
        format!("(known: {})", names.join(", "))
    }
}

/// Checks `doc` and resolves it, or returns every problem found.
pub(crate) fn run(
    doc: &Document,
    inputs: Inputs<'_>,
    source: Source,
) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        env: inputs.env,
        allow_missing_secrets: inputs.allow_missing_secrets,
        key_env_prefixes: inputs.key_env_prefixes,
        problems: Vec::new(),
        missing_secrets: Vec::new(),
        client_secrets: HashMap::new(),
    };
    let server = server(&mut c, doc, &inputs);
    let store = store(&mut c, &doc.store, &inputs.store_url);
    let share_health = share_health(&mut c, &doc.cluster, store.as_ref());
    let policies = policy::all(&mut c, &doc.policies);
    let agent_breaker = policy::breaker(&mut c, &FieldPath::root("agents"), &doc.agents.breaker);
    let providers = target::providers(&mut c, &doc.providers);
    let mut targets = target::targets(&mut c, doc, &providers);
    let routes = route::routes(&mut c, doc, &policies);
    route::assign_settings(&mut targets, &routes, &policies, doc, inputs.locator);
    let client_keys = client_keys(&mut c, &doc.client_keys);
    let idempotency = idempotency(&mut c, &doc.idempotency);
    let logging = logging(&mut c, &doc.logging);
    let artifacts = artifacts::artifacts(&mut c, &doc.artifacts);
    // With artifacts, a task input may be as large as any value kept as an object.
    let max_input = artifacts.as_ref().map(|a| a.max_output as u64);
    let engine = engine::engine(&mut c, &doc.engine, inputs.env, &source.name, max_input);
    let pipeline = policy::settings(&policies, agent_breaker);
    let alerts = alerts::alerts(&mut c, &doc.alerts);
    let quality = quality::quality(&mut c, &doc.quality, doc, &source.name);
    let chaos = chaos::chaos(&mut c, &doc.chaos, &client_keys, &source.name);
    let telemetry = telemetry::telemetry(&mut c, &doc.telemetry);
    match (server, store, idempotency, logging, engine, pipeline) {
        (
            Some(server),
            Some(store),
            Some(idempotency),
            Some(logging),
            Some(engine),
            Some(pipeline),
        ) if c.problems.is_empty() => {
            Ok(Config {
                source,
                server,
                store,
                share_health,
                client_keys,
                providers,
                targets,
                routes,
                pipeline,
                idempotency,
                logging,
                engine,
                // `None` left a problem behind, so this arm is not taken then.
                alerts: alerts.unwrap_or_default(),
                quality,
                chaos,
                telemetry,
                artifacts,
                missing_secrets: c.missing_secrets,
            })
        }
        _ => Err(c.problems),
    }
}

/// Records a problem with a value that may come from an override.
fn layered_problem(c: &mut Checker<'_>, value: &Layered, path: FieldPath, message: String) {
    match &value.origin {
        None => c.invalid(path, message),
        Some(origin) => c.problems.push(Problem {
            at: At::Override(origin.clone(), path),
            kind: Kind::Invalid(message),
        }),
    }
}

fn server(c: &mut Checker<'_>, doc: &Document, inputs: &Inputs<'_>) -> Option<Server> {
    let path = FieldPath::root("server");
    let listen = match inputs.listen.value.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let message = format!(
                "{:?} is not a socket address like \"127.0.0.1:8080\" or \"[::1]:8080\"",
                inputs.listen.value
            );
            layered_problem(c, &inputs.listen, path.key("listen"), message);
            None
        }
    };
    let body_limit = doc.server.body_limit.0;
    if body_limit == 0 {
        c.invalid(path.key("body_limit"), "must be at least 1 byte");
    }
    let listener = listener::listener(c, &doc.server);
    Some(Server {
        listen: listen?,
        body_limit,
        listener: listener?,
    })
}

fn store(c: &mut Checker<'_>, raw: &schema::Store, url: &Layered) -> Option<Store> {
    let root = FieldPath::root("store");
    let path = root.key("url");
    let timeout = raw.timeout.0;
    let timeout_ok = (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&timeout);
    if !timeout_ok {
        c.invalid(root.key("timeout"), "must be between \"100ms\" and \"60s\"");
    }
    let probe_interval = raw.probe_interval.0;
    let probe_ok = (Duration::from_millis(50)..=Duration::from_secs(10)).contains(&probe_interval);
    if !probe_ok {
        c.invalid(
            root.key("probe_interval"),
            "must be between \"50ms\" and \"10s\"",
        );
    }
    let outbox_max = raw.outbox_max.0;
    let outbox_max_ok = (1 << 10..=1 << 40).contains(&outbox_max);
    if !outbox_max_ok {
        c.invalid(root.key("outbox_max"), "must be \"1KiB\" to \"1TiB\"");
    }
    let problem = match url::Url::parse(&url.value) {
        Ok(parsed) => match parsed.scheme() {
            "sqlite" | "postgres" | "postgresql" => None,
            other => Some(format!(
                "{:?} has scheme `{other}`; use sqlite:// or postgres://",
                url.value
            )),
        },
        Err(e) => Some(format!("{:?} is not a URL: {e}", url.value)),
    };
    match problem {
        None if timeout_ok && probe_ok && outbox_max_ok => Some(Store {
            url: url.value.clone(),
            timeout,
            probe_interval,
            outbox: raw.outbox.then(|| raw.outbox_path.clone()),
            outbox_max,
        }),
        None => None,
        Some(message) => {
            layered_problem(c, url, path, message);
            None
        }
    }
}

/// `[cluster] share_health` needs a store that several nodes share: on SQLite it would
/// share with nobody, so it is refused rather than silently ignored.
fn share_health(c: &mut Checker<'_>, raw: &schema::Cluster, store: Option<&Store>) -> bool {
    let Some(store) = store.filter(|_| raw.share_health) else {
        return false;
    };
    if store.url.starts_with("sqlite:") {
        c.invalid(
            FieldPath::root("cluster").key("share_health"),
            "shares rate limits and breakers between nodes through PostgreSQL, but              store.url is a SQLite file, which one node uses alone: set store.url to a              postgres:// URL, or remove share_health",
        );
        return false;
    }
    true
}

fn client_keys(c: &mut Checker<'_>, raw: &[schema::ClientKey]) -> Vec<ClientKey> {
    let root = FieldPath::root("client_keys");
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys = Vec::new();
    for (i, key) in raw.iter().enumerate() {
        let path = root.index(i);
        if key.name.trim().is_empty() {
            c.invalid(path.key("name"), "must not be empty");
        } else if let Some(first) = names.get(key.name.as_str()) {
            let message = format!(
                "duplicate client key name {:?} (also client_keys[{first}])",
                key.name
            );
            c.invalid(path.key("name"), message);
        } else {
            names.insert(&key.name, i);
        }
        let secret = c.secret(path.key("key_env"), &key.key_env);
        if let Some(secret) = &secret {
            let previous = c
                .client_secrets
                .insert(secret.expose().to_owned(), path.clone());
            if let Some(previous) = previous {
                let message = format!("{} holds the same key as {previous}", key.key_env);
                c.invalid(path.key("key_env"), message);
            }
        }
        let tenant = key.tenant.clone().unwrap_or_else(|| key.name.clone());
        if let Some(problem) = engine::name_problem(&tenant) {
            match key.tenant {
                Some(_) => c.invalid(path.key("tenant"), problem),
                None => c.invalid(
                    path.key("tenant"),
                    format!(
                        "the key's name {:?} is not a valid tenant ({problem}): set `tenant`",
                        key.name
                    ),
                ),
            }
        }
        keys.push(ClientKey {
            name: key.name.clone(),
            role: key.role,
            tenant,
            key: secret,
            requests: c.per_minute(path.key("requests_per_minute"), key.requests_per_minute),
            tokens: c.per_minute(path.key("tokens_per_minute"), key.tokens_per_minute),
            max_concurrent_requests: listener::max_concurrent_requests(
                c,
                path.key("max_concurrent_requests"),
                key.max_concurrent_requests,
            ),
            priority: key.priority.into(),
        });
    }
    keys
}

fn idempotency(c: &mut Checker<'_>, raw: &schema::Idempotency) -> Option<Idempotency> {
    let path = FieldPath::root("idempotency");
    let ttl = c.positive(path.key("ttl"), raw.ttl);
    if raw.capacity == 0 {
        c.invalid(path.key("capacity"), "must be at least 1");
    }
    if raw.max_bytes.0 < 1 << 10 {
        c.invalid(path.key("max_bytes"), "must be at least 1KiB");
    }
    Some(Idempotency {
        ttl: ttl?,
        capacity: raw.capacity,
        max_bytes: raw.max_bytes.0,
    })
}

fn logging(c: &mut Checker<'_>, raw: &schema::Logging) -> Option<Logging> {
    if raw.filter.trim().is_empty() {
        c.invalid(
            FieldPath::root("logging").key("filter"),
            "must not be empty (try \"info\")",
        );
        return None;
    }
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&raw.filter) {
        c.invalid(
            FieldPath::root("logging").key("filter"),
            format!("is not a valid filter ({e}); try \"info\" or \"info,holdfast_policy=debug\""),
        );
        return None;
    }
    Some(Logging {
        filter: raw.filter.clone(),
        format: raw.format,
    })
}
