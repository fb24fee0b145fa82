//! holdfast's fuzzer for stable Rust: a seeded mutation engine over a seed corpus that
//! runs every reader of untrusted bytes (chat and messages bodies, provider event
//! streams, configurations, workflow definitions) and fails on the first panic, on a
//! case slower than [`SLOW`], or on a run whose memory passes [`MAX_RSS_BYTES`].
//!
//! The decision that shapes it: no coverage instrumentation (that needs nightly or
//! libFuzzer), so the mutations carry the knowledge instead. They know the grammars
//! (JSON trees, TOML lines, SSE lines) and the values that break readers (nesting past
//! every limit, numbers past every integer type, invalid UTF-8, keys given twice), and
//! an input that reaches an outcome not seen before (a new error, a new field path)
//! joins the pool that later cases mutate, a cheap stand-in for coverage feedback.
//! A run is a pure function of its seed: a failure names the seed and the case, saves
//! the input under `fuzz/artifacts/TARGET/`, and replays with `HOLDFAST_FUZZ_REPLAY`.
//!
//! The same file is compiled into each crate's `tests/fuzz.rs` (`#[path]`), which run a
//! fixed number of cases under `cargo test`; `scripts/fuzz 10m` runs them for a time.
//!
//! Environment: `HOLDFAST_FUZZ_CASES=N` (cases per target), `HOLDFAST_FUZZ_FOR=10m`
//! (run for a time instead), `HOLDFAST_FUZZ_SEED=N` (default fixed; random under
//! `HOLDFAST_FUZZ_FOR`), `HOLDFAST_FUZZ_REPLAY=FILE` (run one input and print its outcome).

// Each crate's tests use the targets and grammars they need, not all of them.
#![allow(dead_code)]

mod bytes;
mod json;
mod rng;
mod sse;
mod toml;

use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use rng::Rng;

/// A case slower than this fails the run: a reader must not take unbounded time.
pub(crate) const SLOW: Duration = Duration::from_secs(10);

/// A run whose peak resident memory passes this fails: a reader must not take
/// unbounded memory (inputs are at most `bytes::MAX_INPUT` bytes).
pub(crate) const MAX_RSS_BYTES: u64 = 2 << 30;

/// The mutations that know an input's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grammar {
    /// JSON documents (request bodies, JSON workflow definitions).
    Json,
    /// TOML files (configurations, TOML workflow definitions).
    Toml,
    /// Server-sent event streams.
    Sse,
}

/// One reader to fuzz.
pub(crate) struct Target {
    /// Its name (of its test, `fuzz_NAME`, and of `fuzz/artifacts/NAME/`).
    pub(crate) name: &'static str,
    /// Its seed inputs: `fuzz/corpus/CORPUS/` (targets over the same format share one).
    pub(crate) corpus: &'static str,
    /// How its inputs are written.
    pub(crate) grammar: Grammar,
    /// Cases run by `cargo test` (a few seconds in a debug build).
    pub(crate) cases: u64,
    /// Runs one input; returns a coarse outcome (`ok`, an error's code and field), whose
    /// novelty decides whether the input joins the pool. Panics on a broken property.
    pub(crate) run: fn(&[u8]) -> String,
}

/// How long a run goes on.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Cases(u64),
    For(Duration),
}

/// Runs `target` over its corpus, then over mutated inputs until its budget is spent;
/// panics with a report (seed, case, saved input) on the first failure.
pub(crate) fn fuzz(target: &Target) {
    if let Some(file) = std::env::var_os("HOLDFAST_FUZZ_REPLAY") {
        let input = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {file:?}: {e}"));
        eprintln!(
            "{}: replaying {file:?}: {}",
            target.name,
            (target.run)(&input)
        );
        return;
    }
    let budget = budget(target);
    let seed = seed(budget);
    let corpus = corpus(target.corpus);
    assert!(
        !corpus.is_empty(),
        "{}: no seed inputs in fuzz/corpus/{}",
        target.name,
        target.corpus
    );
    let mut run = Run::new(target, seed);
    for input in &corpus {
        run.case(input.clone());
    }
    let corpus_len = corpus.len();
    let mut pool = corpus;
    let mut rng = Rng::new(seed);
    let clock = Stopwatch::start();
    let mut cases = 0u64;
    while match budget {
        Budget::Cases(n) => cases < n,
        Budget::For(limit) => clock.elapsed() < limit,
    } {
        // Half the cases start from a seed, so that mutants of broken inputs (which
        // the novelty rule lets in) do not crowd out mutants of valid ones.
        let seeds = pool.len().min(corpus_len);
        let parent = if rng.one_in(2) {
            rng.below(seeds)
        } else {
            rng.below(pool.len())
        };
        let other = rng.below(pool.len());
        let mut input = pool[parent].clone();
        // Mostly one or two mutations, so that many inputs stay close enough to valid
        // to reach the checks past the parser; now and then a pile of them.
        let mut rounds = 1;
        while rounds < 16 && rng.one_in(2) {
            rounds += 1;
        }
        for _ in 0..rounds {
            mutate(&mut input, target.grammar, &mut rng, &pool[other]);
        }
        if run.case(input.clone()) && pool.len() < MAX_POOL {
            pool.push(input);
        }
        cases += 1;
    }
    let rss = peak_rss_bytes();
    eprintln!(
        "{}: {cases} cases in {:.1?} (seed {seed}), {} accepted, {} outcomes, slowest case {:.1?}, peak RSS {} MiB",
        target.name,
        clock.elapsed(),
        run.accepted,
        run.outcomes.len(),
        run.slowest,
        rss.unwrap_or(0) >> 20,
    );
    if let Some(rss) = rss {
        assert!(
            rss <= MAX_RSS_BYTES,
            "{}: peak resident memory {} MiB is over {} MiB (seed {seed})",
            target.name,
            rss >> 20,
            MAX_RSS_BYTES >> 20
        );
    }
}

/// The most inputs the pool grows to.
const MAX_POOL: usize = 4096;

/// A run's state: what it has seen and how slow it got.
struct Run<'a> {
    target: &'a Target,
    seed: u64,
    number: u64,
    outcomes: HashSet<String>,
    /// Where each input is written before it runs (`fuzz/artifacts/NAME/last-input`).
    last_file: Option<std::fs::File>,
    /// Cases the reader accepted (an outcome starting `ok`): a run that accepts almost
    /// nothing only exercises the first error path.
    accepted: u64,
    slowest: Duration,
}

impl<'a> Run<'a> {
    fn new(target: &'a Target, seed: u64) -> Self {
        let dir = fuzz_dir().join("artifacts").join(target.name);
        let _ = std::fs::create_dir_all(&dir);
        eprintln!(
            "{}: seed {seed}; if the process dies (a stack overflow aborts it), the input \
             it died on is {}",
            target.name,
            dir.join("last-input").display()
        );
        Run {
            target,
            seed,
            last_file: std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(dir.join("last-input"))
                .ok(),
            number: 0,
            outcomes: HashSet::new(),
            accepted: 0,
            slowest: Duration::ZERO,
        }
    }

    /// Runs one case; true when its outcome is new. Panics with a report on failure.
    fn case(&mut self, input: Vec<u8>) -> bool {
        self.number += 1;
        // A stack overflow aborts the process without unwinding: the input it died on
        // is kept on disk beforehand, so that no crash is lost. Overwritten in place,
        // never truncated to nothing first: ext4 flushes a file truncated to zero and
        // rewritten, which would make every case wait for the disk.
        if let Some(file) = &mut self.last_file {
            let _ = file
                .seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&input))
                .and_then(|()| file.set_len(input.len() as u64));
        }
        let watch = Stopwatch::start();
        let result = catch_unwind(AssertUnwindSafe(|| (self.target.run)(&input)));
        let took = watch.elapsed();
        self.slowest = self.slowest.max(took);
        match result {
            Ok(_) if took > SLOW => self.fail("slow", &input, &format!("took {took:.1?}")),
            Ok(outcome) => {
                self.accepted += u64::from(outcome.starts_with("ok"));
                self.outcomes.insert(coarse(&outcome))
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                self.fail("crash", &input, &format!("panicked: {message}"))
            }
        }
    }

    fn fail(&self, kind: &str, input: &[u8], what: &str) -> ! {
        let name = self.target.name;
        let saved = save(name, kind, input);
        let preview: String = String::from_utf8_lossy(&input[..input.len().min(400)]).into_owned();
        panic!(
            "{name}: case {} (seed {}) {what}\ninput ({} bytes) saved as {}\n\
             replay: HOLDFAST_FUZZ_REPLAY={} cargo test --test fuzz {name}\n\
             first bytes: {preview:?}",
            self.number,
            self.seed,
            input.len(),
            saved.display(),
            saved.display(),
        );
    }
}

/// Applies one mutation: the grammar's own three times in four (when the input still
/// has that grammar), a byte-level one otherwise.
pub(crate) fn mutate(input: &mut Vec<u8>, grammar: Grammar, rng: &mut Rng, other: &[u8]) {
    if !rng.one_in(4) {
        let done = match grammar {
            Grammar::Json => json::mutate(input, rng, other),
            Grammar::Toml => toml::mutate(input, rng, other),
            Grammar::Sse => sse::mutate(input, rng, other),
        };
        if done {
            return;
        }
    }
    let tokens = match grammar {
        Grammar::Json => JSON_TOKENS,
        Grammar::Toml => TOML_TOKENS,
        Grammar::Sse => SSE_TOKENS,
    };
    bytes::mutate(input, rng, other, tokens);
}

const JSON_TOKENS: &[&str] = &[
    "{", "}", "[", "]", "\"", ":", ",", "null", "true", "-", "e", ".", "\\", "\"\":", "{}", "[]",
];
const TOML_TOKENS: &[&str] = &[
    "[", "]", "[[", "]]", "=", "\"", "'", "\"\"\"", "'''", "\n", "#", ".", ",", "{", "}",
    "\n[x]\n", " = ", "\\",
];
const SSE_TOKENS: &[&str] = &[
    "\n", "\r", "\r\n", "\n\n", ":", "data:", "data: ", "event:", "id:", "retry:", "[DONE]",
    "\u{FEFF}", "{", "}", "\"",
];

/// An outcome with its numbers blurred and its length cut, so that `line 3` and
/// `line 4` are one outcome and the pool grows by kinds of result, not by positions.
fn coarse(outcome: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in outcome.chars().take(120) {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn budget(target: &Target) -> Budget {
    if let Ok(text) = std::env::var("HOLDFAST_FUZZ_FOR") {
        let duration = parse_duration(&text)
            .unwrap_or_else(|| panic!("HOLDFAST_FUZZ_FOR={text:?}: expected 30s, 10m or 1h"));
        return Budget::For(duration);
    }
    match std::env::var("HOLDFAST_FUZZ_CASES") {
        Ok(text) => Budget::Cases(
            text.parse()
                .unwrap_or_else(|_| panic!("HOLDFAST_FUZZ_CASES={text:?}: expected a number")),
        ),
        Err(_) => Budget::Cases(target.cases),
    }
}

/// `30s`, `10m`, `2h`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The run's seed: `HOLDFAST_FUZZ_SEED`, else fixed for a count of cases (CI runs the
/// same inputs every time) and taken from the clock for a timed run (each explores
/// anew).
fn seed(budget: Budget) -> u64 {
    if let Ok(text) = std::env::var("HOLDFAST_FUZZ_SEED") {
        return text
            .parse()
            .unwrap_or_else(|_| panic!("HOLDFAST_FUZZ_SEED={text:?}: expected a number"));
    }
    match budget {
        Budget::Cases(_) => 0x5E_ED0F_401D_FA57,
        Budget::For(_) => {
            #[allow(clippy::disallowed_methods)] // a fresh seed for each timed run
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    }
}

/// The repository's `fuzz/` directory, found from the crate being tested.
pub(crate) fn fuzz_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        if dir.join("fuzz/corpus").is_dir() {
            return dir.join("fuzz");
        }
        if dir.join("corpus").is_dir() && dir.join("harness").is_dir() {
            return dir;
        }
        assert!(
            dir.pop(),
            "no fuzz/corpus above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

/// The seed inputs of `name`, in file-name order.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && !is_libfuzzer_find(path))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        })
        .collect()
}

/// Whether `path` is an input `cargo fuzz` added to the corpus (named by its SHA-1):
/// not a seed, so that `cargo test` runs the same inputs on every machine.
fn is_libfuzzer_find(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Saves a failing input under `fuzz/artifacts/TARGET/` (the place `cargo fuzz` uses).
fn save(name: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = fuzz_dir().join("artifacts").join(name);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3)
    });
    let path = dir.join(format!("{kind}-{hash:016x}"));
    if std::fs::write(&path, input).is_err() {
        return Path::new("(not saved)").to_owned();
    }
    path
}

/// The process's peak resident memory, where /proc tells it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Wall time of a case.
struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // the fuzzer measures real time per case
    fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
