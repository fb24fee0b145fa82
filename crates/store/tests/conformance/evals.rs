//! Cases on evaluation runs: a case is recorded once, an interrupted run resumes with
//! its cases and settings, a run id is its tenant's own, bad input stores nothing.

use std::sync::Arc;

use holdfast_store::{
    EvalOutcome, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult, NewEvalRun, Store,
    StoreError,
};
use serde_json::json;

use super::tasks::T0;

fn new_run(tenant: &str, run_id: &str, sha: &str) -> NewEvalRun {
    NewEvalRun {
        run_id: run_id.into(),
        tenant: tenant.into(),
        suite: "support".into(),
        suite_sha256: sha.into(),
        subject: json!({"route": "smart", "via": "in-process"}),
        settings: json!({"seed": 7, "concurrency": 4}),
        cases: 3,
    }
}

fn case(id: &str, outcome: EvalOutcome) -> NewEvalResult {
    NewEvalResult {
        case_id: id.into(),
        outcome,
        score: if outcome == EvalOutcome::Passed {
            1.0
        } else {
            0.25
        },
        tags: vec!["labeled".into()],
        verdicts: json!([{"grader": "contains", "score": 1.0, "reason": "contains \"Paris\""}]),
        answer: json!({"text": "Paris."}),
        error: None,
        cost_usd: 0.0012,
        latency_ms: 42,
    }
}

pub(crate) async fn eval_cases_are_recorded_once_and_a_run_resumes(s: Arc<dyn Store>) {
    let started = s
        .start_eval_run(new_run("acme", "nightly", "sha-1"), T0)
        .await
        .unwrap();
    let EvalRunStart::Created(run) = started else {
        panic!("a new run: {started:?}")
    };
    assert_eq!(
        (run.status, run.cases, run.summary),
        (EvalStatus::Running, 3, None)
    );
    s.record_eval_result("acme", "nightly", case("c1", EvalOutcome::Passed), T0 + 1)
        .await
        .unwrap();
    s.record_eval_result("acme", "nightly", case("c2", EvalOutcome::Failed), T0 + 2)
        .await
        .unwrap();
    let again = s
        .record_eval_result("acme", "nightly", case("c1", EvalOutcome::Failed), T0 + 3)
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    let interrupted = s
        .finish_eval_run("acme", "nightly", EvalStatus::Interrupted, None, T0 + 4)
        .await
        .unwrap();
    assert_eq!(interrupted.finished_at_ms, Some(T0 + 4));

    // Running it again resumes it, with its own settings and both cases.
    let mut rerun = new_run("acme", "nightly", "sha-1");
    rerun.settings = json!({"seed": 99});
    let resumed = s.start_eval_run(rerun, T0 + 5).await.unwrap();
    let EvalRunStart::Resumed(run) = resumed else {
        panic!("a resumed run: {resumed:?}")
    };
    assert_eq!(run.status, EvalStatus::Running);
    assert_eq!(run.settings, json!({"seed": 7, "concurrency": 4}));
    assert_eq!((run.created_at_ms, run.updated_at_ms), (T0, T0 + 5));
    let results = s.eval_results("acme", "nightly").await.unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r.case_id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"]);
    let first = &results[0];
    assert_eq!(
        (
            first.outcome,
            first.score,
            first.latency_ms,
            first.recorded_at_ms
        ),
        (EvalOutcome::Passed, 1.0, 42, T0 + 1)
    );
    assert_eq!(first.tags, ["labeled"]);
    assert_eq!(first.answer, json!({"text": "Paris."}));
    assert_eq!(first.verdicts[0]["grader"], "contains");
    assert!((first.cost_usd - 0.0012).abs() < 1e-12);

    // The same id never runs other cases.
    for other in [new_run("acme", "nightly", "sha-2"), {
        let mut r = new_run("acme", "nightly", "sha-1");
        r.suite = "billing".into();
        r
    }] {
        let refused = s.start_eval_run(other, T0 + 6).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { .. })),
            "{refused:?}"
        );
    }

    s.record_eval_result("acme", "nightly", case("c3", EvalOutcome::Error), T0 + 7)
        .await
        .unwrap();
    let summary = json!({"gate": {"passed": false}});
    let done = s
        .finish_eval_run(
            "acme",
            "nightly",
            EvalStatus::Finished,
            Some(summary.clone()),
            T0 + 8,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.summary),
        (EvalStatus::Finished, Some(summary))
    );
    let refused = s
        .finish_eval_run("acme", "nightly", EvalStatus::Running, None, T0 + 9)
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InvalidInput {
                field: "eval.status",
                ..
            })
        ),
        "{refused:?}"
    );
    let missing = s
        .record_eval_result("acme", "nope", case("c1", EvalOutcome::Passed), T0)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

pub(crate) async fn eval_runs_are_each_tenants_own(s: Arc<dyn Store>) {
    for (i, tenant) in ["acme", "globex"].into_iter().enumerate() {
        let started = s
            .start_eval_run(new_run(tenant, "nightly", "sha-1"), T0 + i as u64)
            .await
            .unwrap();
        assert!(matches!(started, EvalRunStart::Created(_)), "{tenant}");
    }
    s.start_eval_run(new_run("acme", "weekly", "sha-1"), T0 + 10)
        .await
        .unwrap();
    s.record_eval_result("globex", "nightly", case("g1", EvalOutcome::Passed), T0)
        .await
        .unwrap();
    assert!(s.eval_results("acme", "nightly").await.unwrap().is_empty());
    assert_eq!(s.eval_results("globex", "nightly").await.unwrap().len(), 1);
    let missing = s
        .record_eval_result("globex", "weekly", case("g2", EvalOutcome::Passed), T0)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(s.get_eval_run("globex", "weekly").await.unwrap().is_none());
    let acme = EvalRunFilter {
        tenant: Some("acme".into()),
        ..EvalRunFilter::default()
    };
    let listed: Vec<String> = s
        .list_eval_runs(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.tenant, r.run_id))
        .collect();
    assert_eq!(listed, ["acme/weekly", "acme/nightly"], "newest first");
    let all = s.list_eval_runs(&EvalRunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let by_suite = EvalRunFilter {
        suite: Some("billing".into()),
        ..EvalRunFilter::default()
    };
    assert!(s.list_eval_runs(&by_suite).await.unwrap().is_empty());
}

pub(crate) async fn bad_eval_input_is_refused_with_nothing_stored(s: Arc<dyn Store>) {
    let mut bad = new_run("acme", "has space", "sha");
    let refused = s.start_eval_run(bad.clone(), T0).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InvalidInput {
                field: "eval.run_id",
                ..
            })
        ),
        "{refused:?}"
    );
    bad.run_id = "ok".into();
    bad.suite_sha256 = String::new();
    assert!(s.start_eval_run(bad, T0).await.is_err());
    assert!(s.get_eval_run("acme", "ok").await.unwrap().is_none());
    s.start_eval_run(new_run("acme", "r", "sha"), T0)
        .await
        .unwrap();
    let cases = [
        ("eval.score", {
            let mut c = case("c", EvalOutcome::Passed);
            c.score = 1.5;
            c
        }),
        ("eval.cost_usd", {
            let mut c = case("c", EvalOutcome::Passed);
            c.cost_usd = f64::NAN;
            c
        }),
        ("eval.case_id", case("a case", EvalOutcome::Passed)),
        ("eval.tags", {
            let mut c = case("c", EvalOutcome::Passed);
            c.tags = vec![String::new()];
            c
        }),
    ];
    for (field, c) in cases {
        let refused = s.record_eval_result("acme", "r", c, T0).await;
        assert!(
            matches!(&refused, Err(StoreError::InvalidInput { field: f, .. }) if *f == field),
            "{field}: {refused:?}"
        );
    }
    assert!(s.eval_results("acme", "r").await.unwrap().is_empty());
}

pub(crate) async fn concurrent_case_results_all_commit(s: Arc<dyn Store>) {
    s.start_eval_run(new_run("acme", "load", "sha"), T0)
        .await
        .unwrap();
    let writes = (0..200).map(|i| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let outcome = if i % 3 == 0 {
                EvalOutcome::Failed
            } else {
                EvalOutcome::Passed
            };
            s.record_eval_result("acme", "load", case(&format!("c{i}"), outcome), T0 + i)
                .await
        })
    });
    for write in futures_join(writes).await {
        write.unwrap();
    }
    let results = s.eval_results("acme", "load").await.unwrap();
    assert_eq!(results.len(), 200);
    let failed = results
        .iter()
        .filter(|r| r.outcome == EvalOutcome::Failed)
        .count();
    assert_eq!(failed, 67);
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}
