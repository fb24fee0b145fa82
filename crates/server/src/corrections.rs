//! People's edits in the escalation inbox, turned into few-shot examples.
//!
//! The decision: an edit corrects an `llm` step when the edited value holds, under the
//! step's name, a text that differs from what the step answered (the shape a review
//! step's payload takes: `{"draft": "{{ steps.draft.output }}"}`), and the step's call
//! carried a library (its route has `few_shot`: the journal's `step_succeeded` names
//! the library and the call's input). Each such step yields an example of its library,
//! with the reviewer as author and `task:ID/STEP` as origin: a candidate, or active at
//! once where the route says `auto_approve`. The inbox answers once the examples are
//! added (so the next call can use them), but never fails because of them: the
//! decision is committed first, and a correction that cannot be added is logged.
//!
//! Every correction (an edit or a feedback's) is also appended as a labeled case
//! (tags `labeled`, `correction`) to the datasets of the `[quality] gate` suites whose
//! task is a route keeping its library, in the background (`holdfast_quality`'s
//! `label_correction` says when a suite takes it).

use holdfast_engine::Scope;
use holdfast_quality::fewshot::{Correction, add_correction, label_in_suites};
use holdfast_store::{Escalation, Example, ExampleAdded, ExampleSource, Resolution};
use serde_json::Value;

use crate::gateway::Gateway;

impl Gateway {
    /// Adds the corrections an escalation's edit makes to the libraries of the `llm`
    /// steps it corrects (see the module docs); returns what was added.
    pub async fn learn_from_escalation(&self, escalation: &Escalation) -> Vec<ExampleAdded> {
        let (Some(engine), Some(libraries)) = (self.engine(), self.libraries()) else {
            return Vec::new();
        };
        let Some(Resolution::Edit(Value::Object(edited))) = &escalation.resolution else {
            return Vec::new();
        };
        let scope = Scope::Tenant(escalation.tenant.clone());
        let task = &escalation.task_id;
        let (journal, steps) = match (
            engine.journal(task, &scope, 0, 1000).await,
            engine.steps(task, &scope).await,
        ) {
            (Ok(journal), Ok(steps)) => (journal, steps),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(escalation = %escalation.escalation_id, error = %e, "an edit could not be read for corrections");
                return Vec::new();
            }
        };
        let mut added = Vec::new();
        for (step, corrected) in edited {
            let Some(corrected) = corrected.as_str() else {
                continue;
            };
            let answered = steps
                .iter()
                .find(|s| &s.name == step)
                .and_then(|s| s.output.as_ref());
            if answered.and_then(Value::as_str) == Some(corrected) {
                continue;
            }
            let Some(record) = journal
                .iter()
                .rev()
                .find(|e| e.kind == "step_succeeded" && e.data["step"] == step.as_str())
                .map(|e| &e.data["few_shot"])
            else {
                continue;
            };
            let (Some(library), Some(input)) =
                (record["library"].as_str(), record["input"].as_str())
            else {
                continue;
            };
            let correction = Correction {
                tenant: escalation.tenant.clone(),
                library: library.to_owned(),
                input: input.to_owned(),
                output: corrected.to_owned(),
                source: ExampleSource::Escalation,
                author: escalation
                    .resolved_by
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
                origin: Some(format!("task:{task}/{step}")),
                auto_approve: crate::handlers::auto_approve(self, library),
            };
            let now = self.inner.clock.unix_millis();
            match add_correction(libraries, correction, now).await {
                Ok(example) => {
                    self.label_correction(example.example());
                    added.push(example);
                }
                Err(e) => {
                    tracing::warn!(escalation = %escalation.escalation_id, error = %e, "a correction could not be added to its library");
                }
            }
        }
        added
    }
}

impl Gateway {
    /// Appends `example` as a labeled case to the gate suites of the routes keeping its
    /// library, in the background; a suite that cannot take it is logged.
    pub(crate) fn label_correction(&self, example: &Example) {
        let routes: Vec<String> = (self.inner.routes.values())
            .filter(|r| (r.few_shot.as_ref()).is_some_and(|f| f.library == example.library))
            .map(|r| r.name.to_string())
            .collect();
        if routes.is_empty() {
            return;
        }
        let (live, example) = (std::sync::Arc::clone(&self.live), example.clone());
        tokio::spawn(async move {
            let Some(gate) = live.running().await.config.quality.gate.clone() else {
                return;
            };
            let label = move || label_in_suites(&gate.suites, &routes, &example);
            for (suite, e) in tokio::task::spawn_blocking(label).await.unwrap_or_default() {
                tracing::warn!(suite = %suite.display(), error = %e, "a correction could not be added to its suite");
            }
        });
    }
}
