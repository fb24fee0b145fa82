//! The quality gate on configuration versions, as the reload path (`live.rs`) uses it.
//!
//! The judging itself (which suites a change puts to the test, running them, the
//! baseline, the verdict) is the quality crate's [`Gatekeeper`]; this module only
//! supplies what a server knows: which routes two configurations route differently,
//! the gateway states to run the suites through (the candidate built beside the
//! serving one, never swapped in before the verdict when it may be refused), the
//! verdict recorded beside the version in the history, and the alert.
//!
//! A workflow suite's tasks are submitted as the gate's own tenants ([`task_tenant`]),
//! which `live.rs` pins to the states being judged while the gate runs
//! (`holdfast_quality::rollout::Pinned`), so their `llm` steps call the candidate's
//! routes before it takes traffic.
//!
//! Which configuration's gate applies: the serving one's, else the candidate's. A
//! version cannot switch the gate off (or soften `on_fail`) for itself; the version
//! after it runs under its rules.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use holdfast_config::{Config, OnFail, QualityGate};
use holdfast_quality::rollout::{Change, Gatekeeper, Verdict, task_tenant};
use holdfast_quality::{Subject, Suite};
use holdfast_store::{ConfigGate, Store};
use serde_json::{Value, json};

use crate::gateway::Inner;
use crate::quality::GatewaySubject;
use holdfast_alerts::Notice;

/// What a gate decided about a version, as the reload's answer and the history show.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Whether its suites passed.
    pub passed: bool,
    /// `applied`, `refused`, `rolled_back` or `alerted`.
    pub action: &'static str,
    /// Which suites failed, on which checks and cases; or which passed.
    pub summary: String,
    /// The report stored with the version.
    pub report: Value,
}

/// The gate that judges `candidate` replacing `serving`, if any.
pub(crate) fn gate_for(serving: &Config, candidate: &Config) -> Option<QualityGate> {
    serving
        .quality
        .gate
        .clone()
        .or_else(|| candidate.quality.gate.clone())
}

/// Loads the gate's suites; a suite that does not load is the version's refusal.
pub(crate) fn load_suites(gate: &QualityGate) -> Result<Vec<Suite>, String> {
    gate.suites
        .iter()
        .map(|path| {
            Suite::load(Path::new(path))
                .map_err(|e| format!("the quality gate's suite {}: {e}", path.display()))
        })
        .collect()
}

/// The routes `new` serves differently from `old`: new routes, and routes whose
/// targets, targets' settings, providers, policy or degradation changed.
pub(crate) fn changed_routes(old: &Config, new: &Config) -> BTreeSet<String> {
    new.routes
        .keys()
        .filter(|name| route_print(old, name) != route_print(new, name))
        .cloned()
        .collect()
}

/// Everything that decides how `config` serves route `name`, as text (`Debug` shows
/// every setting; secrets only redacted, so a changed key alone is no change).
fn route_print(config: &Config, name: &str) -> Option<String> {
    let route = config.routes.get(name)?;
    let mut print = format!("{route:?}");
    for target in &route.targets {
        let target = config.targets.get(target);
        print.push_str(&format!("|{target:?}"));
        if let Some(provider) = target.and_then(|t| config.providers.get(&t.provider)) {
            print.push_str(&format!("|{provider:?}"));
        }
    }
    Some(print)
}

/// What `new` changes of `old` for suites: its changed routes, and the workflows
/// registered with the engine (if any) whose `llm` steps call one of them.
pub(crate) async fn change(old: &Config, new: &Config, inner: &Inner) -> Result<Change, String> {
    let routes = changed_routes(old, new);
    let Some(engine) = inner.engine.get() else {
        return Ok(Change {
            routes,
            workflows: BTreeSet::new(),
        });
    };
    let defs = engine
        .workflows()
        .await
        .map_err(|e| format!("the quality gate could not list the workflows: {e}"))?;
    let workflows = holdfast_quality::rollout::workflows_calling(
        defs.iter().map(|d| (d.name.as_str(), &d.definition)),
        &routes,
    );
    Ok(Change { routes, workflows })
}

/// A suite subject over a gateway state (`role` of the gate on `candidate`), serving
/// configuration `version`; its tasks run as [`task_tenant`].
pub(crate) fn subject(
    inner: &Arc<Inner>,
    role: &str,
    version: Option<u64>,
    candidate: u64,
) -> Arc<dyn Subject> {
    let describe = json!({"via": "in-process", "gate": role, "config_version": version});
    let subject = GatewaySubject::new(
        Arc::clone(inner),
        holdfast_quality::rollout::GATE_TENANT,
        describe,
    );
    Arc::new(subject.with_task_tenant(&task_tenant(candidate, role)))
}

/// Judges `candidate` (version `version`) against `serving` with `suites`; a gate
/// that could not run (a store failure, a suite's route missing) fails.
pub(crate) async fn judge(
    store: &Arc<dyn Store>,
    inner: &Inner,
    suites: &[Suite],
    change: &Result<Change, String>,
    version: u64,
    candidate: Arc<dyn Subject>,
    serving: Arc<dyn Subject>,
) -> Result<Verdict, String> {
    let change = change.as_ref().map_err(Clone::clone)?;
    let keeper = Gatekeeper::new(Arc::clone(store), Arc::clone(&inner.clock));
    keeper
        .judge(suites, change, version, candidate, serving)
        .await
        .map_err(|e| format!("the quality gate could not run: {e}"))
}

/// The decision on a verdict (or on a gate that could not run) under `on_fail`.
pub(crate) fn decide(verdict: &Result<Verdict, String>, on_fail: OnFail) -> Decision {
    let passed = verdict.as_ref().is_ok_and(|v| v.passed);
    let action = match (passed, on_fail) {
        (true, _) => "applied",
        (false, OnFail::Refuse) => "refused",
        (false, OnFail::Rollback) => "rolled_back",
        (false, OnFail::Alert) => "alerted",
    };
    let (summary, report) = match verdict {
        Ok(v) => (v.summary(), json!({"verdict": v})),
        Err(e) => (e.clone(), json!({"error": e})),
    };
    let mut report = report;
    report["on_fail"] = json!(on_fail.name());
    report["summary"] = json!(summary);
    Decision {
        passed,
        action,
        summary,
        report,
    }
}

/// Records `decision` beside `version` and, when it failed, raises the alert. A
/// verdict that cannot be recorded is logged: the decision stands.
pub(crate) async fn record(
    store: &Arc<dyn Store>,
    inner: &Inner,
    version: u64,
    decision: &Decision,
    failing_suites: usize,
) {
    let now = inner.clock.unix_millis();
    let gate = ConfigGate {
        version,
        passed: decision.passed,
        action: decision.action.to_owned(),
        report: decision.report.clone(),
        decided_at_ms: now,
    };
    if let Err(e) = store.record_config_gate(&gate).await {
        tracing::error!(version, error = %e, "could not record the quality gate's verdict");
    }
    if decision.passed {
        tracing::info!(version, "quality gate passed: {}", decision.summary);
        return;
    }
    let what = match decision.action {
        "refused" => "refused",
        "rolled_back" => "rolled back",
        _ => "applied despite it",
    };
    let summary = format!(
        "quality gate failed on configuration version {version} ({what}): {}",
        decision.summary
    );
    inner
        .alerts
        .announce(Notice::gate_failed(summary, failing_suites.max(1), now));
}

/// How many suites failed in `verdict` (a gate that could not run: one).
pub(crate) fn failing_suites(verdict: &Result<Verdict, String>) -> usize {
    match verdict {
        Ok(v) => v.suites.iter().filter(|s| !s.passed).count(),
        Err(_) => 1,
    }
}
