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
use holdfast_policy::Outcome;
use holdfast_store::{
    Advance, EscalationStatus, Fence, FencingToken, JobStatus, LockAcquire, NewEscalation,
    NewEvent, NewJob, Resolution, Step, StepStatus, StepUpdate, StoreError, Task, TaskClaim,
    TaskStatus,
};
use serde_json::{Value, json};

use crate::attempt::{Failure, Identity, Success, Verdict, verdict};
use crate::definition::{Action, OnExhausted, OnTimeout, StepDef, Workflow};
use crate::engine::Inner;
use crate::event::{TaskEvent, TaskEventKind};
use crate::machine::{self, COMPENSATE_PREFIX, Next, View, Work};
use crate::template;

/// Waits shorter than this are slept through while holding the lease, instead of being
/// written to the store and claimed again: a round trip costs more than the wait.
const SHORT_WAIT: Duration = Duration::from_millis(200);

/// The step's idempotency key: the same on every attempt (invariant 1).
pub fn idempotency_key(task_id: &str, step: &str) -> String {
    format!("{task_id}/{step}")
}

/// The id of the worker job of a step's attempt.
pub fn job_id(task_id: &str, step: &str, attempt: u32) -> String {
    format!("{task_id}:{step}:{attempt}")
}

/// The id of the escalation opened by a step's attempt.
pub fn escalation_id(task_id: &str, step: &str, attempt: u32) -> String {
    format!("{task_id}:{step}:{attempt}")
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One claimed task being run.
struct Run<'a> {
    engine: &'a Inner,
    task: Task,
    token: FencingToken,
    workflow: Arc<Workflow>,
    steps: HashMap<String, Step>,
    fence: Option<Fence>,
    /// Steps found still waiting in this run, with their timer if they have one.
    waiting: HashMap<usize, Option<u64>>,
    /// Events to journal with the next commit.
    carry: Vec<NewEvent>,
}

/// What one piece of work produced.
struct Done {
    step: usize,
    update: Option<StepUpdate>,
    events: Vec<NewEvent>,
    jobs: Vec<NewJob>,
    escalation: Option<NewEscalation>,
    live: Vec<TaskEventKind>,
    /// The step still waits (until the timer, if any); nothing to commit.
    still_waiting: Option<Option<u64>>,
}

impl Done {
    fn commit(step: usize, update: StepUpdate, event: NewEvent) -> Self {
        Done {
            step,
            update: Some(update),
            events: vec![event],
            jobs: vec![],
            escalation: None,
            live: vec![],
            still_waiting: None,
        }
    }

    fn waiting(step: usize, until: Option<u64>) -> Self {
        Done {
            step,
            update: None,
            events: vec![],
            jobs: vec![],
            escalation: None,
            live: vec![],
            still_waiting: Some(until),
        }
    }
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

fn event(kind: &str, data: Value) -> NewEvent {
    NewEvent {
        kind: kind.to_string(),
        data,
    }
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
    let steps = engine
        .store
        .list_steps(&task.task_id)
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut run = Run {
        engine,
        token: claim.token,
        workflow,
        steps,
        fence: None,
        waiting: HashMap::new(),
        carry: Vec::new(),
        task,
    };
    if let Some(from) = claim.taken_over_from {
        run.carry.push(event(
            "taken_over",
            json!({"from": from, "node": engine.node_id}),
        ));
        run.emit(TaskEventKind::TakenOver { from });
    }
    let keeper = engine.keep_lease(&run.task.task_id, run.token);
    let result = async {
        if !run.take_lock(&keeper).await? {
            return Ok(());
        }
        run.drive().await
    }
    .await;
    keeper.stop();
    if let Some(fence) = &run.fence {
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
    fn now(&self) -> u64 {
        self.engine.clock.unix_millis()
    }

    fn emit(&self, kind: TaskEventKind) {
        (self.engine.events)(&TaskEvent {
            task_id: self.task.task_id.clone(),
            workflow: Arc::from(self.task.workflow.as_str()),
            kind,
        });
    }

    /// Takes the workflow's lock, if it has one. `false`: busy, the task was requeued.
    async fn take_lock(&mut self, keeper: &crate::engine::LeaseKeeper) -> Result<bool, Stop> {
        let Some(lock) = &self.workflow.lock else {
            return Ok(true);
        };
        let name = match template::render(lock, &self.context()) {
            Ok(name) => name,
            Err(e) => {
                self.finish_failed(format!("lock: {e}")).await?;
                return Ok(false);
            }
        };
        let now = self.now();
        match self
            .engine
            .store
            .acquire_lock(&name, &self.task.task_id, self.engine.settings.lease, now)
            .await
        {
            Ok(LockAcquire::Acquired(lease)) => {
                keeper.hold_lock(&lease.name, lease.token);
                self.fence = Some(Fence {
                    lock: lease.name,
                    token: lease.token,
                });
                Ok(true)
            }
            Ok(LockAcquire::Busy {
                holder,
                expires_at_ms,
            }) => {
                let mut a = Advance::new(&self.task.task_id, self.token, TaskStatus::Queued);
                a.next_run_at_ms = Some(expires_at_ms.min(now + 1_000).max(now + 10));
                a.events = vec![event("lock_busy", json!({"lock": name, "holder": holder}))];
                self.engine.store.advance(a, now).await?;
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
        for step in &self.workflow.steps {
            if let Some(r) = self.steps.get(&step.name)
                && r.status.is_committed()
            {
                steps.insert(
                    step.name.clone(),
                    json!({"output": r.output.clone().unwrap_or(Value::Null)}),
                );
            }
        }
        json!({
            "input": self.task.input,
            "steps": steps,
            "task": {"id": self.task.task_id, "workflow": self.task.workflow},
        })
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        loop {
            let now = self.now();
            let next = machine::next(View {
                workflow: &self.workflow,
                steps: &self.steps,
                completed: &self.task.completed_steps,
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
                .filter(|w| !matches!(w, Work::Check { step } if self.waiting.contains_key(step)))
                .collect();
            if work.is_empty() {
                let until = retry_timer(&self.workflow, &self.steps);
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
        let now = self.now();
        let timers = self.waiting.values().flatten().copied();
        let until = timers.chain(retry_at).min();
        if let Some(at) = until
            && at.saturating_sub(now) <= SHORT_WAIT.as_millis() as u64
        {
            let wake = self.engine.clock.now() + Duration::from_millis(at.saturating_sub(now));
            self.engine.clock.sleep_until(wake).await;
            // Look at the waiting steps again: their timers may have come.
            self.waiting.retain(|_, t| t.is_none_or(|t| t > at));
            return Ok(false);
        }
        let status = if self.waiting.is_empty() {
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
        let mut a = Advance::new(&self.task.task_id, self.token, status);
        a.fence = self.fence.clone();
        a.events = std::mem::take(&mut self.carry);
        a
    }

    async fn commit(&mut self, a: Advance) -> Result<(), Stop> {
        let now = self.now();
        self.engine.store.advance(a, now).await?;
        Ok(())
    }

    async fn finish_succeeded(&mut self, output: Value) -> Result<(), Stop> {
        let mut a = self.advance(TaskStatus::Succeeded);
        a.output = Some(output);
        a.pending_steps = Some(vec![]);
        a.events.push(event("task_succeeded", json!({})));
        self.commit(a).await?;
        self.emit_succeeded();
        Ok(())
    }

    fn emit_succeeded(&self) {
        let cost_usd = self.task.cost_usd;
        let duration = Duration::from_millis(self.now().saturating_sub(self.task.created_at_ms));
        self.emit(TaskEventKind::Succeeded { duration, cost_usd });
    }

    async fn finish_failed(&mut self, error: String) -> Result<(), Stop> {
        let mut a = self.advance(TaskStatus::Failed);
        a.events.push(event("task_failed", json!({"error": error})));
        a.last_error = Some(error);
        self.commit(a).await?;
        self.emit(TaskEventKind::Failed {
            cost_usd: self.task.cost_usd,
        });
        Ok(())
    }

    /// Runs `work` at once and commits each result as it comes.
    async fn run_all(&mut self, work: Vec<Work>) -> Result<bool, Stop> {
        let context = self.context();
        let mut running = FuturesUnordered::new();
        for w in work {
            let record = match w {
                Work::Run { step, .. } | Work::Check { step } | Work::Compensate { step } => {
                    self.steps.get(&self.workflow.steps[step].name).cloned()
                }
            };
            let ctx = &context;
            let this = &*self;
            running.push(async move {
                let started = this.engine.clock.now();
                let done = match w {
                    Work::Run { step, attempt } => this.attempt(step, attempt, ctx).await,
                    Work::Check { step } => this.check(step, record.as_ref(), ctx).await,
                    Work::Compensate { step } => this.compensate(step, record.as_ref(), ctx).await,
                };
                (
                    done,
                    this.engine.clock.now().saturating_duration_since(started),
                )
            });
        }
        let mut results = Vec::new();
        while let Some((done, took)) = running.next().await {
            results.push((done?, took));
        }
        drop(running);
        let n = results.len();
        for (i, (done, took)) in results.into_iter().enumerate() {
            if self.apply(done, took, i + 1 == n).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Commits one result and updates what this run knows. The last result of a batch
    /// also carries the task's next state when that needs no more work (done, or resting
    /// on a wait or a timer), saving a commit; `true` then: this run is over.
    async fn apply(&mut self, done: Done, took: Duration, last: bool) -> Result<bool, Stop> {
        if let Some(until) = done.still_waiting {
            self.waiting.insert(done.step, until);
            return Ok(false);
        }
        let Some(update) = done.update else {
            return Ok(false);
        };
        let mut a = self.advance(TaskStatus::Running);
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
            updated_at_ms: self.now(),
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
        a.pending_steps = Some(machine::pending(&self.workflow, &steps));
        let fold = if last {
            self.after(&steps, &completed, &waiting)
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
        self.commit(a).await?;
        record.updated_at_ms = self.now();
        self.task.completed_steps = completed;
        self.task.cost_usd += cost;
        self.waiting = waiting;
        self.steps = steps;
        for mut kind in done.live {
            if let TaskEventKind::StepSucceeded { duration, .. } = &mut kind {
                *duration = took;
            }
            self.emit(kind);
        }
        if finished == Some(true) {
            self.emit_succeeded();
        }
        Ok(finished.is_some())
    }

    /// What the task would do after `steps`, if it needs no more work now.
    fn after(
        &self,
        steps: &HashMap<String, Step>,
        completed: &[String],
        waiting: &HashMap<usize, Option<u64>>,
    ) -> After {
        let now = self.now();
        let next = machine::next(View {
            workflow: &self.workflow,
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
                retry_timer(&self.workflow, steps)
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

    /// Runs attempt `attempt` of step `i`.
    async fn attempt(&self, i: usize, attempt: u32, ctx: &Value) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let key = idempotency_key(&self.task.task_id, &step.name);
        let now = self.now();
        let id = Identity {
            idempotency_key: &key,
            fencing_token: self.fence.as_ref().map(|f| f.token.0),
            timeout: step.timeout,
        };
        let result = match &step.action {
            Action::Llm(a) => self.engine.runners.llm(a, ctx, id).await,
            Action::Http(a) => self.engine.runners.http(a, ctx, id).await,
            Action::Worker(w) => {
                let payload = match &w.payload {
                    Some(p) => template::render_json(p, ctx),
                    None => Ok(self.task.input.clone()),
                };
                return Ok(match payload {
                    Ok(payload) => self.enqueue(i, attempt, &w.queue, payload, &key),
                    Err(e) => self.failed(i, attempt, Failure::new(Outcome::BadRequest, e)),
                });
            }
            Action::Human(h) => {
                let asked = template::render(&h.prompt, ctx).and_then(|prompt| {
                    let payload = match &h.payload {
                        Some(p) => template::render_json(p, ctx)?,
                        None => Value::Null,
                    };
                    Ok((prompt, payload))
                });
                return Ok(match asked {
                    Ok((prompt, payload)) => {
                        let timer = (h.on_timeout != OnTimeout::Wait)
                            .then(|| now + step.timeout.as_millis() as u64);
                        self.escalate(i, attempt, prompt, payload, timer)
                    }
                    Err(e) => self.failed(i, attempt, Failure::new(Outcome::BadRequest, e)),
                });
            }
            Action::Sleep(s) => {
                if s.duration <= SHORT_WAIT {
                    let wake = self.engine.clock.now() + s.duration;
                    self.engine.clock.sleep_until(wake).await;
                    Ok(Success {
                        output: Value::Null,
                        cost_usd: 0.0,
                    })
                } else {
                    let until = now + s.duration.as_millis() as u64;
                    let update = StepUpdate {
                        name: step.name.clone(),
                        status: StepStatus::Waiting,
                        attempt,
                        output: None,
                        error: None,
                        next_attempt_at_ms: Some(until),
                        cost_usd: 0.0,
                    };
                    return Ok(Done::commit(
                        i,
                        update,
                        event("sleeping", json!({"step": step.name, "until_ms": until})),
                    ));
                }
            }
        };
        Ok(match result {
            Ok(success) => self.succeeded(i, attempt, success),
            Err(failure) => self.failed(i, attempt, failure),
        })
    }

    fn succeeded(&self, i: usize, attempt: u32, success: Success) -> Done {
        let step = &self.workflow.steps[i];
        let update = StepUpdate {
            name: step.name.clone(),
            status: StepStatus::Succeeded,
            attempt,
            output: Some(success.output),
            error: None,
            next_attempt_at_ms: None,
            cost_usd: success.cost_usd,
        };
        let mut done = Done::commit(
            i,
            update,
            event(
                "step_succeeded",
                json!({"step": step.name, "attempt": attempt, "cost_usd": success.cost_usd}),
            ),
        );
        done.live.push(TaskEventKind::StepSucceeded {
            step: step.name.clone(),
            kind: step.action.kind(),
            attempt,
            duration: Duration::ZERO,
            cost_usd: success.cost_usd,
        });
        done
    }

    /// A failed attempt: back to the retry queue, or `on_exhausted`.
    fn failed(&self, i: usize, attempt: u32, failure: Failure) -> Done {
        let step = &self.workflow.steps[i];
        let class = failure.outcome.class();
        let kind = step.action.kind();
        let mut rng = self.engine.rng();
        match verdict(&step.retry, attempt, failure.outcome, &mut rng) {
            Verdict::Retry { delay } => {
                let at = self.now() + delay.as_millis() as u64;
                let update = StepUpdate {
                    name: step.name.clone(),
                    status: StepStatus::Retrying,
                    attempt,
                    output: None,
                    error: Some(failure.message.clone()),
                    next_attempt_at_ms: Some(at),
                    cost_usd: failure.cost_usd,
                };
                let mut done = Done::commit(
                    i,
                    update,
                    event(
                        "step_retrying",
                        json!({"step": step.name, "attempt": attempt, "class": class,
                               "error": failure.message, "next_attempt_at_ms": at}),
                    ),
                );
                done.live.push(TaskEventKind::StepRetrying {
                    step: step.name.clone(),
                    kind,
                    attempt,
                    class,
                    delay,
                });
                done
            }
            Verdict::Exhausted => self.exhausted(i, attempt, failure),
        }
    }

    fn exhausted(&self, i: usize, attempt: u32, failure: Failure) -> Done {
        let step = &self.workflow.steps[i];
        let class = failure.outcome.class();
        let then = match step.on_exhausted {
            OnExhausted::Fail => "fail",
            OnExhausted::Skip => "skip",
            OnExhausted::Escalate => "escalate",
        };
        let live = TaskEventKind::StepExhausted {
            step: step.name.clone(),
            kind: step.action.kind(),
            class,
            then,
        };
        let mut done = match step.on_exhausted {
            OnExhausted::Escalate => {
                let reason = format!(
                    "step {:?} failed after {attempt} attempt(s): {}",
                    step.name, failure.message
                );
                let payload = json!({"error": failure.message, "class": class, "attempt": attempt});
                self.escalate(i, attempt, reason, payload, None)
            }
            OnExhausted::Fail | OnExhausted::Skip => {
                let status = if step.on_exhausted == OnExhausted::Skip {
                    StepStatus::Skipped
                } else {
                    StepStatus::Failed
                };
                let update = StepUpdate {
                    name: step.name.clone(),
                    status,
                    attempt,
                    output: None,
                    error: Some(failure.message.clone()),
                    next_attempt_at_ms: None,
                    cost_usd: failure.cost_usd,
                };
                Done::commit(
                    i,
                    update,
                    event(
                        &format!("step_{status}"),
                        json!({"step": step.name, "attempt": attempt, "class": class, "error": failure.message}),
                    ),
                )
            }
        };
        done.live.insert(0, live);
        if let Some(u) = &mut done.update {
            u.cost_usd = failure.cost_usd;
        }
        done
    }

    /// Opens an escalation for step `i`; the step waits for a person.
    fn escalate(
        &self,
        i: usize,
        attempt: u32,
        reason: String,
        payload: Value,
        timer: Option<u64>,
    ) -> Done {
        let step = &self.workflow.steps[i];
        let id = escalation_id(&self.task.task_id, &step.name, attempt);
        let update = StepUpdate {
            name: step.name.clone(),
            status: StepStatus::Waiting,
            attempt,
            output: None,
            error: None,
            next_attempt_at_ms: timer,
            cost_usd: 0.0,
        };
        let mut done = Done::commit(
            i,
            update,
            event(
                "escalated",
                json!({"step": step.name, "escalation_id": id, "reason": reason}),
            ),
        );
        done.escalation = Some(NewEscalation {
            escalation_id: id,
            step: step.name.clone(),
            reason,
            payload,
        });
        done.live.push(TaskEventKind::Escalated {
            step: step.name.clone(),
        });
        done
    }

    /// Enqueues a worker job for step `i`; the step waits for a worker.
    fn enqueue(&self, i: usize, attempt: u32, queue: &str, input: Value, key: &str) -> Done {
        let step = &self.workflow.steps[i];
        let id = job_id(&self.task.task_id, &step.name, attempt);
        let update = StepUpdate {
            name: step.name.clone(),
            status: StepStatus::Waiting,
            attempt,
            output: None,
            error: None,
            next_attempt_at_ms: None,
            cost_usd: 0.0,
        };
        let mut done = Done::commit(
            i,
            update,
            event(
                "job_enqueued",
                json!({"step": step.name, "job_id": id, "queue": queue}),
            ),
        );
        done.jobs.push(NewJob {
            job_id: id,
            queue: queue.to_string(),
            step: step.name.clone(),
            payload: json!({
                "task_id": self.task.task_id,
                "step": step.name,
                "attempt": attempt,
                "idempotency_key": key,
                "input": input,
            }),
        });
        done
    }

    /// Looks at a waiting step again: its timer, its job, its escalation.
    async fn check(&self, i: usize, record: Option<&Step>, ctx: &Value) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let Some(record) = record else {
            return Ok(Done::waiting(i, None));
        };
        let attempt = record.attempt;
        let store = &self.engine.store;
        let now = self.now();
        let esc_id = escalation_id(&self.task.task_id, &step.name, attempt);
        if matches!(step.action, Action::Human(_)) || step.on_exhausted == OnExhausted::Escalate {
            if let Some(esc) = store.get_escalation(&esc_id).await? {
                return self.answered(i, step, record, esc, now).await;
            }
        }
        match &step.action {
            Action::Sleep(_) => {
                let until = record.next_attempt_at_ms.unwrap_or(0);
                if until <= now {
                    Ok(self.succeeded(
                        i,
                        attempt,
                        Success {
                            output: Value::Null,
                            cost_usd: 0.0,
                        },
                    ))
                } else {
                    Ok(Done::waiting(i, Some(until)))
                }
            }
            Action::Worker(w) => {
                let id = job_id(&self.task.task_id, &step.name, attempt);
                match store.get_job(&id).await? {
                    None => {
                        // The wait was committed without its job (it cannot be): ask again.
                        let key = idempotency_key(&self.task.task_id, &step.name);
                        Ok(self.enqueue(i, attempt + 1, &w.queue, self.task.input.clone(), &key))
                    }
                    Some(job) => {
                        match job.status {
                            JobStatus::Pending | JobStatus::Claimed => Ok(Done::waiting(i, None)),
                            JobStatus::Succeeded => Ok(self.succeeded(
                                i,
                                attempt,
                                Success {
                                    output: job.result.unwrap_or(Value::Null),
                                    cost_usd: 0.0,
                                },
                            )),
                            JobStatus::Failed => {
                                let message =
                                    format!("worker failed: {}", job.error.unwrap_or_default());
                                Ok(self.failed(
                                    i,
                                    attempt,
                                    Failure::new(Outcome::ServerError, message),
                                ))
                            }
                            JobStatus::Cancelled => Ok(self.exhausted(
                                i,
                                attempt,
                                Failure::new(Outcome::Cancelled, "the job was cancelled"),
                            )),
                        }
                    }
                }
            }
            Action::Human(_) => {
                // The escalation is missing though the wait was committed with it: ask again.
                Ok(Box::pin(self.attempt(i, attempt + 1, ctx)).await?)
            }
            Action::Llm(_) | Action::Http(_) => Ok(Done::waiting(i, None)),
        }
    }

    /// A person's answer (or the lack of one) to a step's escalation.
    async fn answered(
        &self,
        i: usize,
        step: &StepDef,
        record: &Step,
        mut esc: holdfast_store::Escalation,
        now: u64,
    ) -> Result<Done, Stop> {
        let attempt = record.attempt;
        if esc.status == EscalationStatus::Open {
            let on_timeout = match &step.action {
                Action::Human(h) => h.on_timeout,
                _ => OnTimeout::Wait,
            };
            let due = record
                .next_attempt_at_ms
                .filter(|_| on_timeout != OnTimeout::Wait);
            match due {
                Some(at) if at <= now => {
                    let resolution = match on_timeout {
                        OnTimeout::Reject => {
                            Resolution::Reject("no answer before the timeout".into())
                        }
                        OnTimeout::Approve | OnTimeout::Skip | OnTimeout::Wait => {
                            Resolution::Approve
                        }
                    };
                    match self
                        .engine
                        .store
                        .resolve_escalation(&esc.escalation_id, resolution, "holdfast:timeout", now)
                        .await
                    {
                        Ok(resolved) => esc = resolved,
                        // Someone answered first: use their answer.
                        Err(StoreError::Conflict { .. }) => {
                            match self.engine.store.get_escalation(&esc.escalation_id).await? {
                                Some(e) => esc = e,
                                None => return Ok(Done::waiting(i, None)),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                    if on_timeout == OnTimeout::Skip
                        && esc.resolved_by.as_deref() == Some("holdfast:timeout")
                    {
                        let update = StepUpdate {
                            name: step.name.clone(),
                            status: StepStatus::Skipped,
                            attempt,
                            output: None,
                            error: Some("no answer before the timeout".into()),
                            next_attempt_at_ms: None,
                            cost_usd: 0.0,
                        };
                        return Ok(Done::commit(
                            i,
                            update,
                            event(
                                "step_skipped",
                                json!({"step": step.name, "reason": "timeout"}),
                            ),
                        ));
                    }
                }
                _ => return Ok(Done::waiting(i, due)),
            }
        }
        let by = esc.resolved_by.clone().unwrap_or_default();
        let human = matches!(step.action, Action::Human(_));
        Ok(match esc.resolution {
            Some(Resolution::Approve) if human => self.succeeded(
                i,
                attempt,
                Success {
                    output: esc.payload,
                    cost_usd: 0.0,
                },
            ),
            Some(Resolution::Approve) => {
                // Approval of a failed step: one more attempt, due now.
                let update = StepUpdate {
                    name: step.name.clone(),
                    status: StepStatus::Retrying,
                    attempt,
                    output: None,
                    error: record.error.clone(),
                    next_attempt_at_ms: Some(now),
                    cost_usd: 0.0,
                };
                Done::commit(
                    i,
                    update,
                    event("escalation_approved", json!({"step": step.name, "by": by})),
                )
            }
            Some(Resolution::Edit(value)) => {
                let mut done = self.succeeded(
                    i,
                    attempt,
                    Success {
                        output: value,
                        cost_usd: 0.0,
                    },
                );
                done.events.insert(
                    0,
                    event("escalation_edited", json!({"step": step.name, "by": by})),
                );
                done
            }
            Some(Resolution::Reject(reason)) => {
                let update = StepUpdate {
                    name: step.name.clone(),
                    status: StepStatus::Failed,
                    attempt,
                    output: None,
                    error: Some(format!("rejected by {by}: {reason}")),
                    next_attempt_at_ms: None,
                    cost_usd: 0.0,
                };
                Done::commit(
                    i,
                    update,
                    event(
                        "escalation_rejected",
                        json!({"step": step.name, "by": by, "reason": reason}),
                    ),
                )
            }
            None => {
                let update = StepUpdate {
                    name: step.name.clone(),
                    status: StepStatus::Failed,
                    attempt,
                    output: None,
                    error: Some(format!("escalation {}", esc.status)),
                    next_attempt_at_ms: None,
                    cost_usd: 0.0,
                };
                Done::commit(
                    i,
                    update,
                    event(
                        "step_failed",
                        json!({"step": step.name, "error": "escalation closed"}),
                    ),
                )
            }
        })
    }

    /// Undoes step `i`, retrying in place; a compensation that keeps failing fails the
    /// task with both errors.
    async fn compensate(&self, i: usize, record: Option<&Step>, ctx: &Value) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let attempt = record.map_or(1, |r| r.attempt);
        let Some(comp) = &step.compensate else {
            return Ok(Done::waiting(i, None));
        };
        let key = format!(
            "{}/compensate",
            idempotency_key(&self.task.task_id, &step.name)
        );
        let id = Identity {
            idempotency_key: &key,
            fencing_token: self.fence.as_ref().map(|f| f.token.0),
            timeout: comp.timeout,
        };
        let mut try_no = 1;
        let failure = loop {
            let result = match &comp.action {
                Action::Llm(a) => self.engine.runners.llm(a, ctx, id).await,
                Action::Http(a) => self.engine.runners.http(a, ctx, id).await,
                other => Err(Failure::new(
                    Outcome::BadRequest,
                    format!("a {} step cannot compensate", other.kind()),
                )),
            };
            match result {
                Ok(_) => {
                    let update = StepUpdate {
                        name: step.name.clone(),
                        status: StepStatus::Compensated,
                        attempt,
                        output: None,
                        error: None,
                        next_attempt_at_ms: None,
                        cost_usd: 0.0,
                    };
                    let mut done =
                        Done::commit(i, update, event("compensated", json!({"step": step.name})));
                    done.live.push(TaskEventKind::Compensated {
                        step: step.name.clone(),
                    });
                    return Ok(done);
                }
                Err(failure) => {
                    let mut rng = self.engine.rng();
                    match verdict(&comp.retry, try_no, failure.outcome, &mut rng) {
                        Verdict::Retry { delay } => {
                            let wake = self.engine.clock.now() + delay;
                            self.engine.clock.sleep_until(wake).await;
                            try_no += 1;
                        }
                        Verdict::Exhausted => break failure,
                    }
                }
            }
        };
        let update = StepUpdate {
            name: format!("{COMPENSATE_PREFIX}{}", step.name),
            status: StepStatus::Failed,
            attempt: try_no,
            output: None,
            error: Some(failure.message.clone()),
            next_attempt_at_ms: None,
            cost_usd: failure.cost_usd,
        };
        Ok(Done::commit(
            i,
            update,
            event(
                "compensation_failed",
                json!({"step": step.name, "error": failure.message}),
            ),
        ))
    }
}
