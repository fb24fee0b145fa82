//! Few-shot retrieval: its latency at 100,000 examples on one core, beside the same
//! calls' request building with retrieval off, and how soon an approval is retrieved.
//!
//! Why these baselines: retrieval is on the path of every call of a route with a
//! library, so its cost is read against what such a call does anyway before it leaves
//! (building the request it sends upstream: here, the messages serialised to JSON),
//! measured in the same run on the same queries. The targets: retrieval p99 ≤ 2 ms at
//! 100,000 examples, and an approved correction retrievable within 1 s, on the node
//! that approved it (approve, then the refresh that follows it) and on another node
//! (its refresh loop, every 250 ms as `holdfast serve` runs it).
//!
//! Run: `cargo run --release -p holdfast-bench --bin few_shot`

use std::sync::Arc;
use std::time::Duration;

use holdfast_bench::measure::{Stopwatch, human, pause, percentile};
use holdfast_policy::rng::Rng;
use holdfast_quality::fewshot::{Libraries, Mode, fingerprint};
use holdfast_store::{ExampleSource, ExampleStatus, NewExample, Store};
use serde_json::json;

/// Examples in the library.
const EXAMPLES: usize = 100_000;
/// Distinct words inputs draw from.
const VOCABULARY: u64 = 20_000;
/// Queries timed, each path.
const QUERIES: usize = 5_000;
/// Examples per call.
const K: usize = 4;
/// Writes in flight while the library is filled.
const WRITERS: usize = 64;
/// The targets from the issue.
const MAX_P99: Duration = Duration::from_millis(2);
const MAX_APPROVAL: Duration = Duration::from_secs(1);
/// How often a server's libraries catch up (`few_shot::REFRESH` in the server).
const REFRESH: Duration = Duration::from_millis(250);

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("holdfast-bench-few-shot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // One core: the queries run on this thread alone.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A ticket of 8 to 30 words, drawn from a vocabulary whose low words are common (a
/// word's rank is the square of a uniform draw: a long tail, as in real text).
fn ticket(rng: &mut Rng) -> String {
    let words = rng.range_inclusive(8, 30);
    (0..words)
        .map(|_| {
            let u = rng.unit();
            format!("w{}", (u * u * VOCABULARY as f64) as u64)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run(dir: &std::path::Path) -> anyhow::Result<()> {
    let store = holdfast_store::open(&format!("sqlite://{}/bench.db", dir.display())).await?;
    let clock = Stopwatch::start();
    fill(&store).await?;
    let filled = clock.elapsed();
    let libraries = Libraries::new(Arc::clone(&store));
    let clock = Stopwatch::start();
    libraries.refresh().await?;
    println!(
        "library: {EXAMPLES} examples stored in {}, loaded into the index in {}",
        human(filled),
        human(clock.elapsed())
    );

    let mut rng = Rng::seeded(99);
    let queries: Vec<String> = (0..QUERIES).map(|_| ticket(&mut rng)).collect();
    let (mut off, mut on, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    let mut hits = 0usize;
    for query in &queries {
        let clock = Stopwatch::start();
        let body = json!({"model": "triage", "messages": [
            {"role": "system", "content": "Classify the ticket."},
            {"role": "user", "content": query},
        ]});
        std::hint::black_box(serde_json::to_vec(&body)?);
        off.push(clock.elapsed());

        let clock = Stopwatch::start();
        let shots = libraries.retrieve("bench", "triage", query, K, Mode::Similar, 0);
        alone.push(clock.elapsed());
        let mut messages = vec![json!({"role": "system", "content": "Classify the ticket."})];
        for shot in &shots {
            messages.push(json!({"role": "user", "content": shot.input}));
            messages.push(json!({"role": "assistant", "content": shot.output}));
        }
        messages.push(json!({"role": "user", "content": query}));
        let body = json!({"model": "triage", "messages": messages});
        std::hint::black_box(serde_json::to_vec(&body)?);
        on.push(clock.elapsed());
        hits += usize::from(!shots.is_empty());
    }
    for samples in [&mut off, &mut on, &mut alone] {
        samples.sort_unstable();
    }
    let row = |name: &str, s: &[Duration]| {
        println!(
            "  {name:<28} p50 {:>10}  p99 {:>10}",
            human(percentile(s, 50.0)),
            human(percentile(s, 99.0))
        );
    };
    println!("{QUERIES} queries, k = {K}, one core ({hits} got examples):");
    row("request, retrieval off", &off);
    row("request, retrieval on", &on);
    row("retrieval alone", &alone);
    let p99 = percentile(&alone, 99.0);
    let ratio =
        percentile(&on, 99.0).as_secs_f64() / percentile(&off, 99.0).as_secs_f64().max(1e-9);
    println!(
        "retrieval p99 {} (target ≤ {}): {}; p99 on/off {ratio:.1}×",
        human(p99),
        human(MAX_P99),
        verdict(p99 <= MAX_P99)
    );

    let (here, there) = approvals(&store, &libraries).await?;
    println!(
        "approval → retrieved: this node {} , another node (refresh every {}) at most {} (target ≤ {}): {}",
        human(here),
        human(REFRESH),
        human(there),
        human(MAX_APPROVAL),
        verdict(here.max(there) <= MAX_APPROVAL)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn example(input: String, output: String, status: ExampleStatus) -> NewExample {
    NewExample {
        tenant: "bench".into(),
        library: "triage".into(),
        fingerprint: fingerprint(&input),
        input,
        output,
        source: ExampleSource::Import,
        author: "bench".into(),
        origin: None,
        status,
    }
}

/// Fills the library through the store, `WRITERS` writes in flight.
async fn fill(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let mut rng = Rng::seeded(7);
    let inputs: Vec<String> = (0..EXAMPLES)
        .map(|i| format!("{} n{i}", ticket(&mut rng)))
        .collect();
    let mut writers = tokio::task::JoinSet::new();
    for chunk in inputs.chunks(EXAMPLES.div_ceil(WRITERS)) {
        let chunk = chunk.to_vec();
        let store = Arc::clone(store);
        writers.spawn(async move {
            for (i, input) in chunk.into_iter().enumerate() {
                let output = format!("category {}", i % 12);
                store
                    .add_example(example(input, output, ExampleStatus::Active), 1)
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(())
}

/// The slowest of 5 approvals until retrieved: on the approving node (approve, then
/// refresh), and on another node whose loop refreshes every `REFRESH`.
async fn approvals(
    store: &Arc<dyn Store>,
    libraries: &Libraries,
) -> anyhow::Result<(Duration, Duration)> {
    let other = Arc::new(Libraries::new(Arc::clone(store)));
    other.refresh().await?;
    let poller = tokio::spawn({
        let other = Arc::clone(&other);
        async move {
            loop {
                pause(REFRESH).await;
                let _ = other.refresh().await;
            }
        }
    });
    let (mut here, mut there) = (Duration::ZERO, Duration::ZERO);
    for n in 0..5 {
        let input = format!("a correction number {n} about zq{n}refund");
        let added = store
            .add_example(
                example(input.clone(), "billing".into(), ExampleStatus::Candidate),
                2,
            )
            .await?;
        let clock = Stopwatch::start();
        store
            .set_example_status(Some("bench"), added.example().id, ExampleStatus::Active, 3)
            .await?;
        libraries.refresh().await?;
        let found = libraries.retrieve("bench", "triage", &input, K, Mode::Similar, 0);
        anyhow::ensure!(
            found.iter().any(|s| s.id == added.example().id),
            "not retrieved"
        );
        here = here.max(clock.elapsed());
        loop {
            let found = other.retrieve("bench", "triage", &input, K, Mode::Similar, 0);
            if found.iter().any(|s| s.id == added.example().id) {
                break;
            }
            anyhow::ensure!(
                clock.elapsed() < Duration::from_secs(10),
                "never retrieved elsewhere"
            );
            pause(Duration::from_millis(5)).await;
        }
        there = there.max(clock.elapsed());
    }
    poller.abort();
    Ok((here, there))
}
