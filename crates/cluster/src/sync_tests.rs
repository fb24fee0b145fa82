//! Two nodes' loops on one store (SQLite: the exchange is the same on both backends,
//! as the store's conformance suite checks), driven round by round on a manual clock.

use std::sync::Mutex;
use std::time::Duration;

use holdfast_policy::ManualClock;
use holdfast_policy::breaker::{self, Reason, State, Transition};
use holdfast_policy::pipeline::{Settings, TargetSettings};
use holdfast_policy::rate_limit::{self, Decision, RateLimiter};

use super::*;

#[derive(Default)]
struct Node {
    registry: Mutex<Option<Registry>>,
    moved: Mutex<Vec<Transition>>,
    /// One client key's request limit.
    key: Mutex<Option<RateLimiter>>,
}

impl Host for Arc<Node> {
    fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(self.registry.lock().unwrap().as_mut().unwrap())
    }

    fn breaker_moved(&self, _: TargetId, transition: &Transition) {
        self.moved.lock().unwrap().push(*transition);
    }

    fn with_key_limits(&self, f: &mut dyn FnMut(&str, &'static str, &mut RateLimiter)) {
        if let Some(limiter) = self.key.lock().unwrap().as_mut() {
            // Named like the target: a key's bucket must not be the target's.
            f("t", "requests", limiter);
        }
    }
}

/// A manual clock whose sleeps never end: the exchange's bounded wait must not end
/// (and move the clock) before a store that answers in real time has answered.
struct Patient(ManualClock);

impl Clock for Patient {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep_until(&self, _: Instant) -> holdfast_policy::clock::Sleep {
        Box::pin(std::future::pending())
    }

    fn unix_millis(&self) -> u64 {
        self.0.unix_millis()
    }
}

struct Cluster {
    clock: Arc<ManualClock>,
    nodes: Vec<(Arc<Node>, Loop<Arc<Node>>)>,
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn cluster(label: &str, nodes: usize) -> Cluster {
    let dir = std::env::temp_dir().join(format!("holdfast-cluster-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = holdfast_store::open(&format!("sqlite://{}/store.db", dir.display()))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new());
    clock.advance(Duration::from_secs(1));
    let nodes = (0..nodes)
        .map(|i| {
            let mut registry = Registry::new(Settings::default()).unwrap();
            registry.share_limits(TICK);
            let settings = TargetSettings {
                breaker: Some(breaker::Config::default()),
                requests: Some(rate_limit::Config::per_minute(600)),
                ..TargetSettings::default()
            };
            registry.add_target("t", settings, clock.now()).unwrap();
            let mut key =
                RateLimiter::new(rate_limit::Config::per_minute(300), clock.now()).unwrap();
            // As the gateway builds it when health is shared: nothing earned locally.
            key.share(TICK);
            let node = Arc::new(Node {
                registry: Mutex::new(Some(registry)),
                moved: Mutex::default(),
                key: Mutex::new(Some(key)),
            });
            let clock: Arc<dyn Clock> = Arc::new(Patient((*clock).clone()));
            let health = SharedHealth::new(format!("node-{i}"));
            let state = Loop::new(health, Arc::clone(&node), Arc::clone(&store), clock);
            (node, state)
        })
        .collect();
    Cluster { clock, nodes, dir }
}

impl Cluster {
    /// One round on every node, then a tick.
    async fn round(&mut self) {
        for (_, state) in &mut self.nodes {
            state.round().await;
        }
        self.clock.advance(TICK);
    }
}

/// Spends every unit the node's target limit holds, then asks for `waiting` more
/// (refused): the calls waiting at that node. Returns the units spent.
fn spend(node: &Node, now: Instant, waiting: u64) -> u64 {
    node.with_registry_for_test(|registry| {
        let limiter = registry
            .target_mut(TargetId(0))
            .unwrap()
            .requests
            .as_mut()
            .unwrap();
        drain(limiter, now, waiting)
    })
}

/// As [`spend`], on the node's client key limit.
fn spend_key(node: &Node, now: Instant, waiting: u64) -> u64 {
    drain(node.key.lock().unwrap().as_mut().unwrap(), now, waiting)
}

fn drain(limiter: &mut RateLimiter, now: Instant, waiting: u64) -> u64 {
    let mut spent = 0;
    while limiter.try_acquire(now, 1) == Decision::Granted {
        spent += 1;
    }
    for _ in 0..waiting {
        assert!(matches!(limiter.try_acquire(now, 1), Decision::Wait(_)));
    }
    spent
}

impl Node {
    fn with_registry_for_test<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(self.registry.lock().unwrap().as_mut().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_spend_no_more_than_the_shared_limit() {
    let mut c = cluster("limit", 2).await;
    let mut spent = [0u64; 2];
    // 60 s of rounds with calls always waiting at both nodes.
    for _ in 0..1_200 {
        for (i, (node, _)) in c.nodes.iter().enumerate() {
            spent[i] += spend(node, c.clock.now(), 4);
        }
        c.round().await;
    }
    let total: u64 = spent.iter().sum();
    // The full bucket (600) and what 60 s refill (600), less what the last round
    // granted and nobody spent yet.
    assert!((1_195..=1_200).contains(&total), "{spent:?}");
    assert!(
        spent.iter().all(|s| *s > 250),
        "both nodes were served: {spent:?}"
    );
    assert!(c.nodes.iter().all(|(_, state)| state.health.is_up()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_spend_no_more_than_a_client_keys_shared_limit() {
    let mut c = cluster("key-limit", 2).await;
    let (mut key, mut target) = ([0u64; 2], [0u64; 2]);
    // 60 s of rounds with calls always waiting at both nodes, on the key and the target.
    for _ in 0..1_200 {
        for (i, (node, _)) in c.nodes.iter().enumerate() {
            key[i] += spend_key(node, c.clock.now(), 4);
            target[i] += spend(node, c.clock.now(), 4);
        }
        c.round().await;
    }
    let total: u64 = key.iter().sum();
    // The key's full bucket (300) and what 60 s refill (300), less the last grants;
    // each node alone would have spent that much.
    assert!((595..=600).contains(&total), "{key:?}");
    assert!(
        key.iter().all(|s| *s > 100),
        "both nodes were served: {key:?}"
    );
    let target: u64 = target.iter().sum();
    assert!(
        (1_195..=1_200).contains(&target),
        "the target of the same name has its own bucket: {target}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_gives_a_client_key_its_own_limit_back() {
    let mut c = cluster("key-fallback", 1).await;
    for _ in 0..4 {
        c.round().await;
    }
    let node = Arc::clone(&c.nodes[0].0);
    assert!(node.key.lock().unwrap().as_ref().unwrap().is_shared());
    let out = Outgoing::default();
    c.nodes[0].1.fall_back(out, "test: the store is gone");
    let key = node.key.lock().unwrap();
    assert!(
        !key.as_ref().unwrap().is_shared(),
        "refills on its own again"
    );
}

/// Rounds until `b` has seen `moves` breaker moves; answers how many rounds it took.
async fn rounds_until_moved(c: &mut Cluster, b: &Node, moves: usize) -> u32 {
    let mut rounds = 0;
    while b.moved.lock().unwrap().len() < moves {
        c.round().await;
        rounds += 1;
        assert!(rounds <= 20, "no move after 1 s of rounds");
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_and_a_reset_reach_the_other_node_within_a_notes_interval() {
    let mut c = cluster("breaker", 2).await;
    c.round().await;
    let now = c.clock.now();
    let until = now + Duration::from_secs(30);
    let (a, b) = (Arc::clone(&c.nodes[0].0), Arc::clone(&c.nodes[1].0));
    // Node A's breaker opens (as if its own calls had tripped it).
    a.with_registry_for_test(|r| r.open_elsewhere(TargetId(0), now, until).unwrap());
    let most = (NOTES_EVERY.as_millis() / TICK.as_millis()) as u32 + 1;
    let rounds = rounds_until_moved(&mut c, &b, 1).await;
    assert!(rounds <= most, "{rounds} rounds");
    let moved = b.moved.lock().unwrap().clone();
    assert_eq!(
        (moved[0].to, moved[0].reason),
        (State::Open, Reason::OpenedElsewhere)
    );
    let open_until = b.with_registry_for_test(|r| {
        r.target(TargetId(0))
            .unwrap()
            .breaker
            .as_ref()
            .unwrap()
            .open_until()
    });
    assert_eq!(open_until, Some(until), "open until the same instant");
    // B applied it and does not publish it back: A sees nothing new.
    for _ in 0..10 {
        c.round().await;
    }
    assert!(a.moved.lock().unwrap().is_empty());
    // An operator resets it on A.
    a.with_registry_for_test(|r| r.reset(TargetId(0)).unwrap());
    c.nodes[0].1.health.reset("t");
    let rounds = rounds_until_moved(&mut c, &b, 2).await;
    assert!(rounds <= most, "{rounds} rounds");
    let last = *b.moved.lock().unwrap().last().unwrap();
    assert_eq!((last.to, last.reason), (State::Closed, Reason::Reset));
}
