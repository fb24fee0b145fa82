//! [`Gateway`]: everything a request needs, built once from a validated configuration.
//!
//! The decision that shapes it: resolve every name at startup. Routes become an
//! `Arc<Chain>` and an `Arc<Policy>`, targets become an index into one vector whose
//! order is the order they were added to the one shared [`Registry`], so a
//! [`TargetId`] from the pipeline finds its endpoint, price and name without a lookup
//! by string on the hot path. Nothing here is re-parsed or re-validated per request.
//!
//! A reload (`live.rs`) builds a new [`Inner`] from the new configuration with
//! [`Inner::build`], handing over what must outlive a configuration: the ledger, the
//! idempotency and degraded caches, the request ids, the alert board, the attached
//! engine, the provider client's connection pools and the metrics' totals
//! (holdfast-metrics' `carry.rs`). Target health (breakers, Retry-After, rate limits, budgets,
//! latencies) is handed to the new registry for every target that is still the same
//! deployment with the same settings (`take_over_health`); a changed one starts afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use holdfast_config::{Config, Degraded, MidStream};
use holdfast_llm::{Endpoint, Price, ProviderClient};
use holdfast_policy::Clock;
use holdfast_policy::breaker::State;
use holdfast_policy::fallback::{Chain, Link, TargetId};
use holdfast_policy::pipeline::{Policy, Registry};
use holdfast_policy::silence;
use serde_json::json;

use crate::auth::ClientKeys;
use crate::degraded::DegradedCache;
use crate::error::ServerError;
use crate::idempotency::IdempotencyStore;
use crate::inflight::InFlight;
use crate::ledger::Ledger;
use holdfast_metrics::Metrics;

/// How many recent requests the attempt ledger keeps.
pub const LEDGER_CAPACITY: usize = 4096;

/// How many bytes of entries the attempt ledger keeps at most (8 MiB: 4,096 entries
/// of up to 2 KiB, a request with several failed attempts and their messages).
pub const LEDGER_MAX_BYTES: usize = 8 << 20;

/// How many successful answers the degraded-mode cache keeps, over all routes.
pub const DEGRADED_CACHE_CAPACITY: usize = 1024;

/// How many bytes of answers the degraded-mode cache keeps at most, over all routes
/// (32 MiB: 1,024 answers of 32 KiB, some 8,000 tokens each).
pub const DEGRADED_CACHE_MAX_BYTES: usize = 32 << 20;

/// The gateway: routes, targets, the shared health registry, the provider client and
/// the in-memory stores. Cheap to clone (two `Arc`s).
///
/// `inner` is the configuration state one request runs on from start to end; `live`
/// holds the current one, which a reload replaces (`live.rs`).
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
    pub(crate) live: Arc<crate::live::Live>,
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
    /// Each key's requests in flight, by the index `keys` gives it (`inflight.rs`).
    pub(crate) inflight: InFlight,
    pub(crate) body_limit: u64,
    /// The listener's timeouts and caps, for connections accepted from now on.
    pub(crate) listener: holdfast_config::Listener,
    pub(crate) ledger: Arc<Ledger>,
    /// What `GET /metrics` shows; written only by `events.rs`.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) idempotency: Arc<IdempotencyStore>,
    /// The idempotency settings the store above was built with.
    idempotency_settings: holdfast_config::Idempotency,
    pub(crate) degraded: Arc<DegradedCache>,
    /// `GET /v1/models`, serialised once.
    pub(crate) models: Bytes,
    /// The workflow engine behind `/v1/workflows`, `/v1/tasks`…, once attached
    /// (`engine_api.rs`).
    pub(crate) engine: std::sync::OnceLock<holdfast_engine::Engine>,
    /// The store guard's health behind `/ready`, once attached (`ready.rs`).
    pub(crate) store_health: std::sync::OnceLock<Arc<holdfast_engine::StoreHealth>>,
    /// The few-shot example libraries, built from the attached engine's store
    /// (`few_shot.rs`).
    pub(crate) libraries: std::sync::OnceLock<Arc<holdfast_quality::fewshot::Libraries>>,
    /// Production sampling, once set up (`sampling.rs`).
    pub(crate) sampling: std::sync::OnceLock<Arc<crate::sampling::Sampling>>,
    /// The health shared with other nodes, once started (`cluster.rs`).
    pub(crate) shared_health: std::sync::OnceLock<Arc<holdfast_cluster::SharedHealth>>,
    /// Few-shot libraries that use embeddings: library → embedding route.
    pub(crate) few_shot_embeddings: std::collections::BTreeMap<String, String>,
    /// The alert rules and their states (holdfast-alerts).
    pub(crate) alerts: Arc<holdfast_alerts::Alerting>,
    ids: Arc<RequestIds>,
}

/// A target, resolved.
pub(crate) struct TargetRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) provider: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) price: Price,
    /// Whether it continues an answer given as an assistant prefill.
    pub(crate) supports_prefill: bool,
    /// Its recent first-byte latencies, for first-byte timeouts it did not set
    /// (`transport.rs`).
    pub(crate) silence: Mutex<silence::Estimate>,
    /// Its active health probe while its breaker is open (`probe.rs`).
    pub(crate) probe: Option<holdfast_config::Probe>,
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
    /// Its few-shot library, if it has one (`few_shot.rs`).
    pub(crate) few_shot: Option<holdfast_config::FewShot>,
    /// The smallest context window of its targets: prompts that may not fit it are
    /// counted exactly.
    pub(crate) smallest_window: u64,
}

impl Gateway {
    /// Builds the gateway from a validated configuration, reading time from `clock`.
    ///
    /// Refuses a configuration whose secrets were allowed to be missing.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Gateway, ServerError> {
        let inner = Arc::new(Inner::build(config, clock, None)?);
        let live = Arc::new(crate::live::Live::new(Arc::clone(&inner), config.clone()));
        Ok(Gateway { inner, live })
    }

    /// Whether requests need no key (the configuration has no client keys).
    pub fn is_open(&self) -> bool {
        self.inner.keys.is_empty()
    }
}

impl Inner {
    /// The state for `config`; `previous`, on a reload, hands over what outlives a
    /// configuration (see the module docs).
    pub(crate) fn build(
        config: &Config,
        clock: Arc<dyn Clock>,
        previous: Option<&Inner>,
    ) -> Result<Inner, ServerError> {
        if !config.missing_secrets.is_empty() {
            return Err(ServerError::Config(format!(
                "environment variables not set: {}",
                config.missing_secrets.join(", ")
            )));
        }
        let now = clock.now();
        let mut registry = Registry::new(config.pipeline.clone()).map_err(invalid)?;
        if config.share_health {
            // From the first call on: a node's own full buckets would exceed the limit.
            registry.share_limits(holdfast_cluster::TICK);
        }
        let (targets, ids) = build_targets(config, &mut registry, now)?;
        let routes = build_routes(config, &ids)?;
        let models = models_body(config);
        let route_names = || routes.keys().map(String::as_str);
        let target_names = || targets.iter().map(|t| &*t.name);
        let metrics = match previous {
            None => Arc::new(Metrics::new(route_names(), target_names())),
            Some(old) if old.metrics.has_labels(route_names(), target_names()) => {
                Arc::clone(&old.metrics)
            }
            Some(old) => Arc::new(Metrics::succeeding(
                &old.metrics,
                route_names(),
                target_names(),
            )),
        };
        let idempotency = match previous {
            Some(old) if old.idempotency_settings == config.idempotency => {
                Arc::clone(&old.idempotency)
            }
            _ => Arc::new(IdempotencyStore::new(
                config.idempotency.ttl,
                config.idempotency.capacity,
                config.idempotency.max_bytes,
            )),
        };
        let engine = std::sync::OnceLock::new();
        if let Some(attached) = previous.and_then(|old| old.engine.get()) {
            let _ = engine.set(attached.clone());
        }
        let store_health = std::sync::OnceLock::new();
        if let Some(attached) = previous.and_then(|old| old.store_health.get()) {
            let _ = store_health.set(Arc::clone(attached));
        }
        let libraries = std::sync::OnceLock::new();
        if let Some(attached) = previous.and_then(|old| old.libraries.get()) {
            let _ = libraries.set(Arc::clone(attached));
        }
        let sampling = std::sync::OnceLock::new();
        if let Some(attached) = previous.and_then(|old| old.sampling.get()) {
            let _ = sampling.set(Arc::clone(attached));
        }
        let shared_health = std::sync::OnceLock::new();
        if let Some(attached) = previous.and_then(|old| old.shared_health.get()) {
            let _ = shared_health.set(Arc::clone(attached));
        }
        // On a reload the shared ledger is pointed at the new metrics when the new
        // state is swapped in (`live.rs`), not here: this build may still be dropped.
        let ledger = match previous {
            Some(old) => Arc::clone(&old.ledger),
            None => Arc::new(Ledger::new(
                LEDGER_CAPACITY,
                LEDGER_MAX_BYTES,
                Arc::clone(&metrics),
            )),
        };
        Ok(Inner {
            // The provider client (its connection pools) outlives a configuration.
            client: previous.map_or_else(
                || ProviderClient::new(Arc::clone(&clock)),
                |old| old.client.clone(),
            ),
            registry: Mutex::new(registry),
            targets,
            routes,
            keys: ClientKeys::new(&config.client_keys, now, config.share_health)
                .map_err(invalid)?,
            inflight: InFlight::new(&config.client_keys, previous.map(|old| &old.inflight)),
            body_limit: config.server.body_limit,
            listener: config.server.listener,
            ledger,
            metrics,
            idempotency,
            idempotency_settings: config.idempotency,
            degraded: previous.map_or_else(
                || {
                    Arc::new(DegradedCache::new(
                        DEGRADED_CACHE_CAPACITY,
                        DEGRADED_CACHE_MAX_BYTES,
                    ))
                },
                |old| Arc::clone(&old.degraded),
            ),
            models,
            engine,
            store_health,
            libraries,
            sampling,
            shared_health,
            few_shot_embeddings: config.quality.few_shot_embeddings.clone(),
            alerts: previous.map_or_else(
                || Arc::new(holdfast_alerts::Alerting::new(config.alerts.clone())),
                |old| Arc::clone(&old.alerts),
            ),
            ids: previous.map_or_else(|| Arc::new(RequestIds::new()), |old| Arc::clone(&old.ids)),
            clock,
        })
    }

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

    /// Takes over what the running state's registry learned (see
    /// [`Registry::inherit_health`]), as the last thing before this state replaces
    /// `old` (`live.rs`), so that little is learned in between and a build that is
    /// dropped changes nothing: a target keeps its health when it is still the same
    /// deployment (format, base URL, model and key) with the same settings. The
    /// breaker gauges then show the states taken over.
    pub(crate) fn take_over_health(&self, old: &Inner) {
        let same_place = |name: &str| {
            let new = self.targets.iter().find(|t| &*t.name == name);
            let was = old.targets.iter().find(|t| &*t.name == name);
            match (new, was) {
                (Some(new), Some(was)) => {
                    let (a, b) = (&new.endpoint, &was.endpoint);
                    a.format == b.format
                        && a.base_url == b.base_url
                        && a.model == b.model
                        && a.api_key == b.api_key
                }
                _ => false,
            }
        };
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        {
            let old_registry = old.registry.lock().unwrap_or_else(|e| e.into_inner());
            registry.inherit_health(&old_registry, same_place);
        }
        for (index, health) in registry.targets().iter().enumerate() {
            let state = health.breaker.as_ref().map_or(State::Closed, |b| b.state());
            self.metrics.breaker_state(index, state);
        }
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
            silence: Mutex::new(
                silence::Estimate::new(silence::Config::default(), now).map_err(invalid)?,
            ),
            probe: target.probe,
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
            few_shot: route.few_shot.clone(),
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

/// Request ids: 128 random bits each, so that an id tells nothing of another (a caller
/// cannot guess its way to someone's ledger entry), and unique however many processes
/// run, so that they also serve as idempotency keys sent to providers.
struct RequestIds {
    /// Mixes a counter into ids when the operating system's randomness fails (it
    /// practically never does), with a key drawn at start: unpredictable still.
    fallback: std::collections::hash_map::RandomState,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            fallback: std::collections::hash_map::RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> (Arc<str>, u64) {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            use std::hash::BuildHasher;
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let high = self.fallback.hash_one((n, 0u8));
            let low = self.fallback.hash_one((n, 1u8));
            bytes[..8].copy_from_slice(&high.to_le_bytes());
            bytes[8..].copy_from_slice(&low.to_le_bytes());
        }
        let bits = u128::from_le_bytes(bytes);
        let id = format!("req_{bits:032x}");
        // The jitter of this request's call: drawn from the same bits.
        (Arc::from(id), bits as u64 ^ (bits >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_128_random_bits_and_never_repeat() {
        let ids = RequestIds::new();
        let drawn: std::collections::HashSet<Arc<str>> =
            (0..10_000).map(|_| ids.next().0).collect();
        assert_eq!(drawn.len(), 10_000);
        for id in drawn.iter().take(100) {
            let hex = id.strip_prefix("req_").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        // Random bits: each of the 128 positions is set in about half the ids.
        let ones = |bit: u32| {
            drawn
                .iter()
                .filter(|id| {
                    let v = u128::from_str_radix(&id[4..], 16).unwrap();
                    v >> bit & 1 == 1
                })
                .count()
        };
        for bit in [0, 31, 63, 64, 100, 127] {
            let share = ones(bit) as f64 / drawn.len() as f64;
            assert!((0.45..0.55).contains(&share), "bit {bit}: {share}");
        }
    }
}
