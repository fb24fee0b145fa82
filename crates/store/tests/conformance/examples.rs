//! Cases on the few-shot example library: near-duplicates merge, approval and
//! retirement change what is active, revisions let an index catch up, usage counts add
//! up, a tenant sees only its own examples, bad input stores nothing.

use std::sync::Arc;

use holdfast_store::{
    ExampleAdded, ExampleFilter, ExampleSource, ExampleStatus, ExampleUse, ExampleVector,
    NewExample, Store, StoreError,
};

use super::harness::MAX_DOC;
use super::tasks::T0;

fn new(tenant: &str, fingerprint: &str, output: &str, status: ExampleStatus) -> NewExample {
    NewExample {
        tenant: tenant.into(),
        library: "triage".into(),
        fingerprint: fingerprint.into(),
        input: format!("Ticket: {fingerprint}"),
        output: output.into(),
        source: ExampleSource::Escalation,
        author: "ana".into(),
        origin: Some("task-1/classify".into()),
        status,
    }
}

pub(crate) async fn near_duplicates_merge_and_the_latest_correction_wins(s: Arc<dyn Store>) {
    let first = s
        .add_example(new("acme", "fp-1", "billing", ExampleStatus::Active), T0)
        .await
        .unwrap();
    let ExampleAdded::Created(first) = first else {
        panic!("a new example: {first:?}")
    };
    assert_eq!(
        (first.status, first.merged, first.times_used),
        (ExampleStatus::Active, 0, 0)
    );

    // The same answer again: merged, still active, nothing else changes.
    let again = s
        .add_example(
            new("acme", "fp-1", "billing", ExampleStatus::Candidate),
            T0 + 1,
        )
        .await
        .unwrap();
    let ExampleAdded::Merged(again) = again else {
        panic!("merged: {again:?}")
    };
    assert_eq!(
        (again.id, again.status, again.merged),
        (first.id, ExampleStatus::Active, 1)
    );

    // Another answer to the same input replaces it and waits for a reviewer again.
    let mut other = new("acme", "fp-1", "refund", ExampleStatus::Candidate);
    other.source = ExampleSource::Feedback;
    other.author = "bo".into();
    let corrected = s.add_example(other, T0 + 2).await.unwrap();
    let ExampleAdded::Merged(corrected) = corrected else {
        panic!("merged: {corrected:?}")
    };
    assert_eq!(corrected.id, first.id);
    assert_eq!(
        (
            corrected.output.as_str(),
            corrected.author.as_str(),
            corrected.source
        ),
        ("refund", "bo", ExampleSource::Feedback)
    );
    assert_eq!(
        (corrected.status, corrected.merged),
        (ExampleStatus::Candidate, 2)
    );
    assert!(corrected.revision > again.revision && again.revision > first.revision);

    // Another library, or another tenant, is another example.
    let mut elsewhere = new("acme", "fp-1", "billing", ExampleStatus::Candidate);
    elsewhere.library = "summaries".into();
    let elsewhere = s.add_example(elsewhere, T0 + 3).await.unwrap();
    assert!(
        matches!(elsewhere, ExampleAdded::Created(_)),
        "{elsewhere:?}"
    );
    let globex = s
        .add_example(
            new("globex", "fp-1", "billing", ExampleStatus::Candidate),
            T0 + 4,
        )
        .await
        .unwrap();
    assert!(matches!(globex, ExampleAdded::Created(_)), "{globex:?}");
}

pub(crate) async fn approval_and_retirement_change_what_is_active(s: Arc<dyn Store>) {
    let added = s
        .add_example(new("acme", "fp-1", "billing", ExampleStatus::Candidate), T0)
        .await
        .unwrap();
    let id = added.example().id;
    let active = |s: Arc<dyn Store>| async move {
        let filter = ExampleFilter {
            tenant: Some("acme".into()),
            library: Some("triage".into()),
            status: Some(ExampleStatus::Active),
            limit: 10,
        };
        s.list_examples(&filter).await.unwrap().len()
    };
    assert_eq!(active(s.clone()).await, 0);
    let approved = s
        .set_example_status(Some("acme"), id, ExampleStatus::Active, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        (approved.status, approved.updated_at_ms),
        (ExampleStatus::Active, T0 + 1)
    );
    assert_eq!(active(s.clone()).await, 1);
    let retired = s
        .set_example_status(None, id, ExampleStatus::Retired, T0 + 2)
        .await
        .unwrap();
    assert_eq!(retired.status, ExampleStatus::Retired);
    assert_eq!(active(s.clone()).await, 0);
    // Retiring again changes nothing, not even the revision.
    let twice = s
        .set_example_status(None, id, ExampleStatus::Retired, T0 + 3)
        .await
        .unwrap();
    assert_eq!(twice, retired);
    let missing = s
        .set_example_status(None, id + 1000, ExampleStatus::Active, T0 + 4)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

pub(crate) async fn example_changes_arrive_in_revision_order(s: Arc<dyn Store>) {
    let a = s
        .add_example(new("acme", "fp-a", "a", ExampleStatus::Candidate), T0)
        .await
        .unwrap();
    let b = s
        .add_example(new("globex", "fp-b", "b", ExampleStatus::Active), T0 + 1)
        .await
        .unwrap();
    let all = s.example_changes(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a.example().id, b.example().id]
    );
    let held = all[1].revision;
    s.set_example_status(None, a.example().id, ExampleStatus::Active, T0 + 2)
        .await
        .unwrap();
    let after = s.example_changes(held, 100).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].id, after[0].status),
        (a.example().id, ExampleStatus::Active)
    );
    // Counting uses is not a change.
    s.record_example_uses(vec![ExampleUse {
        tenant: "acme".into(),
        id: a.example().id,
        calls: 3,
        last_used_at_ms: T0 + 5,
    }])
    .await
    .unwrap();
    assert!(
        s.example_changes(after[0].revision, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn usage_counts_add_up_for_their_own_tenant_only(s: Arc<dyn Store>) {
    let a = s
        .add_example(new("acme", "fp-a", "a", ExampleStatus::Active), T0)
        .await
        .unwrap();
    let id = a.example().id;
    let used = |tenant: &str, calls, at| ExampleUse {
        tenant: tenant.into(),
        id,
        calls,
        last_used_at_ms: at,
    };
    s.record_example_uses(vec![used("acme", 2, T0 + 10), used("globex", 50, T0 + 20)])
        .await
        .unwrap();
    s.record_example_uses(vec![used("acme", 1, T0 + 5)])
        .await
        .unwrap();
    let e = s.get_example(Some("acme"), id).await.unwrap().unwrap();
    assert_eq!((e.times_used, e.last_used_at_ms), (3, Some(T0 + 10)));
}

pub(crate) async fn examples_are_each_tenants_own(s: Arc<dyn Store>) {
    let a = s
        .add_example(new("acme", "fp-a", "a", ExampleStatus::Active), T0)
        .await
        .unwrap();
    let id = a.example().id;
    assert!(s.get_example(Some("globex"), id).await.unwrap().is_none());
    assert!(s.get_example(Some("acme"), id).await.unwrap().is_some());
    let theirs = ExampleFilter {
        tenant: Some("globex".into()),
        ..ExampleFilter::default()
    };
    assert!(s.list_examples(&theirs).await.unwrap().is_empty());
    let refused = s
        .set_example_status(Some("globex"), id, ExampleStatus::Retired, T0 + 1)
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound { .. })),
        "{refused:?}"
    );
    let e = s.get_example(None, id).await.unwrap().unwrap();
    assert_eq!(e.status, ExampleStatus::Active);
}

pub(crate) async fn bad_example_input_is_refused_with_nothing_stored(s: Arc<dyn Store>) {
    let bad = [
        NewExample {
            library: "no spaces".into(),
            ..new("acme", "fp", "x", ExampleStatus::Active)
        },
        NewExample {
            fingerprint: String::new(),
            ..new("acme", "fp", "x", ExampleStatus::Active)
        },
        NewExample {
            input: "  ".into(),
            ..new("acme", "fp", "x", ExampleStatus::Active)
        },
        NewExample {
            output: "x".repeat(MAX_DOC + 1),
            ..new("acme", "fp", "x", ExampleStatus::Active)
        },
        NewExample {
            author: String::new(),
            ..new("acme", "fp", "x", ExampleStatus::Active)
        },
        new("acme", "fp", "x", ExampleStatus::Retired),
    ];
    for example in bad {
        let refused = s.add_example(example.clone(), T0).await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput { .. })),
            "{example:?}: {refused:?}"
        );
    }
    assert!(s.example_changes(0, 10).await.unwrap().is_empty());
}

fn vector(tenant: &str, id: u64, model: &str, vector: Vec<f32>) -> ExampleVector {
    ExampleVector {
        tenant: tenant.into(),
        id,
        model: model.into(),
        vector,
    }
}

pub(crate) async fn example_vectors_are_kept_per_model_replaced_and_each_tenants_own(
    s: Arc<dyn Store>,
) {
    let added = s
        .add_example(new("acme", "fp-v", "billing", ExampleStatus::Active), T0)
        .await
        .unwrap();
    let id = added.example().id;
    s.put_example_vectors(vec![
        vector("acme", id, "embed", vec![0.5, -0.25, 1e-3]),
        vector("acme", id, "other", vec![1.0]),
        // Not globex's example, and no example at all: skipped.
        vector("globex", id, "embed", vec![9.0]),
        vector("acme", id + 1000, "embed", vec![9.0]),
    ])
    .await
    .unwrap();
    let read = s
        .example_vectors("acme", "embed", vec![id, id + 1000])
        .await
        .unwrap();
    assert_eq!(read, [vector("acme", id, "embed", vec![0.5, -0.25, 1e-3])]);
    assert!(
        s.example_vectors("globex", "embed", vec![id])
            .await
            .unwrap()
            .is_empty()
    );
    s.put_example_vectors(vec![vector("acme", id, "embed", vec![2.0, 3.0])])
        .await
        .unwrap();
    let read = s.example_vectors("acme", "embed", vec![id]).await.unwrap();
    assert_eq!(read[0].vector, [2.0, 3.0]);
    let other = s.example_vectors("acme", "other", vec![id]).await.unwrap();
    assert_eq!(other[0].vector, [1.0]);

    let bad = s
        .put_example_vectors(vec![vector("acme", id, "embed", vec![f32::NAN])])
        .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidInput { .. })),
        "{bad:?}"
    );
    let read = s.example_vectors("acme", "embed", vec![id]).await.unwrap();
    assert_eq!(read[0].vector, [2.0, 3.0]);
}
