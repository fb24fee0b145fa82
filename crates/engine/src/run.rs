//! Running one claimed task until it rests: done, failed, waiting or queued for later.
//!
//! The shape: ask [`machine::next`] what to do, do it (several steps at once when
//! `depends_on` allows), commit each step's result as one [`Advance`] under the claim's
//! fencing token, and ask again. Every result is committed before the next decision is
//! taken from it, so a crash at any point loses at most the attempts in flight, which
//! run again with the same idempotency key (invariant 1). While it runs, a keeper
//! renews the task's lease (and the task's lock); if the lease is lost anyway (a pause
//! longer than the lease), the next commit is refused and the run stops without
//! writing: another node owns the task now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use holdfast_store::{
    Advance, Fence, FencingToken, LockAcquire, NewEvent, Step, StepStatus, StoreError, Task,
    TaskClaim, TaskStatus,
};
use serde_json::{Value, json};

use crate::definition::Workflow;
use crate::engine::Inner;
use crate::event::TaskEventKind;
use crate::machine::{self, Next, View, Work};
use crate::step::{Cx, Done, SHORT_WAIT, event};
use crate::template;

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One claimed task being run: what its work reads, and what this run learns.
struct Run<'a> {
    cx: Cx<'a>,
    st: State,
}

/// What a run learns as results commit.
struct State {
    task: Task,
    token: FencingToken,
    steps: HashMap<String, Step>,
    /// Steps found still waiting in this run, with their timer if they have one.
    waiting: HashMap<usize, Option<u64>>,
    /// Events to journal with the next commit.
    carry: Vec<NewEvent>,
}

/// The task's state after a result, when it can be committed with the result.
enum After {
    /// More work follows in this run.
    Busy,
    /// Every step is committed.
    Succeed(Value),
    /// Nothing to do until a wait ends or a timer comes.
    Rest(TaskStatus, Option<u64>),
}

/// The earliest retry due among `steps`.
fn retry_timer(workflow: &Workflow, steps: &HashMap<String, Step>) -> Option<u64> {
    workflow
        .steps
        .iter()
        .filter_map(|s| steps.get(&s.name))
        .filter(|r| r.status == StepStatus::Retrying)
        .filter_map(|r| r.next_attempt_at_ms)
        .min()
}

/// Runs `claim` until the task rests. Errors are logged by the caller; the task is
/// left for its lease to expire and be claimed again.
pub(crate) async fn run(engine: &Inner, claim: TaskClaim) -> Result<(), Stop> {
    let task = claim.task;
    let workflow = match engine.workflow(&task.workflow, task.workflow_version).await {
        Ok(w) => w,
        Err(crate::EngineError::Store(s)) => return Err(Stop::Store(s)),
        // The stored definition no longer loads (it was stored by a version of holdfast
        // with other rules): fail the task with the reason instead of claiming it again
        // at every lease expiry.
        Err(e) => {
            let mut a = Advance::new(&task.task_id, claim.token, TaskStatus::Failed);
            let error = format!("workflow {} v{}: {e}", task.workflow, task.workflow_version);
            a.events = vec![event("task_failed", json!({"error": error}))];
            a.last_error = Some(error);
            engine.store.advance(a, engine.clock.unix_millis()).await?;
            return Ok(());
        }
    };
    // A task with no checkpoint has no step record yet: skip the read.
    let steps = if task.last_checkpoint.is_none() {
        HashMap::new()
    } else {
        match engine.store.list_steps(&task.task_id).await {
            Ok(steps) => steps.into_iter().map(|s| (s.name.clone(), s)).collect(),
            // A committed output kept as an object is gone or changed: no run can
            // succeed, so fail with the reason instead of claiming it again forever.
            Err(e @ StoreError::ArtifactUnreadable { .. }) => {
                let mut a = Advance::new(&task.task_id, claim.token, TaskStatus::Failed);
                let error = e.to_string();
                tracing::error!(task_id = %task.task_id, error = %error, "failing the task");
                a.events = vec![event("task_failed", json!({"error": error}))];
                a.last_error = Some(error);
                engine.store.advance(a, engine.clock.unix_millis()).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut run = Run {
        cx: Cx {
            engine,
            task_id: task.task_id.clone(),
            tenant: Arc::from(task.tenant.as_str()),
            workflow_name: Arc::from(task.workflow.as_str()),
            input: task.input.clone(),
            workflow,
            fence: None,
            trace: crate::trace::TaskTrace::of(&task.task_id, task.traceparent.as_deref()),
        },
        st: State {
            token: claim.token,
            steps,
            waiting: HashMap::new(),
            carry: Vec::new(),
            task,
        },
    };
    if let Some(from) = claim.taken_over_from {
        run.st.carry.push(event(
            "taken_over",
            json!({"from": from, "node": engine.node_id}),
        ));
        run.cx.emit(TaskEventKind::TakenOver { from });
    }
    let keeper = engine.keep_lease(&run.cx.task_id, run.st.token);
    let result = async {
        if !run.take_lock(&keeper).await? {
            return Ok(());
        }
        run.drive().await
    }
    .await;
    keeper.stop();
    if let Some(fence) = &run.cx.fence {
        let now = engine.clock.unix_millis();
        if let Err(e) = engine
            .store
            .release_lock(&fence.lock, fence.token, now)
            .await
        {
            tracing::debug!(lock = %fence.lock, error = %e, "lock already gone");
        }
    }
    result
}

impl Run<'_> {
    /// Takes the workflow's lock, if it has one. `false`: busy, the task was requeued.
    async fn take_lock(&mut self, keeper: &crate::lease::LeaseKeeper) -> Result<bool, Stop> {
        let Some(lock) = &self.cx.workflow.lock else {
            return Ok(true);
        };
        let name = match template::render(lock, &self.context()) {
            Ok(name) => name,
            Err(e) => {
                self.finish_failed(format!("lock: {e}")).await?;
                return Ok(false);
            }
        };
        let now = self.cx.now();
        match self
            .cx
            .engine
            .store
            .acquire_lock(
                &name,
                &self.st.task.task_id,
                self.cx.engine.settings.lease,
                now,
            )
            .await
        {
            Ok(LockAcquire::Acquired(lease)) => {
                keeper.hold_lock(&lease.name, lease.token);
                self.cx.fence = Some(Fence {
                    lock: lease.name,
                    token: lease.token,
                });
                Ok(true)
            }
            Ok(LockAcquire::Busy {
                holder,
                expires_at_ms,
            }) => {
                let mut a = Advance::new(&self.st.task.task_id, self.st.token, TaskStatus::Queued);
                a.next_run_at_ms = Some(expires_at_ms.min(now + 1_000).max(now + 10));
                a.events = vec![event("lock_busy", json!({"lock": name, "holder": holder}))];
                self.cx.engine.store.advance(a, now).await?;
                Ok(false)
            }
            Err(StoreError::InvalidInput { .. }) => {
                self.finish_failed(format!("lock name {name:?} is not a valid name"))
                    .await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What templates see: the input, committed outputs, the task's id.
    fn context(&self) -> Value {
        let mut steps = serde_json::Map::new();
        for step in &self.cx.workflow.steps {
            if let Some(r) = self.st.steps.get(&step.name)
                && r.status.is_committed()
            {
                steps.insert(
                    step.name.clone(),
                    json!({"output": r.output.clone().unwrap_or(Value::Null)}),
                );
            }
        }
        json!({
            "input": self.st.task.input,
            "steps": steps,
            "task": {"id": self.st.task.task_id, "workflow": self.st.task.workflow},
        })
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        loop {
            let now = self.cx.now();
            let next = machine::next(View {
                workflow: &self.cx.workflow,
                steps: &self.st.steps,
                completed: &self.st.task.completed_steps,
                now_ms: now,
            });
            let work = match next {
                Next::Succeed { output } => return self.finish_succeeded(output).await,
                Next::Fail { error } => return self.finish_failed(error).await,
                Next::Idle { until } => {
                    if self.rest(until).await? {
                        return Ok(());
                    }
                    continue;
                }
                Next::Work(work) => work,
            };
            let work: Vec<Work> = work
                .into_iter()
                .filter(
                    |w| !matches!(w, Work::Check { step } if self.st.waiting.contains_key(step)),
                )
                .collect();
            if work.is_empty() {
                let until = retry_timer(&self.cx.workflow, &self.st.steps);
                if self.rest(until).await? {
                    return Ok(());
                }
                continue;
            }
            if self.run_all(work).await? {
                return Ok(());
            }
        }
    }

    /// Nothing can run now. Sleeps through a short wait (`false`: go on) or commits the
    /// task's rest state (`true`: this run is over).
    async fn rest(&mut self, retry_at: Option<u64>) -> Result<bool, Stop> {
        let now = self.cx.now();
        let timers = self.st.waiting.values().flatten().copied();
        let until = timers.chain(retry_at).min();
        if let Some(at) = until
            && at.saturating_sub(now) <= SHORT_WAIT.as_millis() as u64
        {
            let wake = self.cx.engine.clock.now() + Duration::from_millis(at.saturating_sub(now));
            self.cx.engine.clock.sleep_until(wake).await;
            // Look at the waiting steps again: their timers may have come.
            self.st.waiting.retain(|_, t| t.is_none_or(|t| t > at));
            return Ok(false);
        }
        let status = if self.st.waiting.is_empty() {
            TaskStatus::Queued
        } else {
            TaskStatus::Waiting
        };
        if status == TaskStatus::Queued && until.is_none() {
            // Nothing runs, nothing waits, nothing is due: a definition the machine
            // cannot finish. Failing says so instead of leaving the task queued forever.
            self.finish_failed("no step can run and none is waiting".to_string())
                .await?;
            return Ok(true);
        }
        let mut a = self.advance(status);
        a.next_run_at_ms = until;
        self.commit(a).await?;
        Ok(true)
    }

    fn advance(&mut self, status: TaskStatus) -> Advance {
        self.st.advance(&self.cx, status)
    }

    async fn commit(&mut self, a: Advance) -> Result<(), Stop> {
        commit(&self.cx, a).await
    }

    async fn finish_succeeded(&mut self, output: Value) -> Result<(), Stop> {
        let mut a = self.advance(TaskStatus::Succeeded);
        a.output = Some(output);
        a.pending_steps = Some(vec![]);
        a.events.push(event("task_succeeded", json!({})));
        self.commit(a).await?;
        self.st.emit_succeeded(&self.cx);
        Ok(())
    }

    async fn finish_failed(&mut self, error: String) -> Result<(), Stop> {
        let mut a = self.advance(TaskStatus::Failed);
        a.events.push(event("task_failed", json!({"error": error})));
        a.last_error = Some(error);
        self.commit(a).await?;
        let since = self.cx.now().saturating_sub(self.st.task.created_at_ms);
        self.cx.emit(TaskEventKind::Failed {
            duration: Duration::from_millis(since),
            cost_usd: self.st.task.cost_usd,
        });
        Ok(())
    }

    /// Runs `work` at once and commits each result as it finishes.
    async fn run_all(&mut self, work: Vec<Work>) -> Result<bool, Stop> {
        let context = self.context();
        let Run { cx, st } = self;
        let cx = &*cx;
        let mut running = FuturesUnordered::new();
        for w in work {
            let record = match w {
                Work::Run { step, .. } | Work::Check { step } | Work::Compensate { step } => {
                    st.steps.get(&cx.workflow.steps[step].name).cloned()
                }
            };
            let ctx = &context;
            running.push(async move {
                let started = cx.engine.clock.now();
                let done = match w {
                    Work::Run { step, attempt } => cx.attempt(step, attempt, ctx).await,
                    Work::Check { step } => cx.check(step, record.as_ref(), ctx).await,
                    Work::Compensate { step } => cx.compensate(step, record.as_ref(), ctx).await,
                };
                let took = cx.engine.clock.now().saturating_duration_since(started);
                (done, took)
            });
        }
        while let Some((done, took)) = running.next().await {
            // Only the last result may carry the task's next state: with others in
            // flight, the task is still busy.
            let last = running.is_empty();
            if st.apply(cx, done?, took, last).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl State {
    fn advance(&mut self, cx: &Cx<'_>, status: TaskStatus) -> Advance {
        let mut a = Advance::new(&self.task.task_id, self.token, status);
        a.fence = cx.fence.clone();
        a.events = std::mem::take(&mut self.carry);
        a
    }

    fn emit_succeeded(&self, cx: &Cx<'_>) {
        let cost_usd = self.task.cost_usd;
        let duration = Duration::from_millis(cx.now().saturating_sub(self.task.created_at_ms));
        cx.emit(TaskEventKind::Succeeded { duration, cost_usd });
    }

    /// Commits one result and updates what this run knows. The last result of a batch
    /// also carries the task's next state when that needs no more work (done, or resting
    /// on a wait or a timer), saving a commit; `true` then: this run is over.
    async fn apply(
        &mut self,
        cx: &Cx<'_>,
        done: Done,
        took: Duration,
        last: bool,
    ) -> Result<bool, Stop> {
        if let Some(until) = done.still_waiting {
            self.waiting.insert(done.step, until);
            return Ok(false);
        }
        let Some(update) = done.update else {
            return Ok(false);
        };
        let mut a = self.advance(cx, TaskStatus::Running);
        a.events.extend(done.events);
        a.jobs = done.jobs;
        a.escalation = done.escalation;
        let name = update.name.clone();
        let status = update.status;
        let cost = update.cost_usd;
        let mut record = Step {
            task_id: self.task.task_id.clone(),
            name: name.clone(),
            status,
            attempt: update.attempt,
            output: update
                .output
                .clone()
                .or_else(|| self.steps.get(&name).and_then(|r| r.output.clone())),
            error: update.error.clone(),
            next_attempt_at_ms: update.next_attempt_at_ms,
            updated_at_ms: cx.now(),
        };
        a.step = Some(update);
        let mut steps = self.steps.clone();
        steps.insert(name.clone(), record.clone());
        let mut completed = self.task.completed_steps.clone();
        if matches!(status, StepStatus::Succeeded | StepStatus::Skipped)
            && !completed.contains(&name)
        {
            completed.push(name.clone());
        }
        let mut waiting = self.waiting.clone();
        if status == StepStatus::Waiting {
            waiting.insert(done.step, record.next_attempt_at_ms);
        } else {
            waiting.remove(&done.step);
        }
        a.pending_steps = Some(machine::pending(&cx.workflow, &steps));
        let fold = if last {
            after(cx, &steps, &completed, &waiting)
        } else {
            After::Busy
        };
        let mut finished = None;
        match fold {
            After::Busy => {}
            After::Succeed(output) => {
                a.status = TaskStatus::Succeeded;
                a.output = Some(output);
                a.events.push(event("task_succeeded", json!({})));
                finished = Some(true);
            }
            After::Rest(rest, until) => {
                a.status = rest;
                a.next_run_at_ms = until;
                finished = Some(false);
            }
        }
        commit(cx, a).await?;
        record.updated_at_ms = cx.now();
        self.task.completed_steps = completed;
        self.task.cost_usd += cost;
        self.waiting = waiting;
        self.steps = steps;
        for mut kind in done.live {
            if let TaskEventKind::StepSucceeded { duration, .. } = &mut kind {
                *duration = took;
            }
            cx.emit(kind);
        }
        if finished == Some(true) {
            self.emit_succeeded(cx);
        }
        Ok(finished.is_some())
    }
}

/// What the task would do after `steps`, if it needs no more work now.
fn after(
    cx: &Cx<'_>,
    steps: &HashMap<String, Step>,
    completed: &[String],
    waiting: &HashMap<usize, Option<u64>>,
) -> After {
    let now = cx.now();
    let next = machine::next(View {
        workflow: &cx.workflow,
        steps,
        completed,
        now_ms: now,
    });
    let retry_at = match next {
        Next::Succeed { output } => return After::Succeed(output),
        Next::Fail { .. } => return After::Busy,
        Next::Idle { until } => until,
        Next::Work(work) => {
            let only_waits = work
                .iter()
                .all(|w| matches!(w, Work::Check { step } if waiting.contains_key(step)));
            if !only_waits {
                return After::Busy;
            }
            retry_timer(&cx.workflow, steps)
        }
    };
    let until = waiting.values().flatten().copied().chain(retry_at).min();
    if until.is_some_and(|at| at.saturating_sub(now) <= SHORT_WAIT.as_millis() as u64) {
        return After::Busy;
    }
    match (waiting.is_empty(), until) {
        (true, None) => After::Busy,
        (true, Some(_)) => After::Rest(TaskStatus::Queued, until),
        (false, _) => After::Rest(TaskStatus::Waiting, until),
    }
}

/// The first pause before a commit is tried again while the store is unavailable.
const COMMIT_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two tries of a commit.
const COMMIT_RETRY_CAP: Duration = Duration::from_secs(2);

/// Commits `a`. While the store is unavailable the run pauses and tries the same
/// commit again with backoff, rather than running further steps on a result that is
/// not durable; it gives up once the task's lease could no longer hold (the keeper
/// cannot renew it meanwhile), and the task resumes wherever it is claimed next. A
/// commit tried again after a timeout that had in fact committed is refused as stale
/// or conflicting, never committed twice.
async fn commit(cx: &Cx<'_>, a: Advance) -> Result<(), Stop> {
    let clock = &cx.engine.clock;
    let give_up = clock.now() + cx.engine.settings.lease;
    let mut pause = COMMIT_RETRY_FIRST;
    loop {
        match cx.engine.store.advance(a.clone(), cx.now()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_unavailable() && clock.now() + pause < give_up => {
                tracing::info!(
                    task_id = %cx.task_id,
                    error = %e,
                    retry_in_ms = pause.as_millis() as u64,
                    "the store cannot commit this step's result yet; the task waits and tries again"
                );
                clock.sleep_until(clock.now() + pause).await;
                pause = pause.saturating_mul(2).min(COMMIT_RETRY_CAP);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
