//! The example library over a real store: corrections wait for approval unless the
//! task type approves at once, approval and retirement reach retrieval at the next
//! refresh, `fixed` and `similar` choose as documented, another tenant's examples are
//! never retrieved, and usage counts reach the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use holdfast_quality::fewshot::{
    Correction, Embedder, Libraries, Mode, Similarity, add_correction,
};
use holdfast_store::{ExampleSource, ExampleStatus, Store};

const T0: u64 = 1_700_000_000_000;

async fn store(name: &str) -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("holdfast-fewshot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    holdfast_store::open(&format!("sqlite://{}/examples.db", dir.display()))
        .await
        .unwrap()
}

fn correction(tenant: &str, input: &str, output: &str, auto_approve: bool) -> Correction {
    Correction {
        tenant: tenant.into(),
        library: "triage".into(),
        input: input.into(),
        output: output.into(),
        source: ExampleSource::Escalation,
        author: "ana".into(),
        origin: Some("t1/classify".into()),
        auto_approve,
    }
}

fn inputs(shots: &[Arc<holdfast_quality::fewshot::Shot>]) -> Vec<&str> {
    shots.iter().map(|s| s.input.as_str()).collect()
}

#[tokio::test]
async fn a_candidate_is_retrieved_once_approved_and_never_once_retired() {
    let libraries = Libraries::new(store("approve").await);
    let added = add_correction(
        &libraries,
        correction("acme", "charged twice for my invoice", "billing", false),
        T0,
    )
    .await
    .unwrap();
    let id = added.example().id;
    let query = "I was charged twice";
    assert!(
        libraries
            .retrieve("acme", "triage", query, 4, Mode::Similar, T0)
            .is_empty()
    );

    let store = libraries.store().clone();
    store
        .set_example_status(Some("acme"), id, ExampleStatus::Active, T0 + 1)
        .await
        .unwrap();
    libraries.refresh().await.unwrap();
    let shots = libraries.retrieve("acme", "triage", query, 4, Mode::Similar, T0 + 2);
    assert_eq!(inputs(&shots), ["charged twice for my invoice"]);
    assert_eq!(shots[0].output, "billing");

    store
        .set_example_status(None, id, ExampleStatus::Retired, T0 + 3)
        .await
        .unwrap();
    libraries.refresh().await.unwrap();
    assert!(
        libraries
            .retrieve("acme", "triage", query, 4, Mode::Similar, T0 + 4)
            .is_empty()
    );
    let counts = libraries.counts();
    assert_eq!((counts[0].1.hits, counts[0].1.misses), (1, 2));
}

#[tokio::test]
async fn auto_approve_is_retrieved_at_once_and_a_near_duplicate_replaces_it() {
    let libraries = Libraries::new(store("auto").await);
    add_correction(
        &libraries,
        correction("acme", "Reset my password!", "account", true),
        T0,
    )
    .await
    .unwrap();
    let shots = libraries.retrieve("acme", "triage", "password reset", 4, Mode::Similar, T0);
    assert_eq!(shots[0].output, "account");
    let merged = add_correction(
        &libraries,
        correction("acme", "reset my PASSWORD", "security", true),
        T0 + 1,
    )
    .await
    .unwrap();
    assert!(matches!(merged, holdfast_store::ExampleAdded::Merged(_)));
    let shots = libraries.retrieve("acme", "triage", "password reset", 4, Mode::Similar, T0);
    assert_eq!(shots.len(), 1);
    assert_eq!(shots[0].output, "security");
    let sizes = libraries.sizes();
    assert_eq!(sizes[0].1.active, 1);
}

#[tokio::test]
async fn fixed_gives_the_same_examples_and_similar_the_nearest_last() {
    let libraries = Libraries::new(store("modes").await);
    for (input, output) in [
        ("cancel my subscription", "cancel"),
        ("invoice shows the wrong amount", "billing"),
        ("charged twice on the invoice", "billing"),
        ("app crashes at login", "bug"),
    ] {
        add_correction(&libraries, correction("acme", input, output, true), T0)
            .await
            .unwrap();
    }
    let fixed = libraries.retrieve("acme", "triage", "anything", 2, Mode::Fixed, T0);
    assert_eq!(
        inputs(&fixed),
        ["invoice shows the wrong amount", "cancel my subscription"]
    );
    let similar = libraries.retrieve(
        "acme",
        "triage",
        "charged twice, wrong invoice",
        2,
        Mode::Similar,
        T0,
    );
    // Nearest last: right before the call's own input.
    assert_eq!(
        inputs(&similar),
        [
            "invoice shows the wrong amount",
            "charged twice on the invoice"
        ]
    );
}

#[tokio::test]
async fn another_tenants_examples_are_never_retrieved() {
    let libraries = Libraries::new(store("tenants").await);
    add_correction(
        &libraries,
        correction("globex", "refund please", "refund", true),
        T0,
    )
    .await
    .unwrap();
    for mode in [Mode::Similar, Mode::Fixed] {
        assert!(
            libraries
                .retrieve("acme", "triage", "refund please", 4, mode, T0)
                .is_empty()
        );
    }
    assert_eq!(
        libraries
            .retrieve("globex", "triage", "refund please", 4, Mode::Similar, T0)
            .len(),
        1
    );
}

#[tokio::test]
async fn usage_counts_reach_the_store_and_survive_a_restart_of_the_cache() {
    let store = store("uses").await;
    let libraries = Libraries::new(store.clone());
    let added = add_correction(
        &libraries,
        correction("acme", "refund please", "refund", true),
        T0,
    )
    .await
    .unwrap();
    for at in 0..3 {
        libraries.retrieve("acme", "triage", "refund", 4, Mode::Similar, T0 + at);
    }
    libraries.flush_uses().await.unwrap();
    let e = store
        .get_example(Some("acme"), added.example().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.times_used, e.last_used_at_ms), (3, Some(T0 + 2)));

    let restarted = Libraries::new(store);
    restarted.refresh().await.unwrap();
    assert_eq!(
        restarted
            .retrieve("acme", "triage", "refund", 4, Mode::Similar, T0)
            .len(),
        1
    );
}

/// Embeds with the mock provider's vectors, counting texts; fails when told to.
#[derive(Default)]
struct Counting {
    texts: std::sync::Mutex<Vec<(String, String)>>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Embedder for Counting {
    async fn embed(
        &self,
        tenant: &str,
        route: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, String> {
        assert_eq!(route, "embed");
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the embedding route is down".into());
        }
        let mut seen = self.texts.lock().unwrap();
        seen.extend(texts.iter().map(|t| (tenant.to_owned(), t.clone())));
        Ok(texts.iter().map(|t| holdfast_mock::embed(t)).collect())
    }
}

fn embedding(store: Arc<dyn Store>, embedder: &Arc<Counting>) -> Libraries {
    let libraries = Libraries::new(store);
    libraries.set_embedder(embedder.clone());
    libraries.configure(
        [(
            "triage".to_owned(),
            Similarity::Embeddings {
                route: "embed".into(),
            },
        )]
        .into(),
    );
    libraries
}

#[tokio::test]
async fn embeddings_find_examples_once_embedded_and_a_restart_reads_the_vectors() {
    let store = store("embeddings").await;
    let embedder = Arc::new(Counting::default());
    let libraries = embedding(store.clone(), &embedder);
    for (tenant, input, output) in [
        ("acme", "charged twice for my invoice", "billing"),
        ("acme", "my parcel never arrived", "shipping"),
        ("globex", "charged twice this month", "fraud"),
    ] {
        add_correction(&libraries, correction(tenant, input, output, true), T0)
            .await
            .unwrap();
    }
    libraries.refresh().await.unwrap();
    let embedded = embedder.texts.lock().unwrap().len();
    assert_eq!(embedded, 3, "each example once");
    let shots = libraries
        .retrieve_for(
            "acme",
            "triage",
            "I was charged twice",
            1,
            Mode::Similar,
            T0,
        )
        .await;
    assert_eq!(inputs(&shots), ["charged twice for my invoice"]);
    assert_eq!(
        embedder.texts.lock().unwrap().last().unwrap(),
        &("acme".to_owned(), "I was charged twice".to_owned())
    );

    // A new cache on the same store reads the vectors instead of embedding again.
    let again = embedding(store.clone(), &embedder);
    again.refresh().await.unwrap();
    assert_eq!(embedder.texts.lock().unwrap().len(), embedded + 1);
    let shots = again
        .retrieve_for("acme", "triage", "parcel arrived", 4, Mode::Similar, T0)
        .await;
    assert_eq!(inputs(&shots), ["my parcel never arrived"]);

    // The route fails: the lexical index answers, and the fallback is counted.
    embedder
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let shots = again
        .retrieve_for("acme", "triage", "charged twice", 4, Mode::Similar, T0)
        .await;
    assert_eq!(inputs(&shots), ["charged twice for my invoice"]);
    let counts = &again.counts()[0].1;
    assert_eq!(
        (counts.embedding_failed, counts.embedding_no_vectors),
        (1, 0)
    );
}

#[tokio::test]
async fn a_tenant_without_vectors_gets_lexical_examples_and_no_embedding_request() {
    let embedder = Arc::new(Counting::default());
    let libraries = embedding(store("no-vectors").await, &embedder);
    // The example cannot be embedded: active, in the lexical index, without a vector.
    let failing = |on| {
        (embedder.failing).store(on, std::sync::atomic::Ordering::SeqCst);
    };
    failing(true);
    let example = correction("acme", "charged twice for my invoice", "billing", true);
    add_correction(&libraries, example, T0).await.unwrap();
    failing(false);

    let query = "I was charged twice";
    let shots = (libraries.retrieve_for("acme", "triage", query, 1, Mode::Similar, T0)).await;
    assert_eq!(inputs(&shots), ["charged twice for my invoice"]);
    let shots = (libraries.retrieve_for("globex", "triage", query, 1, Mode::Similar, T0)).await;
    assert!(
        shots.is_empty(),
        "another tenant's example is never retrieved"
    );
    assert!(
        embedder.texts.lock().unwrap().is_empty(),
        "no call's input was embedded: there was no vector to compare it with"
    );
    let counts = &libraries.counts()[0].1;
    assert_eq!(
        (counts.hits, counts.misses, counts.embedding_no_vectors),
        (1, 1, 2)
    );
    assert_eq!((counts.embedding_failed, counts.embedding_failures), (0, 1));

    // Once embedded, calls are embedded again.
    for _ in 0..=20 {
        libraries.refresh().await.unwrap();
    }
    let shots = (libraries.retrieve_for("acme", "triage", query, 1, Mode::Similar, T0)).await;
    assert_eq!(inputs(&shots), ["charged twice for my invoice"]);
    let texts = embedder.texts.lock().unwrap().clone();
    let texts: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["charged twice for my invoice", query]);
    assert_eq!(libraries.counts()[0].1.embedding_no_vectors, 2);
}
