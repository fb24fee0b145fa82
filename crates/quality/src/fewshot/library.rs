//! Every tenant's libraries in memory, kept up to date from the store, and what
//! retrieval counts.
//!
//! The decision that shapes it: the store is the truth and this is a cache of its
//! active examples that catches up by revision ([`Libraries::refresh`]), which a node
//! calls on a short timer and right after a change it made itself. So an approval on
//! any node is retrieved everywhere within the timer's period, and a node restarted
//! reads its libraries whole. Retrieval itself never waits on the store: it reads the
//! index under a read lock and counts the examples it used in memory; the counts reach
//! the store in one write now and then ([`Libraries::flush_uses`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use holdfast_store::{Example, ExampleStatus, ExampleUse, Store, StoreError};

use super::embedding::{Embedder, Similarity, Vectors};
use super::index::Index;
use super::{Mode, Shot};

/// How many changes one read of the store returns.
const PAGE: u32 = 1000;

/// A library as the cache holds it.
#[derive(Debug, Default)]
pub(super) struct Library {
    pub(super) index: Index,
    /// Its vectors, when it is (or was) configured for embeddings.
    pub(super) vectors: Vectors,
    /// Every example's status, to count candidates and retired ones.
    statuses: HashMap<u64, ExampleStatus>,
}

/// What the cache holds: libraries by (tenant, library), and the revision it caught up to.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub(super) libraries: HashMap<(String, String), Library>,
    revision: u64,
}

/// Retrieval counts of one library (every tenant's together: metrics name no tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls that got at least one example.
    pub hits: u64,
    /// Calls that got none (an empty library, or no example sharing a word).
    pub misses: u64,
    /// Examples inserted into calls.
    pub examples_used: u64,
    /// Calls people said were right.
    pub feedback_good: u64,
    /// Calls people said were wrong.
    pub feedback_bad: u64,
    /// Calls of an embeddings library served from the lexical index because their
    /// input could not be embedded.
    pub embedding_failed: u64,
    /// Calls of an embeddings library served from the lexical index, their input not
    /// embedded, because the tenant's library held no vector yet.
    pub embedding_no_vectors: u64,
    /// Embedding requests for a library's examples that failed.
    pub embedding_failures: u64,
}

/// How many examples a library holds, by status (every tenant's together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Size {
    /// Approved, retrieved.
    pub active: u64,
    /// Waiting for a reviewer.
    pub candidate: u64,
    /// Taken out.
    pub retired: u64,
}

/// Every library of every tenant, searchable in memory.
pub struct Libraries {
    pub(super) store: Arc<dyn Store>,
    pub(super) held: RwLock<Held>,
    /// Each library's similarity, by name (lexical when not named).
    pub(super) similarity: RwLock<HashMap<String, Similarity>>,
    pub(super) embedder: OnceLock<Arc<dyn Embedder>>,
    /// One refresh at a time, so two cannot apply the same changes out of order.
    refreshing: tokio::sync::Mutex<()>,
    uses: Mutex<HashMap<(String, u64), (u64, u64)>>,
    counts: Mutex<HashMap<String, Counts>>,
}

impl std::fmt::Debug for Libraries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libraries")
            .field("revision", &self.read().revision)
            .finish_non_exhaustive()
    }
}

impl Libraries {
    /// An empty cache of `store`'s libraries; call [`Libraries::refresh`] to fill it.
    pub fn new(store: Arc<dyn Store>) -> Libraries {
        Libraries {
            store,
            held: RwLock::new(Held::default()),
            similarity: RwLock::new(HashMap::new()),
            embedder: OnceLock::new(),
            refreshing: tokio::sync::Mutex::new(()),
            uses: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The store the libraries live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Applies every change stored since the last refresh, then embeds what libraries
    /// using embeddings are missing; returns how many changes.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let _one = self.refreshing.lock().await;
        let applied = self.catch_up().await;
        self.embed_pending().await;
        applied
    }

    async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut applied = 0;
        loop {
            let after = self.read().revision;
            let changes = self.store.example_changes(after, PAGE).await?;
            let Some(last) = changes.last().map(|e| e.revision) else {
                return Ok(applied);
            };
            applied += changes.len();
            let full = changes.len() == PAGE as usize;
            let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
            for example in changes {
                apply(&mut held, example);
            }
            held.revision = last;
            if !full {
                return Ok(applied);
            }
        }
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `k` active examples of `tenant`'s `library` for a call whose input is
    /// `query`: the most similar last, nearest the call's own input (`Similar`), or the
    /// same oldest ones every time (`Fixed`). Counts the call and the examples' use.
    pub fn retrieve(
        &self,
        tenant: &str,
        library: &str,
        query: &str,
        k: usize,
        mode: Mode,
        now_ms: u64,
    ) -> Vec<Arc<Shot>> {
        let mut shots = {
            let held = self.read();
            match held.libraries.get(&(tenant.to_owned(), library.to_owned())) {
                None => Vec::new(),
                Some(lib) => match mode {
                    Mode::Similar => lib.index.similar(query, k),
                    Mode::Fixed => lib.index.first(k),
                },
            }
        };
        shots.reverse();
        self.count(tenant, library, &shots, now_ms);
        shots
    }

    pub(super) fn count(&self, tenant: &str, library: &str, shots: &[Arc<Shot>], now_ms: u64) {
        {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let c = counts.entry(library.to_owned()).or_default();
            if shots.is_empty() {
                c.misses += 1;
            } else {
                c.hits += 1;
                c.examples_used += shots.len() as u64;
            }
        }
        if shots.is_empty() {
            return;
        }
        let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        for shot in shots {
            let used = uses.entry((tenant.to_owned(), shot.id)).or_default();
            used.0 += 1;
            used.1 = used.1.max(now_ms);
        }
    }

    /// Adds to `library`'s counts.
    pub(super) fn add_counts(&self, library: &str, add: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        add(counts.entry(library.to_owned()).or_default());
    }

    /// Counts a person's verdict on a call of `library`.
    pub fn record_feedback(&self, library: &str, good: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let c = counts.entry(library.to_owned()).or_default();
        if good {
            c.feedback_good += 1;
        } else {
            c.feedback_bad += 1;
        }
    }

    /// Writes the usage counts gathered since the last flush; on failure they are kept
    /// for the next one.
    pub async fn flush_uses(&self) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.uses.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(());
        }
        let batch: Vec<ExampleUse> = taken
            .iter()
            .map(|((tenant, id), (calls, at))| ExampleUse {
                tenant: tenant.clone(),
                id: *id,
                calls: *calls,
                last_used_at_ms: *at,
            })
            .collect();
        if let Err(e) = self.store.record_example_uses(batch).await {
            let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, (calls, at)) in taken {
                let used = uses.entry(key).or_default();
                used.0 += calls;
                used.1 = used.1.max(at);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Retrieval counts per library.
    pub fn counts(&self) -> Vec<(String, Counts)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = counts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Examples per library and status.
    pub fn sizes(&self) -> Vec<(String, Size)> {
        let held = self.read();
        let mut sizes: HashMap<&str, Size> = HashMap::new();
        for ((_, library), lib) in &held.libraries {
            let size = sizes.entry(library.as_str()).or_default();
            for status in lib.statuses.values() {
                match status {
                    ExampleStatus::Active => size.active += 1,
                    ExampleStatus::Candidate => size.candidate += 1,
                    ExampleStatus::Retired => size.retired += 1,
                }
            }
        }
        let mut all: Vec<_> = sizes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

fn apply(held: &mut Held, example: Example) {
    let lib = held
        .libraries
        .entry((example.tenant, example.library))
        .or_default();
    lib.statuses.insert(example.id, example.status);
    match example.status {
        ExampleStatus::Active => {
            lib.vectors.activate(example.id);
            lib.index.insert(Arc::new(Shot {
                id: example.id,
                input: example.input,
                output: example.output,
            }));
        }
        ExampleStatus::Candidate | ExampleStatus::Retired => {
            lib.vectors.remove(example.id);
            lib.index.remove(example.id);
        }
    }
}
