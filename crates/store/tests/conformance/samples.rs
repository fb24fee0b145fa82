//! Cases on the quality loop's production samples: a sample reads back as written,
//! lists newest first by tenant and task type, is its tenant's own, is deleted once
//! older than the retention period, a batch keeps its order, and a bad sample in a
//! batch is refused alone.

use std::sync::Arc;

use holdfast_store::{NewQualitySample, SampleFilter, SampleStatus, Store, StoreError};
use serde_json::json;

use super::tasks::T0;

fn new(tenant: &str, task_type: &str, at: u64) -> NewQualitySample {
    NewQualitySample {
        tenant: tenant.into(),
        task_type: task_type.into(),
        suite: "support".into(),
        request_id: format!("req-{at}"),
        input: json!({"messages": [{"role": "user", "content": "Where is my parcel?"}]}),
        answer: json!({"text": "On its way."}),
        status: SampleStatus::Scored,
        score: Some(0.75),
        verdicts: json!([{"grader": "rubric", "score": 0.75, "reason": "polite"}]),
        judge_cost_usd: 0.002,
        created_at_ms: at,
    }
}

/// Keeps one sample through the batch call.
async fn add(s: &Arc<dyn Store>, sample: NewQualitySample) -> Result<u64, StoreError> {
    let mut answers = s.add_quality_samples(vec![sample]).await?;
    assert_eq!(answers.len(), 1, "one answer per sample");
    answers.remove(0)
}

fn all(tenant: Option<&str>, task_type: Option<&str>) -> SampleFilter {
    SampleFilter {
        tenant: tenant.map(str::to_owned),
        task_type: task_type.map(str::to_owned),
        before_id: None,
        limit: 100,
    }
}

pub(crate) async fn samples_read_back_list_newest_first_and_expire(s: Arc<dyn Store>) {
    let first = add(&s, new("acme", "support", T0)).await.unwrap();
    let mut skipped = new("acme", "support", T0 + 10);
    skipped.status = SampleStatus::SkippedBudget;
    skipped.score = None;
    skipped.verdicts = json!([]);
    skipped.judge_cost_usd = 0.0;
    let second = add(&s, skipped.clone()).await.unwrap();
    let other_type = add(&s, new("acme", "triage", T0 + 20)).await.unwrap();
    assert!(first < second && second < other_type, "ids grow");

    let read = s
        .get_quality_sample(Some("acme"), first)
        .await
        .unwrap()
        .unwrap();
    let written = new("acme", "support", T0);
    assert_eq!(
        (read.id, &read.input, &read.answer, read.status, read.score),
        (
            first,
            &written.input,
            &written.answer,
            SampleStatus::Scored,
            Some(0.75)
        )
    );
    assert_eq!((read.judge_cost_usd, read.created_at_ms), (0.002, T0));
    let read = s.get_quality_sample(None, second).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.score),
        (SampleStatus::SkippedBudget, None)
    );

    let listed = s
        .list_quality_samples(&all(Some("acme"), None))
        .await
        .unwrap();
    let ids: Vec<u64> = listed.iter().map(|x| x.id).collect();
    assert_eq!(ids, vec![other_type, second, first], "newest first");
    let support = s
        .list_quality_samples(&all(Some("acme"), Some("support")))
        .await
        .unwrap();
    assert_eq!(support.len(), 2);
    let mut page = all(Some("acme"), None);
    page.before_id = Some(second);
    page.limit = 1;
    let next: Vec<u64> = s
        .list_quality_samples(&page)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(next, vec![first], "the next page starts below the id given");

    // Retention: what the task type kept from before the cut is gone, the rest stays.
    assert_eq!(
        s.delete_quality_samples("support", T0 + 10).await.unwrap(),
        1
    );
    assert!(s.get_quality_sample(None, first).await.unwrap().is_none());
    assert!(s.get_quality_sample(None, second).await.unwrap().is_some());
    assert_eq!(
        s.delete_quality_samples("support", T0 + 10).await.unwrap(),
        0
    );
    assert_eq!(
        s.delete_quality_samples("triage", T0 + 10).await.unwrap(),
        0
    );
    assert_eq!(
        s.delete_quality_samples("triage", T0 + 21).await.unwrap(),
        1
    );
}

pub(crate) async fn samples_are_each_tenants_own(s: Arc<dyn Store>) {
    let id = add(&s, new("acme", "support", T0)).await.unwrap();
    add(&s, new("globex", "support", T0)).await.unwrap();
    assert!(
        s.get_quality_sample(Some("globex"), id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_quality_sample(Some("acme"), id)
            .await
            .unwrap()
            .is_some()
    );
    let globex = s
        .list_quality_samples(&all(Some("globex"), None))
        .await
        .unwrap();
    assert_eq!(globex.len(), 1);
    assert!(globex.iter().all(|x| x.tenant == "globex"));
    assert_eq!(
        s.list_quality_samples(&all(None, None))
            .await
            .unwrap()
            .len(),
        2
    );
}

pub(crate) async fn a_batch_keeps_its_order_and_refuses_bad_samples_alone(s: Arc<dyn Store>) {
    let mut bad_tenant = new("acme", "support", T0);
    bad_tenant.tenant = "no spaces".into();
    let mut bad_score = new("acme", "support", T0);
    bad_score.score = Some(1.5);
    let mut bad_cost = new("acme", "support", T0);
    bad_cost.judge_cost_usd = f64::NAN;
    let batch = vec![
        bad_tenant,
        new("acme", "support", T0 + 1),
        bad_score,
        new("acme", "support", T0 + 2),
        bad_cost,
    ];
    let answers = s.add_quality_samples(batch).await.unwrap();
    assert_eq!(answers.len(), 5, "one answer per sample, in order");
    let refused = |i: usize| match &answers[i] {
        Err(StoreError::InvalidInput { field, .. }) => field.to_string(),
        other => panic!("sample {i}: {other:?}"),
    };
    assert_eq!(refused(0), "sample.tenant");
    assert_eq!(refused(2), "sample.score");
    assert_eq!(refused(4), "sample.judge_cost_usd");
    let (Ok(first), Ok(second)) = (&answers[1], &answers[3]) else {
        panic!("the valid samples are kept: {answers:?}");
    };
    assert!(first < second, "ids follow the batch's order");
    let kept = s.list_quality_samples(&all(None, None)).await.unwrap();
    let kept: Vec<(u64, u64)> = kept.iter().map(|x| (x.id, x.created_at_ms)).collect();
    assert_eq!(kept, vec![(*second, T0 + 2), (*first, T0 + 1)]);

    // A large batch is one call, every sample kept in order; an empty one keeps nothing.
    let many: Vec<NewQualitySample> = (0..200).map(|i| new("globex", "bulk", T0 + i)).collect();
    let ids: Vec<u64> = s
        .add_quality_samples(many)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.unwrap())
        .collect();
    assert_eq!(ids.len(), 200);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow in order");
    assert!(s.add_quality_samples(Vec::new()).await.unwrap().is_empty());

    let mut zero = all(None, None);
    zero.limit = 0;
    assert!(s.list_quality_samples(&zero).await.is_err());
}
