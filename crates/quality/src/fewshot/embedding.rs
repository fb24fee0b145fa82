//! Similarity by embeddings: a library may find a call's examples by the cosine of
//! vectors an embedding route gives, instead of the built-in lexical index.
//!
//! The decision that shapes it: embeddings are an improvement, never a dependency.
//! Every active example stays in the lexical index whatever happens; an example is
//! embedded after it becomes active (in the refresh that brings it, its vector kept in
//! the store so a restarted node reads it instead of asking again), and a call's input
//! is embedded when the call is made, unless the tenant's library holds no vector yet
//! (nothing to compare it with): then the call is served from the lexical index without
//! asking, and counted. When the embedding route fails, the call is served from the
//! lexical index, logged and counted, and examples not yet embedded are tried again a
//! few refreshes later. Examples not yet embedded are not retrieved by embeddings.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use holdfast_store::ExampleVector;

use super::library::Libraries;
use super::{Mode, Shot};

/// Examples embedded per library in one refresh; the others wait for the next.
const PER_REFRESH: usize = 256;
/// Texts per embedding request.
const BATCH: usize = 64;
/// Refreshes a library waits after a failed embedding request before it asks again
/// (about 5 s at the server's 250 ms).
const WAIT_AFTER_FAILURE: u32 = 20;

/// How a library finds the examples similar to a call's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Similarity {
    /// BM25 over the words of the inputs (built in).
    #[default]
    Lexical,
    /// Cosine of the vectors that `route` (an embedding route) gives.
    Embeddings {
        /// The route that embeds the examples and the calls' inputs.
        route: String,
    },
}

/// Embeds texts through an embedding route: the gateway, in a server.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The vectors of `texts`, in order, embedded through `route` for `tenant`, or why
    /// not (a message fit for a log: no secret).
    async fn embed(
        &self,
        tenant: &str,
        route: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, String>;
}

/// One library's example vectors (unit length) under one route.
#[derive(Debug, Default)]
pub(crate) struct Vectors {
    /// The route that embedded them.
    route: Option<String>,
    by_id: BTreeMap<u64, Box<[f32]>>,
    /// Active examples without a vector yet.
    pending: BTreeSet<u64>,
    /// Refreshes to wait before embedding again, after a failure.
    pub(crate) wait: u32,
}

impl Vectors {
    /// An example became active: it needs a vector unless it has one.
    pub(crate) fn activate(&mut self, id: u64) {
        if !self.by_id.contains_key(&id) {
            self.pending.insert(id);
        }
    }

    /// An example is no longer active.
    pub(crate) fn remove(&mut self, id: u64) {
        self.by_id.remove(&id);
        self.pending.remove(&id);
    }

    /// Embeds under `route` from now on: vectors of another route are dropped and their
    /// examples wait for new ones.
    pub(crate) fn use_route(&mut self, route: &str) {
        if self.route.as_deref() != Some(route) {
            let ids = std::mem::take(&mut self.by_id).into_keys();
            self.pending.extend(ids);
            self.route = Some(route.to_owned());
            self.wait = 0;
        }
    }

    /// Whether any example holds a vector from `route`: with none, a call's vector
    /// would be compared with nothing.
    pub(crate) fn any(&self, route: &str) -> bool {
        self.route.as_deref() == Some(route) && !self.by_id.is_empty()
    }

    /// Up to `limit` examples waiting for a vector.
    pub(crate) fn pending(&self, limit: usize) -> Vec<u64> {
        self.pending.iter().take(limit).copied().collect()
    }

    /// Keeps `vector` for `id`, if it still waits for one from `route`.
    pub(crate) fn insert(&mut self, route: &str, id: u64, mut vector: Vec<f32>) {
        if self.route.as_deref() != Some(route) || !self.pending.remove(&id) {
            return;
        }
        unit(&mut vector);
        self.by_id.insert(id, vector.into_boxed_slice());
    }

    /// Up to `k` example ids by falling cosine with `query` (ties by older id), only
    /// those with a positive cosine.
    pub(crate) fn nearest(&self, query: &[f32], k: usize) -> Vec<u64> {
        let mut query = query.to_vec();
        unit(&mut query);
        let mut ranked: Vec<(f32, u64)> = self
            .by_id
            .iter()
            .filter(|(_, v)| v.len() == query.len())
            .map(|(id, v)| (v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>(), *id))
            .filter(|(cosine, _)| *cosine > 0.0)
            .collect();
        let better = |a: &(f32, u64), b: &(f32, u64)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        };
        if ranked.len() > k && k > 0 {
            ranked.select_nth_unstable_by(k - 1, better);
        }
        ranked.truncate(k);
        ranked.sort_unstable_by(better);
        ranked.into_iter().map(|(_, id)| id).collect()
    }
}

/// A library's examples to embed: its tenant, name, route, and (id, input) pairs.
type Work = (String, String, String, Vec<(u64, String)>);

impl Libraries {
    /// Sets how each library finds similar examples (a library not named is lexical).
    pub fn configure(&self, similarity: HashMap<String, Similarity>) {
        *self
            .similarity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = similarity;
    }

    /// Sets what embeds texts, once (a second is ignored).
    pub fn set_embedder(&self, embedder: Arc<dyn Embedder>) {
        let _ = self.embedder.set(embedder);
    }

    fn embedding_route(&self, library: &str) -> Option<String> {
        let similarity = self
            .similarity
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match similarity.get(library)? {
            Similarity::Embeddings { route } => Some(route.clone()),
            Similarity::Lexical => None,
        }
    }

    /// Up to `k` examples for a call, as [`Libraries::retrieve`] gives them, except that
    /// a library using embeddings finds `Similar` ones by the cosine of the vector of
    /// `query`. When `tenant`'s library holds no vector yet, `query` is not embedded
    /// (there is nothing to compare it with) and the examples come from the lexical
    /// index, counted; when the vector cannot be had they come from there too, and the
    /// fallback is logged and counted. Never fails the call.
    pub async fn retrieve_for(
        &self,
        tenant: &str,
        library: &str,
        query: &str,
        k: usize,
        mode: Mode,
        now_ms: u64,
    ) -> Vec<Arc<Shot>> {
        let route = match mode {
            Mode::Similar if !query.trim().is_empty() => self.embedding_route(library),
            Mode::Similar | Mode::Fixed => None,
        };
        let (Some(route), Some(embedder)) = (route, self.embedder.get()) else {
            return self.retrieve(tenant, library, query, k, mode, now_ms);
        };
        if !self.has_vectors(tenant, library, &route) {
            self.add_counts(library, |c| c.embedding_no_vectors += 1);
            return self.retrieve(tenant, library, query, k, mode, now_ms);
        }
        let why = match embedder.embed(tenant, &route, vec![query.to_owned()]).await {
            Ok(vectors) if vectors.len() == 1 => {
                let mut shots = self.nearest(tenant, library, &vectors[0], k);
                shots.reverse();
                self.count(tenant, library, &shots, now_ms);
                return shots;
            }
            Ok(vectors) => format!("{} vectors for one input", vectors.len()),
            Err(why) => why,
        };
        tracing::warn!(library, route = %route, error = %why,
            "a call's input could not be embedded; its examples come from the lexical index");
        self.add_counts(library, |c| c.embedding_failed += 1);
        self.retrieve(tenant, library, query, k, mode, now_ms)
    }

    fn has_vectors(&self, tenant: &str, library: &str, route: &str) -> bool {
        let held = self.read();
        (held.libraries.get(&(tenant.to_owned(), library.to_owned())))
            .is_some_and(|lib| lib.vectors.any(route))
    }

    fn nearest(&self, tenant: &str, library: &str, vector: &[f32], k: usize) -> Vec<Arc<Shot>> {
        let held = self.read();
        let Some(lib) = held.libraries.get(&(tenant.to_owned(), library.to_owned())) else {
            return Vec::new();
        };
        let ids = lib.vectors.nearest(vector, k);
        ids.into_iter().filter_map(|id| lib.index.get(id)).collect()
    }

    /// Gives each library using embeddings the vectors its active examples miss: the
    /// store's when it has them, else the embedding route's (then kept in the store).
    pub(super) async fn embed_pending(&self) {
        let Some(embedder) = self.embedder.get().cloned() else {
            return;
        };
        let similarity = self
            .similarity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut work: Vec<Work> = Vec::new();
        {
            let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
            for ((tenant, library), lib) in &mut held.libraries {
                let Some(Similarity::Embeddings { route }) = similarity.get(library) else {
                    continue;
                };
                lib.vectors.use_route(route);
                if lib.vectors.wait > 0 {
                    lib.vectors.wait -= 1;
                    continue;
                }
                let items: Vec<(u64, String)> = (lib.vectors.pending(PER_REFRESH).into_iter())
                    .filter_map(|id| lib.index.get(id).map(|shot| (id, shot.input.clone())))
                    .collect();
                if !items.is_empty() {
                    work.push((tenant.clone(), library.clone(), route.clone(), items));
                }
            }
        }
        for (tenant, library, route, items) in work {
            let (found, failed) = self
                .vectors_for(&*embedder, &tenant, &library, &route, items)
                .await;
            let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(lib) = held.libraries.get_mut(&(tenant, library)) {
                for (id, vector) in found {
                    lib.vectors.insert(&route, id, vector);
                }
                if failed {
                    lib.vectors.wait = WAIT_AFTER_FAILURE;
                }
            }
        }
    }

    /// The vectors of `items` (the store's, then the embedder's for the rest, which are
    /// kept in the store), and whether the embedder failed.
    async fn vectors_for(
        &self,
        embedder: &dyn Embedder,
        tenant: &str,
        library: &str,
        route: &str,
        items: Vec<(u64, String)>,
    ) -> (Vec<(u64, Vec<f32>)>, bool) {
        let ids = items.iter().map(|(id, _)| *id).collect();
        let mut found: Vec<(u64, Vec<f32>)> =
            match self.store.example_vectors(tenant, route, ids).await {
                Ok(stored) => stored.into_iter().map(|v| (v.id, v.vector)).collect(),
                Err(e) => {
                    tracing::warn!(library, error = %e, "stored example vectors could not be read");
                    Vec::new()
                }
            };
        let have: HashSet<u64> = found.iter().map(|(id, _)| *id).collect();
        let missing: Vec<(u64, String)> = items
            .into_iter()
            .filter(|(id, _)| !have.contains(id))
            .collect();
        let (mut fresh, mut failed) = (Vec::new(), false);
        for batch in missing.chunks(BATCH) {
            let texts = batch.iter().map(|(_, text)| text.clone()).collect();
            let why = match embedder.embed(tenant, route, texts).await {
                Ok(vectors) if vectors.len() == batch.len() => {
                    fresh.extend(batch.iter().map(|(id, _)| *id).zip(vectors));
                    continue;
                }
                Ok(vectors) => format!("{} vectors for {} inputs", vectors.len(), batch.len()),
                Err(why) => why,
            };
            tracing::warn!(library, route, error = %why,
                "examples could not be embedded; they are tried again in a few seconds");
            self.add_counts(library, |c| c.embedding_failures += 1);
            failed = true;
            break;
        }
        let keep: Vec<ExampleVector> = (fresh.iter())
            .map(|(id, vector)| ExampleVector {
                tenant: tenant.to_owned(),
                id: *id,
                model: route.to_owned(),
                vector: vector.clone(),
            })
            .collect();
        if let Err(e) = self.store.put_example_vectors(keep).await {
            tracing::warn!(library, error = %e, "example vectors could not be kept in the store");
        }
        found.extend(fresh);
        (found, failed)
    }
}

/// Scales `vector` to length 1 (a zero vector stays zero: it is near nothing).
fn unit(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_by_cosine_among_embedded_examples_of_the_current_route() {
        let mut v = Vectors::default();
        v.use_route("embed");
        for id in [1, 2, 3, 4] {
            v.activate(id);
        }
        v.insert("embed", 1, vec![1.0, 0.0]);
        v.insert("embed", 2, vec![3.0, 3.0]);
        v.insert("embed", 3, vec![-1.0, 0.0]);
        v.insert("other", 4, vec![1.0, 0.0]);
        assert_eq!(v.pending(10), [4]);
        assert!(v.any("embed") && !v.any("other"));
        assert_eq!(v.nearest(&[2.0, 0.1], 4), [1, 2]);
        assert_eq!(v.nearest(&[0.0, 1.0], 1), [2]);
        v.remove(2);
        assert_eq!(v.nearest(&[0.0, 1.0], 4), Vec::<u64>::new());
        v.use_route("other");
        assert_eq!(v.pending(10), [1, 3, 4]);
        assert!(v.nearest(&[1.0, 0.0], 4).is_empty());
        assert!(!v.any("other"));
    }
}
