//! The experiment's own traffic: chat requests (or task submissions) at a fixed rate,
//! spread over the nodes in turn, each recorded with its start time; and, at the end,
//! the wait for accepted tasks to finish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::run::{Run, Sample, lock};
use super::spec::ProbeKind;
use crate::api::{Api, Served};

impl Run<'_> {
    /// Sends requests at the experiment's rate until `stopped`, then waits for the
    /// ones in flight.
    pub(super) fn traffic(
        &self,
        mut stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let traffic = &self.experiment.traffic;
        let headers: Vec<(String, String)> = traffic
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let api = self.api.clone().with_headers(headers);
        let apis: Vec<Api> = if traffic.servers.is_empty() {
            vec![api]
        } else {
            traffic.servers.iter().map(|base| api.at(base)).collect()
        };
        let (clock, samples, start) = (
            Arc::clone(&self.runner.clock),
            Arc::clone(&self.samples),
            self.start,
        );
        let interval = Duration::from_secs_f64(1.0 / traffic.rate);
        let workflow = traffic.workflow.clone();
        let body = match &workflow {
            Some(workflow) => {
                let input = serde_json::to_value(&traffic.input).unwrap_or_default();
                json!({"workflow": workflow, "input": input})
            }
            None => {
                let mut body = json!({
                    "model": traffic.route,
                    "max_tokens": traffic.max_tokens,
                    "stream": traffic.stream,
                    "messages": [{"role": "user", "content": traffic.prompt}],
                });
                if let Some(format) = &traffic.response_format {
                    body["response_format"] = serde_json::to_value(format).unwrap_or_default();
                }
                body
            }
        };
        let repeat = traffic.repeat.max(1);
        let run_id = self.runner.clock.unix_millis();
        async move {
            let mut running = JoinSet::new();
            let mut next = clock.now();
            let mut turn = 0;
            while !*stopped.borrow() {
                turn += 1;
                let (api, body, timer, samples) = (
                    apis[turn % apis.len()].clone(),
                    body.clone(),
                    Arc::clone(&clock),
                    Arc::clone(&samples),
                );
                let tasks = workflow.is_some();
                running.spawn(async move {
                    // One key for the request and its resends, unique to this run; none
                    // when sent once.
                    let key = (repeat > 1).then(|| format!("holdfast-chaos-{run_id}-{turn}"));
                    for _ in 0..repeat {
                        let sent = timer.now();
                        let (outcome, task) = if tasks {
                            match api.submit(body.clone()).await {
                                Ok(id) => (Ok(("accepted".to_owned(), 0.0)), Some(id)),
                                Err(code) => (Err(code), None),
                            }
                        } else {
                            let served = api.chat_once(body.clone(), key.as_deref()).await;
                            (
                                served.map(|Served { target, cost_usd }| (target, cost_usd)),
                                None,
                            )
                        };
                        let sample = Sample {
                            at: sent.saturating_duration_since(start),
                            latency: timer.now().saturating_duration_since(sent),
                            outcome,
                            task,
                        };
                        lock(&samples).push(sample);
                    }
                });
                while running.try_join_next().is_some() {}
                next = next + interval;
                tokio::select! {
                    () = clock.sleep_until(next) => {}
                    _ = stopped.changed() => {}
                }
            }
            while running.join_next().await.is_some() {}
        }
    }

    /// Waits (up to the `settle` phase) for every accepted task to finish: their
    /// statuses at the end, and, when a probe asks, the steps each committed twice.
    pub(super) async fn settle(&self, samples: &[Sample]) -> Settled {
        let statuses = self.wait_for_tasks(samples).await;
        let mut twice = BTreeMap::new();
        let asked = self.experiment.steady_state.probes.iter();
        if asked
            .map(|p| p.get_ref().kind)
            .any(|k| k == ProbeKind::StepsOnce)
        {
            let readers = self.readers();
            for id in statuses.keys() {
                // Any node can answer; the first that does is asked.
                let mut found = Err("no node answered".to_owned());
                for api in &readers {
                    found = api.steps_committed_twice(id).await;
                    if found.is_ok() {
                        break;
                    }
                }
                twice.insert(id.clone(), found);
            }
        }
        Settled { statuses, twice }
    }

    /// Every node that can answer for a task: the experiment's server, then its traffic's.
    fn readers(&self) -> Vec<Api> {
        let mut readers = vec![self.api.clone()];
        readers.extend(
            self.experiment
                .traffic
                .servers
                .iter()
                .map(|b| self.api.at(b)),
        );
        readers
    }

    /// Waits (up to the `settle` phase) for every accepted task to finish; their
    /// statuses at the end.
    async fn wait_for_tasks(&self, samples: &[Sample]) -> BTreeMap<String, String> {
        // A status a probe counts as done ends the wait too: a task waiting in the
        // escalation inbox stays there until someone answers it.
        let counted: Vec<&str> = self
            .experiment
            .steady_state
            .probes
            .iter()
            .map(|p| p.get_ref())
            .filter(|p| p.kind == ProbeKind::TasksCompleted)
            .flat_map(|p| p.statuses.iter().map(String::as_str))
            .collect();
        let is_final = |status: &String| is_final(status) || counted.contains(&status.as_str());
        let mut tasks: BTreeMap<String, String> = samples
            .iter()
            .filter_map(|s| s.task.clone())
            .map(|id| (id, String::new()))
            .collect();
        if tasks.is_empty() {
            return tasks;
        }
        let clock = &self.runner.clock;
        let end = clock.now() + self.experiment.phases.settle.duration();
        let readers = self.readers();
        loop {
            for (id, status) in tasks.iter_mut().filter(|(_, s)| !is_final(s)) {
                // Any node can answer; the first that does is asked.
                for api in &readers {
                    if let Ok(now) = api.task_status(id).await {
                        *status = now;
                        break;
                    }
                }
            }
            let open = tasks.values().filter(|s| !is_final(s)).count();
            if open == 0 || clock.now() >= end {
                return tasks;
            }
            (self.runner.progress)(&format!(
                "[{:>6.1}s] settle  {open} of {} tasks not finished",
                self.since_start().as_secs_f64(),
                tasks.len()
            ));
            clock
                .sleep_until(clock.now() + Duration::from_millis(250))
                .await;
        }
    }
}

/// How the accepted tasks ended.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Each accepted task's status at the end.
    pub statuses: BTreeMap<String, String>,
    /// With a `steps_once` probe: for each accepted task, the steps its journal commits
    /// more than once, or why the journal could not be read.
    pub twice: BTreeMap<String, Result<Vec<String>, String>>,
}

/// Whether a task status is final.
fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled" | "skipped")
}
