//! Reports rebuilt from the store alone, for runs that ended long ago: `holdfast eval
//! show` and `compare`, and the history of a deployment's gates.
//!
//! A stored run carries its settings (thresholds included) and its results carry their
//! verdicts, so the report rebuilt is the one the run was gated with; against another
//! baseline, it is the gate that run would have had against that one.

use holdfast_store::{EvalRun, Store};

use super::Report;
use crate::error::QualityError;
use crate::result::{CaseResult, Settings};

/// A stored run of `tenant` and its recorded results.
pub async fn load(
    store: &dyn Store,
    tenant: &str,
    run_id: &str,
) -> Result<(EvalRun, Vec<CaseResult>), QualityError> {
    let run = store
        .get_eval_run(tenant, run_id)
        .await?
        .ok_or_else(|| QualityError::NoSuchRun {
            tenant: tenant.to_owned(),
            run_id: run_id.to_owned(),
        })?;
    let results = store
        .eval_results(tenant, run_id)
        .await?
        .into_iter()
        .map(|r| CaseResult::from_store(run_id, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((run, results))
}

/// The report on a stored run (however far it got), against `baseline` when given,
/// else against the baseline it was started with, if any; with its results.
pub async fn report(
    store: &dyn Store,
    tenant: &str,
    run_id: &str,
    baseline: Option<&str>,
) -> Result<(Report, Vec<CaseResult>), QualityError> {
    let (run, results) = load(store, tenant, run_id).await?;
    let baseline = match baseline {
        Some(id) => Some(id.to_owned()),
        None => Settings::of(&run)?.baseline,
    };
    let base = match &baseline {
        Some(id) => Some(load(store, tenant, id).await?),
        None => None,
    };
    let report = Report::build(
        &run,
        &results,
        base.as_ref().map(|(r, res)| (r, res.as_slice())),
    )?;
    Ok((report, results))
}
