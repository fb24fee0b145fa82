//! `[chaos]`: game days, experiments of the chaos library that the deployment runs
//! against itself at set times, so that its safeguards are proven on the live
//! configuration and not only once, on the day they were written.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::HumanDuration;

/// `[chaos]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chaos {
    /// The experiments to run and when, as `[{ experiment = "chaos/breaker-outage.toml",
    /// every = "24h" }, { experiment = "chaos/retry-by-class.toml", at = "03:30" }]`.
    /// They run one at a time, against this node's own address, in the order they fall
    /// due. Default: none.
    pub schedule: Vec<GameDay>,
    /// A JSONL file (relative to the configuration file's directory) each result is
    /// appended to and read back from at start, so that the dashboard, `/metrics` and
    /// the `chaos_failed` alert keep the latest results across restarts. Default: none
    /// (results are kept in memory only).
    pub history: Option<String>,
    /// The name of a `[[client_keys]]` entry the experiments present (an `operator` or
    /// `admin` when an experiment drains targets). Required when client keys are
    /// configured and the schedule is not empty; unused without keys.
    pub client_key: Option<String>,
}

/// One scheduled experiment: `{ experiment = "…", every = "24h" }` or `{ experiment =
/// "…", at = "03:30" }`, with `vars` for its `${name}` placeholders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameDay {
    /// The experiment file (TOML), relative to the configuration file's directory. It is
    /// read and checked when the server starts; a bad one stops the start with its
    /// line and field. Required.
    pub experiment: String,
    /// Run it this often, the first time one period after the start; at least `"1s"`.
    /// Give `every` or `at`, not both.
    pub every: Option<HumanDuration>,
    /// Run it every day at this time, `"HH:MM"` in UTC.
    pub at: Option<String>,
    /// Values of the experiment's `${name}` placeholders, as `holdfast chaos run
    /// --var name=value` gives them (`primary = "http://10.0.0.5:9100"`, the fault proxy
    /// in front of the first target's provider). Default: none.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}
