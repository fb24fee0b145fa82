//! The built-in lexical index: BM25 over the words of each active example's input.
//!
//! The decision that shapes it: retrieval is on the path of every call of a route that
//! uses a library, so it is an in-memory inverted index searched without I/O or
//! allocation proportional to the words of the library, only to the examples a query's
//! words reach. Words found in more than a twentieth of a large library say little
//! (their BM25 weight is a fraction of a rare word's) and are skipped, which bounds the
//! work of a query by its rarer words. Removing an example leaves a tombstone in the postings; the index is rebuilt
//! when tombstones outnumber live examples, so removal is O(1) and memory stays bounded.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Shot;
use super::text::words;

/// A word is skipped when more examples than this (or than a twentieth of the library,
/// if more) hold it: a library of a few examples has no word common enough to ignore.
const COMMON_FROM: usize = 64;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;

/// A query's score per slot, reused by every query on a thread so that a query costs
/// the examples its words reach, not an allocation the size of the library.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One library's active examples, searchable.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Examples by slot; `None` is a tombstone.
    slots: Vec<Option<Entry>>,
    /// Example id → slot, in id order (the `fixed` mode takes the first k).
    by_id: BTreeMap<u64, u32>,
    /// Word → (slot, occurrences), slots ascending.
    postings: HashMap<String, Vec<(u32, u32)>>,
    /// The sum of live examples' lengths in words.
    total_words: u64,
}

#[derive(Debug)]
struct Entry {
    shot: Arc<Shot>,
    words: u32,
}

impl Index {
    /// How many examples it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds (or replaces) an example.
    pub(crate) fn insert(&mut self, shot: Arc<Shot>) {
        self.remove(shot.id);
        let Ok(slot) = u32::try_from(self.slots.len()) else {
            return;
        };
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut length = 0u32;
        for word in words(&shot.input) {
            *counts.entry(word).or_default() += 1;
            length = length.saturating_add(1);
        }
        for (word, n) in counts {
            self.postings.entry(word).or_default().push((slot, n));
        }
        self.total_words += u64::from(length);
        self.by_id.insert(shot.id, slot);
        self.slots.push(Some(Entry {
            shot,
            words: length,
        }));
    }

    /// Removes an example, if held.
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.total_words -= u64::from(entry.words);
        }
        if self.slots.len() > 1024 && self.slots.len() > 2 * self.by_id.len() {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        let live: Vec<Arc<Shot>> = self
            .slots
            .drain(..)
            .flatten()
            .map(|entry| entry.shot)
            .collect();
        *self = Index::default();
        for shot in live {
            self.insert(shot);
        }
    }

    /// The first `k` examples by id: the same ones for every call.
    pub(crate) fn first(&self, k: usize) -> Vec<Arc<Shot>> {
        self.by_id
            .values()
            .filter_map(|slot| self.entry(*slot))
            .take(k)
            .map(|entry| entry.shot.clone())
            .collect()
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Up to `k` examples whose inputs share words with `query`, most similar first
    /// (ties by older id); examples sharing no word are not returned.
    pub(crate) fn similar(&self, query: &str, k: usize) -> Vec<Arc<Shot>> {
        let live = self.by_id.len();
        if live == 0 || k == 0 {
            return Vec::new();
        }
        let n = live as f32;
        let average = (self.total_words as f32 / n).max(1.0);
        // A word in more than a twentieth of a large library weighs at most ln 21 ≈ 3
        // against ≈ 11 for a word in a handful of 100,000: skipping it changes little of
        // the ranking and bounds a query's work by the examples its rarer words reach.
        let common = (n / 20.0).max(COMMON_FROM as f32);
        let mut terms: Vec<String> = words(query).collect();
        terms.sort_unstable();
        terms.dedup();
        let ranked = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch { scores, touched } = &mut *scratch;
            if scores.len() < self.slots.len() {
                scores.resize(self.slots.len(), 0.0);
            }
            for term in &terms {
                let Some(postings) = self.postings.get(term) else {
                    continue;
                };
                let df = postings.len() as f32;
                if df > common {
                    continue;
                }
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                for &(slot, tf) in postings {
                    let Some(entry) = self.entry(slot) else {
                        continue;
                    };
                    let tf = tf as f32;
                    let norm = K1 * (1.0 - B + B * entry.words as f32 / average);
                    let score = &mut scores[slot as usize];
                    if *score == 0.0 {
                        touched.push(slot);
                    }
                    *score += idf * tf * (K1 + 1.0) / (tf + norm);
                }
            }
            let ranked: Vec<(f32, u64, u32)> = touched
                .drain(..)
                .filter_map(|slot| {
                    let score = std::mem::take(&mut scores[slot as usize]);
                    self.entry(slot).map(|e| (score, e.shot.id, slot))
                })
                .collect();
            ranked
        });
        let mut ranked = ranked;
        let better = |a: &(f32, u64, u32), b: &(f32, u64, u32)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        };
        if ranked.len() > k {
            ranked.select_nth_unstable_by(k - 1, better);
            ranked.truncate(k);
        }
        ranked.sort_unstable_by(better);
        ranked
            .into_iter()
            .filter_map(|(_, _, slot)| self.entry(slot).map(|e| e.shot.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(id: u64, input: &str) -> Arc<Shot> {
        Arc::new(Shot {
            id,
            input: input.into(),
            output: format!("out-{id}"),
        })
    }

    fn ids(shots: &[Arc<Shot>]) -> Vec<u64> {
        shots.iter().map(|s| s.id).collect()
    }

    fn index() -> Index {
        let mut index = Index::default();
        index.insert(shot(1, "my invoice was charged twice"));
        index.insert(shot(2, "how do I reset my password"));
        index.insert(shot(3, "the invoice PDF does not open"));
        index.insert(shot(4, "cancel my subscription today"));
        index
    }

    #[test]
    fn the_most_similar_input_comes_first() {
        let index = index();
        assert_eq!(
            ids(&index.similar("charged twice on my invoice", 2)),
            [1, 3]
        );
        assert_eq!(ids(&index.similar("password reset", 4)), [2]);
        assert!(index.similar("bonjour", 4).is_empty());
    }

    #[test]
    fn fixed_takes_the_oldest_examples() {
        let mut index = index();
        index.remove(1);
        assert_eq!(ids(&index.first(2)), [2, 3]);
    }

    #[test]
    fn a_removed_example_is_never_returned_even_after_a_rebuild() {
        let mut index = Index::default();
        for id in 0..3000 {
            index.insert(shot(id, &format!("ticket number {id} about refunds")));
        }
        for id in 0..2000 {
            index.remove(id);
        }
        assert_eq!(index.len(), 1000);
        assert!(index.slots.len() < 3000, "rebuilt");
        assert_eq!(ids(&index.similar("ticket 17", 3)), Vec::<u64>::new());
        assert_eq!(ids(&index.similar("ticket 2017", 3)), [2017]);
        // Replacing an example keeps one copy of it.
        index.insert(shot(2017, "a new text"));
        assert_eq!(index.len(), 1000);
        assert_eq!(ids(&index.similar("new text", 3)), [2017]);
    }
}
