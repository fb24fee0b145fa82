//! [`Gateway`]: everything a request needs, built once from a validated configuration.
//!
//! The decision that shapes it: resolve every name at startup. Routes become an
//! `Arc<Chain>` and an `Arc<Policy>`, targets become an index into one vector whose
//! order is the order they were added to the one shared [`Registry`], so a
//! [`TargetId`] from the pipeline finds its endpoint, price and name without a lookup
//! by string on the hot path. Nothing here is re-parsed or re-validated per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use holdfast_config::{Config, Degraded, MidStream};
use holdfast_llm::{Endpoint, Price, ProviderClient};
use holdfast_policy::Clock;
use holdfast_policy::fallback::{Chain, Link, TargetId};
use holdfast_policy::pipeline::{Policy, Registry};
use serde_json::json;

use crate::auth::ClientKeys;
use crate::degraded::DegradedCache;
use crate::error::ServerError;
use crate::idempotency::IdempotencyStore;
use crate::ledger::Ledger;
use crate::metrics::Metrics;

/// How many recent requests the attempt ledger keeps.
pub const LEDGER_CAPACITY: usize = 4096;

/// How many successful answers the degraded-mode cache keeps, over all routes.
pub const DEGRADED_CACHE_CAPACITY: usize = 1024;

/// The gateway: routes, targets, the shared health registry, the provider client and
/// the in-memory stores. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.inner.routes.len())
            .field("targets", &self.inner.targets.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) client: ProviderClient,
    /// The one registry every call shares; locked only inside the driver's decisions
    /// and for the targets endpoint's snapshot.
    pub(crate) registry: Mutex<Registry>,
    /// By `TargetId`.
    pub(crate) targets: Vec<TargetRuntime>,
    pub(crate) routes: HashMap<String, RouteRuntime>,
    pub(crate) keys: ClientKeys,
    pub(crate) body_limit: u64,
    pub(crate) ledger: Ledger,
    /// What `GET /metrics` shows; written only by `events.rs`.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) idempotency: IdempotencyStore,
    pub(crate) degraded: DegradedCache,
    /// `GET /v1/models`, serialised once.
    pub(crate) models: Bytes,
    /// The workflow engine behind `/v1/workflows`, `/v1/tasks`…, once attached
    /// (`engine_api.rs`).
    pub(crate) engine: std::sync::OnceLock<holdfast_engine::Engine>,
    /// The alert rules and their states (`alerts/`).
    pub(crate) alerts: crate::alerts::Alerting,
    ids: RequestIds,
}

/// A target, resolved.
pub(crate) struct TargetRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) provider: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) price: Price,
    /// Whether it continues an answer given as an assistant prefill.
    pub(crate) supports_prefill: bool,
}

/// A route, resolved.
pub(crate) struct RouteRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) chain: Arc<Chain>,
    pub(crate) policy: Arc<Policy>,
    /// What happens when a stream breaks after the client got part of it
    /// (`recovery.rs`).
    pub(crate) mid_stream: MidStream,
    pub(crate) degraded: Option<Degraded>,
    /// The smallest context window of its targets: prompts that may not fit it are
    /// counted exactly.
    pub(crate) smallest_window: u64,
}

impl Gateway {
    /// Builds the gateway from a validated configuration, reading time from `clock`.
    ///
    /// Refuses a configuration whose secrets were allowed to be missing.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Gateway, ServerError> {
        if !config.missing_secrets.is_empty() {
            return Err(ServerError::Config(format!(
                "environment variables not set: {}",
                config.missing_secrets.join(", ")
            )));
        }
        let now = clock.now();
        let mut registry = Registry::new(config.pipeline.clone()).map_err(invalid)?;
        let (targets, ids) = build_targets(config, &mut registry, now)?;
        let routes = build_routes(config, &ids)?;
        let models = models_body(config);
        let unix = clock.unix_millis();
        let metrics = Arc::new(Metrics::new(
            routes.keys().map(String::as_str),
            targets.iter().map(|t| &*t.name),
        ));
        Ok(Gateway {
            inner: Arc::new(Inner {
                client: ProviderClient::new(Arc::clone(&clock)),
                registry: Mutex::new(registry),
                targets,
                routes,
                keys: ClientKeys::new(&config.client_keys, now).map_err(invalid)?,
                body_limit: config.server.body_limit,
                ledger: Ledger::new(LEDGER_CAPACITY, Arc::clone(&metrics)),
                metrics,
                idempotency: IdempotencyStore::new(
                    config.idempotency.ttl,
                    config.idempotency.capacity,
                ),
                degraded: DegradedCache::new(DEGRADED_CACHE_CAPACITY),
                models,
                engine: std::sync::OnceLock::new(),
                alerts: crate::alerts::Alerting::new(config.alerts.clone()),
                ids: RequestIds::new(unix),
                clock,
            }),
        })
    }

    /// Whether requests need no key (the configuration has no client keys).
    pub fn is_open(&self) -> bool {
        self.inner.keys.is_empty()
    }
}

impl Inner {
    /// The target behind a pipeline id.
    pub(crate) fn target(&self, id: TargetId) -> Option<&TargetRuntime> {
        self.targets.get(id.0 as usize)
    }

    /// The target's name, or `?` for an id the gateway never gave out.
    pub(crate) fn target_name(&self, id: TargetId) -> Arc<str> {
        self.target(id)
            .map_or_else(|| Arc::from("?"), |t| Arc::clone(&t.name))
    }

    /// Response headers for a request that makes no call: a fresh id only.
    pub(crate) fn reply(&self) -> crate::meta::Reply {
        crate::meta::Reply::new(&self.next_request().0)
    }

    /// A fresh request id and the seed for its call's jitter.
    pub(crate) fn next_request(&self) -> (Arc<str>, u64) {
        self.ids.next()
    }
}

fn invalid(e: holdfast_policy::InvalidSetting) -> ServerError {
    ServerError::Config(e.to_string())
}

type TargetIds<'c> = HashMap<&'c str, (TargetId, &'c holdfast_config::Target)>;

/// Every target, added to `registry` in the order of the returned vector.
fn build_targets<'c>(
    config: &'c Config,
    registry: &mut Registry,
    now: holdfast_policy::Instant,
) -> Result<(Vec<TargetRuntime>, TargetIds<'c>), ServerError> {
    let mut targets = Vec::with_capacity(config.targets.len());
    let mut ids = HashMap::new();
    for (name, target) in &config.targets {
        let id = registry
            .add_target(name, target.settings.clone(), now)
            .map_err(invalid)?;
        ids.insert(name.as_str(), (id, target));
        targets.push(TargetRuntime {
            name: Arc::from(name.as_str()),
            provider: target.provider.clone(),
            endpoint: target.endpoint(),
            price: target.price,
            supports_prefill: target.supports_prefill,
        });
    }
    Ok((targets, ids))
}

/// Every route, its chain resolved to target ids.
fn build_routes(
    config: &Config,
    ids: &TargetIds<'_>,
) -> Result<HashMap<String, RouteRuntime>, ServerError> {
    let mut routes = HashMap::with_capacity(config.routes.len());
    for (name, route) in &config.routes {
        let links = route
            .targets
            .iter()
            .map(|t| {
                let (id, target) = ids.get(t.as_str()).ok_or_else(|| {
                    ServerError::Config(format!("route {name} names unknown target {t}"))
                })?;
                Ok(link(*id, target))
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        let smallest_window = links
            .iter()
            .filter_map(|l| l.context_window)
            .min()
            .unwrap_or(0);
        let chain = Chain::new(links).map_err(invalid)?;
        let runtime = RouteRuntime {
            smallest_window,
            name: Arc::from(name.as_str()),
            chain: Arc::new(chain),
            policy: Arc::clone(&route.policy),
            mid_stream: route.mid_stream,
            degraded: route.degraded.clone(),
        };
        routes.insert(name.clone(), runtime);
    }
    Ok(routes)
}

fn link(id: TargetId, target: &holdfast_config::Target) -> Link {
    Link {
        target: id,
        context_window: Some(target.context_window),
        attempt_timeout: target.timeouts.total,
        takes_filtered: target.takes_filtered,
    }
}

fn models_body(config: &Config) -> Bytes {
    let data: Vec<_> = config
        .routes
        .keys()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "holdfast"}))
        .collect();
    Bytes::from(serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default())
}

/// Request ids: unique per process and, through the start time, across restarts, so
/// that they also serve as idempotency keys sent to providers.
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new(unix_millis: u64) -> Self {
        RequestIds {
            prefix: format!("req_{unix_millis:x}"),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> (Arc<str>, u64) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}_{n:x}", self.prefix);
        // Mix the counter so that neighbouring calls get unrelated jitter.
        let seed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.prefix.len() as u64;
        (Arc::from(id), seed)
    }
}
