//! The built-in lexical index: BM25 over the words of each active example's input.
//!
//! The decision that shapes it: retrieval is on the path of every call of a route that
//! uses a library, so it is an in-memory inverted index searched without I/O and
//! without allocation proportional to the library: per-slot lengths and ids live in
//! dense arrays (no pointer is followed while scoring), a query's scores live in a
//! per-thread scratch, and the k best are kept in a heap of k. A query reads its rarer
//! words' postings whole and, once k examples are certain to beat any example it has
//! not yet reached (MaxScore: each word's best possible contribution is known), reads
//! its commoner words only for the examples still in the running, by binary search.
//! Words found in more than a twentieth of a large library say little (their BM25
//! weight is a fraction of a rare word's) and are skipped. Removing an example leaves a
//! tombstone in the postings; the index is rebuilt when tombstones outnumber live
//! examples, so removal is O(1) and memory stays bounded.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
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

/// The length of a removed example's slot.
const TOMBSTONE: u32 = u32::MAX;

/// One word in one example: the example's slot, the word's occurrences in it and the
/// example's length in words (both saturating), so that scoring reads the postings in
/// order and touches nothing per example but its score.
#[derive(Debug, Clone, Copy)]
struct Posting {
    slot: u32,
    tf: u16,
    len: u16,
}

/// One word's postings, by slot ascending, and what bounds its contribution to any of
/// them.
#[derive(Debug)]
struct Postings {
    entries: Vec<Posting>,
    /// The most occurrences in one example (an upper bound: removal does not lower it).
    max_tf: u32,
    /// The fewest words of an example holding it (a lower bound, likewise).
    min_len: u32,
}

impl Default for Postings {
    fn default() -> Self {
        Postings {
            entries: Vec::new(),
            max_tf: 0,
            min_len: u32::MAX,
        }
    }
}

/// A query's word, ready to score.
#[derive(Debug, Clone, Copy)]
struct Term<'a> {
    postings: &'a Postings,
    idf: f32,
    /// Its largest possible contribution to one example's score.
    bound: f32,
}

/// A candidate in the top-k heap; the heap's top is the worst kept.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    score: f32,
    id: u64,
    slot: u32,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    /// Better is greater score, then older id; the heap keeps the worst on top, so
    /// "greater" here means worse.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .partial_cmp(&self.score)
            .unwrap_or(Ordering::Equal)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A query's score per slot, the slots it reached and its heap, reused by every query
/// on a thread so that a query costs the examples its words reach, not an allocation
/// the size of the library.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
    heap: BinaryHeap<Ranked>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One library's active examples, searchable.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Examples by slot; `None` is a tombstone.
    shots: Vec<Option<Arc<Shot>>>,
    /// Words per slot, [`TOMBSTONE`] for a removed example.
    lengths: Vec<u32>,
    /// One bit per slot, set while its example is live: 1/32 of `lengths`, so the
    /// check stays in cache.
    live: Vec<u64>,
    /// Example id per slot.
    ids: Vec<u64>,
    /// Example id → slot, in id order (the `fixed` mode takes the first k).
    by_id: BTreeMap<u64, u32>,
    postings: HashMap<Box<str>, Postings>,
    /// The sum of live examples' lengths in words.
    total_words: u64,
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
        let Ok(slot) = u32::try_from(self.shots.len()) else {
            return;
        };
        if slot == TOMBSTONE {
            return;
        }
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut length = 0u32;
        for word in words(&shot.input) {
            *counts.entry(word).or_default() += 1;
            length = length.saturating_add(1).min(TOMBSTONE - 1);
        }
        let short = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        for (word, n) in counts {
            let postings = self.postings.entry(word.into_boxed_str()).or_default();
            postings.entries.push(Posting {
                slot,
                tf: short(n),
                len: short(length),
            });
            postings.max_tf = postings.max_tf.max(n.min(u32::from(u16::MAX)));
            postings.min_len = postings.min_len.min(length.min(u32::from(u16::MAX)));
        }
        let word = slot as usize / 64;
        if self.live.len() <= word {
            self.live.resize(word + 1, 0);
        }
        self.live[word] |= 1 << (slot % 64);
        self.total_words += u64::from(length);
        self.by_id.insert(shot.id, slot);
        self.ids.push(shot.id);
        self.lengths.push(length);
        self.shots.push(Some(shot));
    }

    /// Removes an example, if held.
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        let slot = slot as usize;
        if let Some(length) = self.lengths.get_mut(slot) {
            self.total_words -= u64::from(*length);
            *length = TOMBSTONE;
        }
        if let Some(word) = self.live.get_mut(slot / 64) {
            *word &= !(1 << (slot % 64));
        }
        if let Some(shot) = self.shots.get_mut(slot) {
            *shot = None;
        }
        if self.shots.len() > 1024 && self.shots.len() > 2 * self.by_id.len() {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        let live: Vec<Arc<Shot>> = self.shots.drain(..).flatten().collect();
        *self = Index::default();
        for shot in live {
            self.insert(shot);
        }
    }

    /// The first `k` examples by id: the same ones for every call.
    pub(crate) fn first(&self, k: usize) -> Vec<Arc<Shot>> {
        self.by_id
            .values()
            .filter_map(|slot| self.shot(*slot))
            .take(k)
            .collect()
    }

    fn is_live(&self, slot: u32) -> bool {
        let word = self.live.get(slot as usize / 64).copied().unwrap_or(0);
        word & (1 << (slot % 64)) != 0
    }

    /// The example `id`, if held.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Shot>> {
        self.by_id.get(&id).and_then(|slot| self.shot(*slot))
    }

    fn shot(&self, slot: u32) -> Option<Arc<Shot>> {
        self.shots.get(slot as usize).and_then(Option::clone)
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
        // BM25's length norm K1 (1 - B + B len / average), as a + b len.
        let (a, b) = (K1 * (1.0 - B), K1 * B / average);
        // A word in more than a twentieth of a large library weighs at most ln 21 ≈ 3
        // against ≈ 11 for a word in a handful of 100,000: skipping it changes little of
        // the ranking and bounds a query's work by the examples its rarer words reach.
        let common = (n / 20.0).max(COMMON_FROM as f32);
        let mut query_words: Vec<String> = words(query).collect();
        query_words.sort_unstable();
        query_words.dedup();
        let mut terms: Vec<Term<'_>> = query_words
            .iter()
            .filter_map(|word| {
                let postings = self.postings.get(word.as_str())?;
                let df = postings.entries.len() as f32;
                if df > common {
                    return None;
                }
                // Tombstones count in `df`; the floor keeps every contribution positive.
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln().max(1e-6);
                let (tf, len) = (postings.max_tf as f32, postings.min_len as f32);
                let bound = idf * tf * (K1 + 1.0) / (tf + a + b * len);
                Some(Term {
                    postings,
                    idf,
                    bound,
                })
            })
            .collect();
        // The strongest words first: they decide which examples stay in the running.
        terms.sort_unstable_by(|x, y| y.bound.partial_cmp(&x.bound).unwrap_or(Ordering::Equal));
        // rest[i]: the most the words from i on can add to any one example.
        let mut rest = vec![0.0f32; terms.len() + 1];
        for i in (0..terms.len()).rev() {
            rest[i] = rest[i + 1] + terms[i].bound;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                scores,
                touched,
                heap,
            } = &mut *scratch;
            if scores.len() < self.lengths.len() {
                scores.resize(self.lengths.len(), 0.0);
            }
            let mut i = 0;
            let mut best = 0.0f32;
            // Whole postings, until k reached examples beat any example not reached.
            while i < terms.len() {
                if best > rest[i] && self.kth(scores, touched, heap, k) > rest[i] {
                    break;
                }
                let term = terms[i];
                for p in &term.postings.entries {
                    if !self.is_live(p.slot) {
                        continue;
                    }
                    let score = &mut scores[p.slot as usize];
                    if *score == 0.0 {
                        touched.push(p.slot);
                    }
                    *score += weight(term.idf, p.tf, a + b * f32::from(p.len));
                    best = best.max(*score);
                }
                i += 1;
            }
            // The other words, only for the examples that can still be among the k best.
            while i < terms.len() {
                let threshold = self.kth(scores, touched, heap, k);
                let (term, most) = (terms[i], rest[i]);
                touched.retain(|&slot| {
                    let score = &mut scores[slot as usize];
                    if *score + most < threshold {
                        *score = 0.0;
                        return false;
                    }
                    let entries = &term.postings.entries;
                    if let Ok(at) = entries.binary_search_by_key(&slot, |p| p.slot) {
                        let p = entries[at];
                        *score += weight(term.idf, p.tf, a + b * f32::from(p.len));
                    }
                    true
                });
                i += 1;
            }
            self.kth(scores, touched, heap, k);
            for slot in touched.drain(..) {
                scores[slot as usize] = 0.0;
            }
            let mut ranked: Vec<Ranked> = heap.drain().collect();
            // `Ranked` orders worse as greater: ascending is best first.
            ranked.sort_unstable();
            ranked
                .into_iter()
                .filter_map(|r| self.shot(r.slot))
                .collect()
        })
    }

    /// Fills `heap` with the k best of the `touched` slots and returns the k-th best
    /// score, or 0 while fewer than k were reached.
    fn kth(&self, scores: &[f32], touched: &[u32], heap: &mut BinaryHeap<Ranked>, k: usize) -> f32 {
        heap.clear();
        for &slot in touched {
            let score = scores[slot as usize];
            if heap.len() == k && heap.peek().is_some_and(|worst| score < worst.score) {
                continue;
            }
            let ranked = Ranked {
                score,
                id: self.ids[slot as usize],
                slot,
            };
            if heap.len() < k {
                heap.push(ranked);
            } else if heap.peek().is_some_and(|worst| ranked < *worst) {
                heap.pop();
                heap.push(ranked);
            }
        }
        match heap.peek() {
            Some(worst) if heap.len() == k => worst.score,
            _ => 0.0,
        }
    }
}

/// One word's BM25 contribution: its idf, its occurrences and the example's length norm.
fn weight(idf: f32, tf: u16, norm: f32) -> f32 {
    let tf = f32::from(tf);
    idf * tf * (K1 + 1.0) / (tf + norm)
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
        assert!(index.shots.len() < 3000, "rebuilt");
        assert_eq!(ids(&index.similar("ticket 17", 3)), Vec::<u64>::new());
        assert_eq!(ids(&index.similar("ticket 2017", 3)), [2017]);
        // Replacing an example keeps one copy of it.
        index.insert(shot(2017, "a new text"));
        assert_eq!(index.len(), 1000);
        assert_eq!(ids(&index.similar("new text", 3)), [2017]);
    }

    /// BM25 over every example, without pruning: what `similar` must return.
    fn exhaustive(index: &Index, query: &str, k: usize) -> Vec<u64> {
        let n = index.by_id.len() as f32;
        let average = (index.total_words as f32 / n).max(1.0);
        let common = (n / 20.0).max(COMMON_FROM as f32);
        let mut terms: Vec<String> = words(query).collect();
        terms.sort_unstable();
        terms.dedup();
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &terms {
            let Some(postings) = index.postings.get(term.as_str()) else {
                continue;
            };
            let df = postings.entries.len() as f32;
            if df > common {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln().max(1e-6);
            for p in &postings.entries {
                let len = index.lengths[p.slot as usize];
                if len != TOMBSTONE {
                    let norm = K1 * (1.0 - B + B * len as f32 / average);
                    *scores.entry(p.slot).or_default() += weight(idf, p.tf, norm);
                }
            }
        }
        let mut ranked: Vec<(f32, u64)> = scores
            .into_iter()
            .map(|(slot, score)| (score, index.ids[slot as usize]))
            .collect();
        ranked.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap().then(x.1.cmp(&y.1)));
        ranked.into_iter().take(k).map(|(_, id)| id).collect()
    }

    #[test]
    fn pruning_returns_what_scoring_every_example_would() {
        let mut rng = holdfast_policy::rng::Rng::seeded(5);
        let text = |rng: &mut holdfast_policy::rng::Rng, words: u64| {
            (0..rng.range_inclusive(3, words))
                .map(|_| {
                    let u = rng.unit();
                    format!("w{}", (u * u * 3000.0) as u64)
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut index = Index::default();
        for id in 0..20_000 {
            index.insert(shot(id, &text(&mut rng, 25)));
        }
        for id in (0..20_000).step_by(7) {
            index.remove(id);
        }
        for _ in 0..300 {
            let query = text(&mut rng, 30);
            for k in [1, 4, 32] {
                assert_eq!(
                    ids(&index.similar(&query, k)),
                    exhaustive(&index, &query, k),
                    "{query} k={k}"
                );
            }
        }
    }
}
