//! An [`Advance`] checked and turned into the values both backends write.
//!
//! The derived fields of a task (`completed_steps`, `retry_count`, `cost_usd`,
//! `last_checkpoint`, the lease kept or dropped, when it runs next) are decided here,
//! once, from the advance; the backends only bind these values into their SQL. That
//! keeps SQLite and PostgreSQL from drifting apart, and keeps every check ahead of the
//! transaction (invariant 6).

use crate::task::{Advance, StepStatus, StepUpdate, TaskStatus};
use crate::validate::{json, millis, name, names_json, opt_json, text};
use crate::{Result, StoreError};

/// What an advance writes, checked and serialised.
pub(crate) struct AdvancePlan {
    pub(crate) now: i64,
    /// The new status's stored spelling.
    pub(crate) status: &'static str,
    /// `next_run_at` for a `Queued` task (due now by default) or a `Waiting` one with a
    /// timer; `None` otherwise (kept when `Running`: it is the lease's expiry).
    pub(crate) next_run: Option<i64>,
    /// Whether the task is to wait: the store then queues it instead if what it waits
    /// for has already finished (a wake that came before the wait must not be lost).
    pub(crate) waits: bool,
    pub(crate) pending: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) last_error: Option<String>,
    /// 1 when the step is scheduled for retry.
    pub(crate) retried: i64,
    pub(crate) cost: f64,
    /// The step to add to `completed_steps`, if it succeeded or was skipped.
    pub(crate) completed: Option<String>,
    /// The step whose result this is (the new checkpoint).
    pub(crate) checkpoint: Option<String>,
    pub(crate) step_output: Option<String>,
    pub(crate) events: Vec<String>,
    pub(crate) job_payloads: Vec<String>,
    pub(crate) escalation_payload: Option<String>,
}

impl AdvancePlan {
    /// The number of journal events, as stored.
    pub(crate) fn n_events(&self) -> i64 {
        self.events.len() as i64
    }

    /// The bytes of its documents and texts: what a write of it costs in transit.
    pub(crate) fn doc_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let all = |v: &[String]| v.iter().map(String::len).sum::<usize>();
        opt(&self.pending)
            + opt(&self.output)
            + opt(&self.last_error)
            + opt(&self.step_output)
            + opt(&self.escalation_payload)
            + all(&self.events)
            + all(&self.job_payloads)
    }
}

/// Checks `a` completely and plans its write at `now_ms`.
pub(crate) fn plan(a: &Advance, max: usize, now_ms: u64) -> Result<AdvancePlan> {
    name("advance.task_id", &a.task_id)?;
    if let Some(step) = &a.step {
        check_step(step, max)?;
    }
    check_parts(a, max)?;
    let now = millis("now", now_ms)?;
    let step = a.step.as_ref();
    let next_run = match a.status {
        TaskStatus::Queued => Some(millis(
            "advance.next_run_at_ms",
            a.next_run_at_ms.unwrap_or(now_ms),
        )?),
        TaskStatus::Waiting => a
            .next_run_at_ms
            .map(|at| millis("advance.next_run_at_ms", at))
            .transpose()?,
        TaskStatus::Running
        | TaskStatus::Succeeded
        | TaskStatus::Failed
        | TaskStatus::Cancelled => None,
    };
    let completes =
        |s: &&StepUpdate| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped);
    Ok(AdvancePlan {
        now,
        status: a.status.as_str(),
        next_run,
        waits: a.status == TaskStatus::Waiting,
        pending: a.pending_steps.as_deref().map(names_json),
        output: opt_json("advance.output", a.output.as_ref(), max)?,
        last_error: a
            .last_error
            .clone()
            .or_else(|| step.and_then(|s| s.error.clone())),
        retried: i64::from(step.is_some_and(|s| s.status == StepStatus::Retrying)),
        cost: step.map_or(0.0, |s| s.cost_usd),
        completed: step.filter(completes).map(|s| s.name.clone()),
        checkpoint: step.map(|s| s.name.clone()),
        step_output: opt_json("step.output", step.and_then(|s| s.output.as_ref()), max)?,
        events: a
            .events
            .iter()
            .map(|e| json("event.data", &e.data, max))
            .collect::<Result<_>>()?,
        job_payloads: a
            .jobs
            .iter()
            .map(|j| json("job.payload", &j.payload, max))
            .collect::<Result<_>>()?,
        escalation_payload: opt_json(
            "escalation.payload",
            a.escalation.as_ref().map(|e| &e.payload),
            max,
        )?,
    })
}

fn check_step(step: &StepUpdate, max: usize) -> Result<()> {
    name("step.name", &step.name)?;
    if step.status == StepStatus::Retrying && step.next_attempt_at_ms.is_none() {
        return Err(StoreError::invalid(
            "step.next_attempt_at_ms",
            "required when retrying",
        ));
    }
    if !step.cost_usd.is_finite() || step.cost_usd < 0.0 {
        return Err(StoreError::invalid(
            "step.cost_usd",
            "must be finite and ≥ 0",
        ));
    }
    if let Some(e) = &step.error {
        text("step.error", e, max)?;
    }
    if let Some(at) = step.next_attempt_at_ms {
        millis("step.next_attempt_at_ms", at)?;
    }
    Ok(())
}

fn check_parts(a: &Advance, max: usize) -> Result<()> {
    if let Some(pending) = &a.pending_steps {
        pending
            .iter()
            .try_for_each(|s| name("advance.pending_steps", s))?;
    }
    if let Some(e) = &a.last_error {
        text("advance.last_error", e, max)?;
    }
    if let Some(at) = a.next_run_at_ms {
        millis("advance.next_run_at_ms", at)?;
    }
    a.events
        .iter()
        .try_for_each(|e| name("event.kind", &e.kind))?;
    for j in &a.jobs {
        name("job.job_id", &j.job_id)?;
        name("job.queue", &j.queue)?;
        name("job.step", &j.step)?;
    }
    if let Some(e) = &a.escalation {
        name("escalation.escalation_id", &e.escalation_id)?;
        name("escalation.step", &e.step)?;
        text("escalation.reason", &e.reason, max)?;
    }
    if let Some(f) = &a.fence {
        name("fence.lock", &f.lock)?;
    }
    Ok(())
}
