//! `[quality]`: the quality loop's settings in the server's configuration.

use serde::Deserialize;

/// `[quality]`: how configuration changes are judged by evaluation suites.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quality {
    /// `gate = { suites = [...], on_fail = "refuse" }`: every new configuration
    /// version (a reload, a text sent through the API, a rollback) is judged by the
    /// suites whose route it changed before it takes traffic. Default: no gate.
    pub gate: Option<Gate>,
}

/// The gate on configuration versions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Suite files (`.toml`, as `holdfast eval run` takes them); a relative path is
    /// relative to this configuration file's directory. A suite runs when the new
    /// version changes its route: the route's targets, their settings or providers,
    /// or its policy. At least one.
    pub suites: Vec<String>,
    /// What a failed gate does: `"refuse"` (the version never takes traffic: its
    /// routes are built beside the running ones and the suites run through them
    /// first), `"rollback"` (the version goes live, the suites run through it, and a
    /// failure restores the previous version) or `"alert"` (the suites run first, the
    /// version goes live whatever they say, and a failure raises an alert). Default
    /// `"refuse"`.
    #[serde(default)]
    pub on_fail: OnFail,
}

/// What a failed gate does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// The version is refused before it takes traffic.
    #[default]
    Refuse,
    /// The version goes live and is rolled back when its gate fails.
    Rollback,
    /// The version goes live; a failed gate raises an alert.
    Alert,
}

impl OnFail {
    /// Its name as written.
    pub fn name(self) -> &'static str {
        match self {
            OnFail::Refuse => "refuse",
            OnFail::Rollback => "rollback",
            OnFail::Alert => "alert",
        }
    }
}
