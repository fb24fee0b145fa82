//! `GET /admin/readiness`: the production checklist against this deployment.
//!
//! The checks are the quality crate's (`readiness::check`); this module takes the
//! snapshot they read: the running configuration's version, the engine's workflows as
//! written (the newest version of each), the quality gate's suites (loaded from the
//! files the running configuration names), each suite's newest finished gate run
//! through the running version from the history's store, and where alerts go.

use std::collections::BTreeMap;

use holdfast_quality::readiness::{Checklist, Deployment, GateRun, check};
use holdfast_quality::rollout::GATE_TENANT;
use holdfast_store::{EvalRunFilter, EvalStatus, Store};

use crate::error::ApiError;
use crate::gateway::Gateway;

/// How many of a suite's runs are searched for its newest gate run.
const LOOKBACK: u32 = 200;

impl Gateway {
    /// The checklist of the running deployment.
    pub(crate) async fn readiness(&self) -> Result<Checklist, ApiError> {
        let (version, gate) = {
            let running = self.live.running().await;
            (running.version, running.config.quality.gate.clone())
        };
        let mut d = Deployment {
            config_version: version,
            alerts: crate::alerts::routing(&self.inner.alerts),
            ..Deployment::default()
        };
        if let Some(engine) = self.inner.engine.get() {
            let mut newest = BTreeMap::new();
            let defs = engine
                .workflows()
                .await
                .map_err(|e| ApiError::Internal(format!("listing workflows: {e}")))?;
            for def in defs {
                let keep = newest
                    .get(&def.name)
                    .is_none_or(|(v, _): &(u32, _)| *v < def.version);
                if keep {
                    newest.insert(def.name.clone(), (def.version, def.definition));
                }
            }
            d.workflows = newest.into_iter().map(|(n, (_, def))| (n, def)).collect();
        }
        for path in gate.iter().flat_map(|g| &g.suites) {
            match holdfast_quality::Suite::load(path) {
                Ok(suite) => d.suites.push(suite),
                Err(e) => d.broken_suites.push(format!("{}: {e}", path.display())),
            }
        }
        if let Some(store) = self.live.history_store() {
            for suite in &d.suites {
                if let Some(run) = newest_gate_run(&*store, suite, version).await? {
                    d.gate_runs.insert(suite.name.clone(), run);
                }
            }
        }
        Ok(check(&d))
    }
}

/// The suite's newest finished gate run through the running configuration `version`
/// (as a candidate, or as the serving side of a later candidate's baseline).
async fn newest_gate_run(
    store: &dyn Store,
    suite: &holdfast_quality::Suite,
    version: Option<u64>,
) -> Result<Option<GateRun>, ApiError> {
    let filter = EvalRunFilter {
        tenant: Some(GATE_TENANT.to_owned()),
        suite: Some(suite.name.clone()),
        limit: LOOKBACK,
    };
    let runs = store
        .list_eval_runs(&filter)
        .await
        .map_err(|e| ApiError::Internal(format!("reading gate runs: {e}")))?;
    Ok(runs
        .into_iter()
        .find(|r| {
            r.run_id.starts_with("gate-v")
                && r.status == EvalStatus::Finished
                && version.is_some()
                && r.subject["config_version"].as_u64() == version
        })
        .map(|r| GateRun {
            passed: r
                .summary
                .as_ref()
                .is_some_and(|s| s["gate"]["passed"] == true),
            current_suite: r.suite_sha256 == suite.digest,
            run_id: r.run_id,
        }))
}
