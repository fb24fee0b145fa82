//! Cases on tenants: idempotency keys are a tenant's own, and every list, queue and claim
//! that names a tenant sees only that tenant's records.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Advance, EscalationFilter, NewEscalation, NewJob, NewTask, StepStatus, StepUpdate, Store,
    Submitted, TaskFilter, TaskStatus,
};
use serde_json::json;

use super::tasks::{LEASE, T0, new_task, workflow};

const JOB_LEASE: Duration = Duration::from_secs(10);

fn of(tenant: &str, id: &str, key: Option<&str>) -> NewTask {
    NewTask {
        tenant: tenant.into(),
        ..new_task(id, key)
    }
}

pub(crate) async fn idempotency_keys_are_each_tenants_own(s: Arc<dyn Store>) {
    workflow(&s).await;
    let acme = s
        .submit_task(of("acme", "a1", Some("order-1")), T0)
        .await
        .unwrap();
    let Submitted::Created(acme) = acme else {
        panic!("expected a new task")
    };
    assert_eq!(acme.tenant, "acme");
    let globex = s
        .submit_task(of("globex", "g1", Some("order-1")), T0 + 1)
        .await
        .unwrap();
    let Submitted::Created(globex) = globex else {
        panic!("another tenant's key must not find acme's task: {globex:?}")
    };
    assert_eq!(
        (globex.task_id.as_str(), globex.tenant.as_str()),
        ("g1", "globex")
    );
    let again = s
        .submit_task(of("acme", "a2", Some("order-1")), T0 + 2)
        .await
        .unwrap();
    assert_eq!(again, Submitted::Existing(acme));
    assert!(s.get_task("a2").await.unwrap().is_none());
}

/// Puts a task of `tenant` in `Waiting` on a job of queue `q` (step `a`) and an
/// escalation (step `b`), with a third step in the retry queue.
async fn waiting(s: &Arc<dyn Store>, tenant: &str, id: &str) {
    s.submit_task(of(tenant, id, None), T0).await.unwrap();
    let claim = s
        .claim_tasks("node-a", LEASE, 1, T0)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(claim.task.task_id, id);
    let retrying = StepUpdate {
        name: "c".into(),
        status: StepStatus::Retrying,
        attempt: 1,
        output: None,
        error: Some("timeout".into()),
        next_attempt_at_ms: Some(T0 + 60_000),
        cost_usd: 0.0,
    };
    let wait = Advance {
        step: Some(retrying),
        jobs: vec![NewJob {
            job_id: format!("{id}/a"),
            queue: "q".into(),
            step: "a".into(),
            payload: json!({}),
        }],
        escalation: Some(NewEscalation {
            escalation_id: format!("esc-{id}"),
            step: "b".into(),
            reason: "a person decides".into(),
            payload: json!({}),
        }),
        ..Advance::new(id, claim.token, TaskStatus::Waiting)
    };
    s.advance(wait, T0 + 1).await.unwrap();
}

pub(crate) async fn lists_queues_and_claims_see_only_their_tenant(s: Arc<dyn Store>) {
    workflow(&s).await;
    waiting(&s, "acme", "a1").await;
    waiting(&s, "globex", "g1").await;

    let only = |tenant: &str| TaskFilter {
        tenant: Some(tenant.into()),
        ..TaskFilter::default()
    };
    let page = s.list_tasks(&only("acme")).await.unwrap();
    let ids: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["a1"]);
    assert_eq!(
        s.list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .tasks
            .len(),
        2
    );
    assert!(
        s.list_tasks(&only("nobody"))
            .await
            .unwrap()
            .tasks
            .is_empty()
    );

    let escalations = |tenant: Option<&str>| EscalationFilter {
        tenant: tenant.map(String::from),
        ..EscalationFilter::default()
    };
    let open = s
        .list_escalations(&escalations(Some("globex")))
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].task_id.as_str(), open[0].tenant.as_str()),
        ("g1", "globex")
    );
    assert_eq!(
        s.list_escalations(&escalations(None)).await.unwrap().len(),
        2
    );
    let esc = s.get_escalation("esc-a1").await.unwrap().unwrap();
    assert_eq!(esc.tenant, "acme");

    let queue = s.retry_queue(Some("acme"), 10).await.unwrap();
    let queued: Vec<&str> = queue.iter().map(|st| st.task_id.as_str()).collect();
    assert_eq!(queued, ["a1"]);
    assert_eq!(s.retry_queue(None, 10).await.unwrap().len(), 2);

    // A worker of globex claims globex's job only, however many acme has waiting.
    let jobs = s
        .claim_jobs("q", Some("globex"), "w", JOB_LEASE, 10, T0 + 2)
        .await
        .unwrap();
    let claimed: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.job_id.as_str(), j.tenant.as_str()))
        .collect();
    assert_eq!(claimed, [("g1/a", "globex")]);
    assert!(
        s.claim_jobs("q", Some("globex"), "w", JOB_LEASE, 10, T0 + 3)
            .await
            .unwrap()
            .is_empty()
    );
    let acme_job = s.get_job("a1/a").await.unwrap().unwrap();
    assert_eq!(acme_job.tenant, "acme");
    let rest = s
        .claim_jobs("q", None, "w", JOB_LEASE, 10, T0 + 4)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].job_id, "a1/a");
}
