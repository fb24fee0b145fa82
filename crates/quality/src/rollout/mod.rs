//! Gated rollout: a new configuration version judged by the suites of the routes it
//! changed, before (or right after) it takes traffic.
//!
//! The decisions that shape it:
//! - Only what changed is evaluated: a route suite runs when the version changes its
//!   route (or its judge's route), a workflow suite when the version changes a route
//!   that one of the workflow's `llm` steps calls (what a configuration version can
//!   change of a workflow: its definition is registered with the engine, and `[engine]`
//!   only changes with a restart). The caller says which routes and workflows changed,
//!   since only it can compare two configurations and read the definitions
//!   ([`workflows_calling`] finds them). A version that changes no suite's route or
//!   workflow passes with nothing run, and says so.
//! - Each suite is gated as `holdfast eval run` gates it (thresholds, and the paired
//!   comparison with a baseline), through the same [`Runner`], so a gate's verdict can
//!   be reproduced and explained from the store like any run. The baseline is the
//!   suite's newest passing gate run; when there is none yet, the suite first runs
//!   through the configuration serving now (the `baseline` subject), so the first
//!   change is compared with what it replaces.
//! - Every gate run is an ordinary evaluation run under [`GATE_TENANT`] with the id
//!   `gate-v<VERSION>-<MILLIS>/<SUITE>`: `holdfast eval list|show|compare` read them.

mod pinned;

use std::collections::BTreeSet;
use std::sync::Arc;

use holdfast_policy::Clock;
use holdfast_store::{EvalRunFilter, EvalStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::QualityError;
use crate::report::Report;
use crate::runner::{NoProgress, RunSpec, Runner};
use crate::subject::Subject;
use crate::suite::{Suite, TaskType};
pub use pinned::{Pinned, Pins, TASK_TENANT_PREFIX, task_tenant};

/// The tenant gate runs are recorded under.
pub const GATE_TENANT: &str = "default";

/// The prefix of every gate run's id.
const GATE_PREFIX: &str = "gate-v";

/// How many of a suite's runs are searched for its newest passing gate run.
const BASELINE_LOOKBACK: u32 = 200;

/// How many failing cases a suite's verdict names.
const NAMED_CASES: usize = 20;

/// The gate's verdict on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every suite that ran passed.
    pub passed: bool,
    /// The routes the version changed.
    pub changed_routes: Vec<String>,
    /// The workflows whose `llm` steps call a changed route.
    #[serde(default)]
    pub changed_workflows: Vec<String>,
    /// The suites that ran, each with its verdict.
    pub suites: Vec<SuiteVerdict>,
    /// The suites that did not run: their routes or workflows did not change.
    pub unchanged: Vec<String>,
}

/// One suite's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteVerdict {
    /// The suite.
    pub suite: String,
    /// What it runs against (`route support`).
    pub task: String,
    /// Its run (tenant [`GATE_TENANT`]).
    pub run_id: String,
    /// The run it was compared with, if any.
    pub baseline: Option<String>,
    /// Whether its gate passed.
    pub passed: bool,
    /// The checks that failed, each as `name: figures`.
    pub failed_checks: Vec<String>,
    /// The cases that did not pass (the first few), each as `id (outcome): why`.
    pub failing_cases: Vec<String>,
    /// Cases run, and of those passed.
    pub cases: usize,
    /// Of which passed.
    pub passed_cases: usize,
}

impl Verdict {
    /// One line for people: which suites failed, on which checks and cases.
    pub fn summary(&self) -> String {
        if self.suites.is_empty() {
            return "no suite's route or workflow changed: nothing to evaluate".to_owned();
        }
        let failed: Vec<String> = self
            .suites
            .iter()
            .filter(|s| !s.passed)
            .map(|s| {
                format!(
                    "suite {} failed ({}/{} passed; {}; failing cases: {})",
                    s.suite,
                    s.passed_cases,
                    s.cases,
                    s.failed_checks.join("; "),
                    s.failing_cases.join(", ")
                )
            })
            .collect();
        if failed.is_empty() {
            let names: Vec<&str> = self.suites.iter().map(|s| s.suite.as_str()).collect();
            format!("passed: {}", names.join(", "))
        } else {
            failed.join(" | ")
        }
    }
}

/// What a configuration version changed, as far as suites care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The routes it serves differently.
    pub routes: BTreeSet<String>,
    /// The workflows whose `llm` steps call one of `routes`.
    pub workflows: BTreeSet<String>,
}

/// Which of `suites` `change` puts to the test: route suites whose route changed,
/// workflow suites whose workflow did, and any suite whose judge route changed.
pub fn affected<'s>(suites: &'s [Suite], change: &Change) -> Vec<&'s Suite> {
    suites
        .iter()
        .filter(|s| {
            let own = match &s.task {
                TaskType::Route { route } => change.routes.contains(route),
                TaskType::Workflow { workflow, .. } => change.workflows.contains(workflow),
            };
            own || s.judge.as_ref().is_some_and(|j| change.routes.contains(j))
        })
        .collect()
}

/// The names of the workflows, of `definitions` (`(name, definition as registered)`,
/// every version), whose `llm` steps call one of `routes`. Every version counts, since
/// a suite may pin an older one.
pub fn workflows_calling<'d>(
    definitions: impl IntoIterator<Item = (&'d str, &'d Value)>,
    routes: &BTreeSet<String>,
) -> BTreeSet<String> {
    definitions
        .into_iter()
        .filter(|(_, definition)| {
            definition["steps"].as_array().is_some_and(|steps| {
                steps.iter().any(|step| {
                    step["kind"] == "llm"
                        && step["route"].as_str().is_some_and(|r| routes.contains(r))
                })
            })
        })
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Judges configuration versions with suites.
pub struct Gatekeeper {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Gatekeeper {
    /// A gatekeeper recording its runs in `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Gatekeeper {
        Gatekeeper { store, clock }
    }

    /// Runs every suite of `suites` that `change` puts to the test through
    /// `candidate` (version `version`), each compared with its newest passing gate
    /// run, or, when it has none, with a run through `serving` first.
    pub async fn judge(
        &self,
        suites: &[Suite],
        change: &Change,
        version: u64,
        candidate: Arc<dyn Subject>,
        serving: Arc<dyn Subject>,
    ) -> Result<Verdict, QualityError> {
        let to_run = affected(suites, change);
        let ran: BTreeSet<&str> = to_run.iter().map(|s| s.name.as_str()).collect();
        let unchanged = suites
            .iter()
            .filter(|s| !ran.contains(s.name.as_str()))
            .map(|s| s.name.clone())
            .collect();
        let mut verdicts = Vec::with_capacity(to_run.len());
        for suite in to_run {
            let baseline = match self.last_passed(suite).await? {
                Some(run_id) => Some(run_id),
                None => {
                    let run_id = self.run_id(version, "serving", suite);
                    self.run(suite, &run_id, None, Arc::clone(&serving)).await?;
                    Some(run_id)
                }
            };
            let run_id = self.run_id(version, "", suite);
            let report = self
                .run(suite, &run_id, baseline.clone(), Arc::clone(&candidate))
                .await?;
            verdicts.push(suite_verdict(suite, run_id, baseline, &report));
        }
        Ok(Verdict {
            passed: verdicts.iter().all(|v| v.passed),
            changed_routes: change.routes.iter().cloned().collect(),
            changed_workflows: change.workflows.iter().cloned().collect(),
            suites: verdicts,
            unchanged,
        })
    }

    /// `gate-v<VERSION>-<MILLIS>[-<ROLE>]/<SUITE>`: unique per evaluation, so a version
    /// sent again after a refusal is evaluated again rather than resumed.
    fn run_id(&self, version: u64, role: &str, suite: &Suite) -> String {
        let millis = self.clock.unix_millis();
        let role = if role.is_empty() {
            String::new()
        } else {
            format!("-{role}")
        };
        format!("{GATE_PREFIX}{version}-{millis}{role}/{}", suite.name)
    }

    async fn run(
        &self,
        suite: &Suite,
        run_id: &str,
        baseline: Option<String>,
        subject: Arc<dyn Subject>,
    ) -> Result<Report, QualityError> {
        let runner = Runner::new(Arc::clone(&self.store), subject, Arc::clone(&self.clock));
        let mut spec = RunSpec::new(suite, run_id, GATE_TENANT);
        spec.baseline = baseline;
        let outcome = runner
            .run(suite, spec, &NoProgress, std::future::pending())
            .await?;
        outcome.report.ok_or_else(|| QualityError::Setting {
            field: "gate",
            reason: format!("the gate run {run_id} stopped before every case ran"),
        })
    }

    /// The suite's newest finished gate run, of this very suite file and dataset,
    /// that passed.
    async fn last_passed(&self, suite: &Suite) -> Result<Option<String>, QualityError> {
        let filter = EvalRunFilter {
            tenant: Some(GATE_TENANT.to_owned()),
            suite: Some(suite.name.clone()),
            limit: BASELINE_LOOKBACK,
        };
        let runs = self.store.list_eval_runs(&filter).await?;
        let passed = runs.into_iter().find(|run| {
            run.run_id.starts_with(GATE_PREFIX)
                && run.status == EvalStatus::Finished
                && run.suite_sha256 == suite.digest
                && run
                    .summary
                    .as_ref()
                    .is_some_and(|s| s["gate"]["passed"] == true)
        });
        Ok(passed.map(|run| run.run_id))
    }
}

fn suite_verdict(
    suite: &Suite,
    run_id: String,
    baseline: Option<String>,
    report: &Report,
) -> SuiteVerdict {
    SuiteVerdict {
        suite: suite.name.clone(),
        task: report.task.clone(),
        run_id,
        baseline,
        passed: report.gate.passed,
        failed_checks: report
            .gate
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect(),
        failing_cases: report
            .not_passed
            .iter()
            .take(NAMED_CASES)
            .map(|c| format!("{} ({}): {}", c.case_id, c.outcome, c.why))
            .collect(),
        cases: report.cases,
        passed_cases: report.passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suite(name: &str, task: &str) -> Suite {
        let text = format!("name = \"{name}\"\ndataset = \"d.jsonl\"\n[task]\n{task}\n");
        let case = json!({"id": "a", "input": {"question": "hi"}, "expected": "x",
                          "assert": [{"type": "equals"}], "tags": ["labeled"]});
        let case = if task.starts_with("route") {
            json!({"id": "a", "input": [{"role": "user", "content": "hi"}], "expected": "x",
                   "assert": [{"type": "equals"}], "tags": ["labeled"]})
        } else {
            case
        };
        Suite::parse(("s.toml", &text), ("d.jsonl", &case.to_string())).unwrap()
    }

    #[test]
    fn a_workflow_suite_runs_when_a_route_its_llm_steps_call_changes() {
        let article = json!({"steps": [
            {"name": "fetch", "kind": "http", "url": "http://x"},
            {"name": "draft", "kind": "llm", "route": "smart", "prompt": "p"}]});
        let other = json!({"steps": [{"name": "w", "kind": "worker", "route": "smart"}]});
        let routes: BTreeSet<String> = ["smart".to_owned()].into();
        let calling = workflows_calling([("article", &article), ("other", &other)], &routes);
        assert_eq!(calling, ["article".to_owned()].into());
        assert!(
            workflows_calling([("article", &article)], &["cheap".to_owned()].into()).is_empty()
        );

        let suites = [
            suite("support", "route = \"support\""),
            suite("article", "workflow = \"article\""),
        ];
        let change = Change {
            routes,
            workflows: calling,
        };
        let names: Vec<&str> = affected(&suites, &change)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["article"]);
        let untouched = Change {
            routes: ["cheap".to_owned()].into(),
            workflows: BTreeSet::new(),
        };
        assert!(affected(&suites, &untouched).is_empty());
    }
}
