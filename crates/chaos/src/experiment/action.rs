//! What the method and the rollbacks do: replace a mock's or a fault proxy's fault set,
//! drain or restore a target on holdfast, run a command (kill or restart a node, pause
//! a database). Waiting is done by the runner, which reports while it waits.

use std::time::Duration;

use serde_json::json;

use super::spec::{Action, ActionKind};
use crate::api::Api;

/// The longest an `exec` command may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a drain lasts when the action does not say: the rollback ends it sooner.
const DEFAULT_DRAIN: Duration = Duration::from_secs(300);

/// One action as it ran.
#[derive(Debug, Clone)]
pub struct ActionLog {
    /// `method` or `rollbacks`.
    pub list: String,
    /// What it did.
    pub what: String,
    /// When it started, since the experiment's start.
    pub at: Duration,
    /// When it finished.
    pub done: Duration,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Action {
    /// The action in a few words.
    pub fn describe(&self) -> String {
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        match self.action {
            ActionKind::Faults => {
                let faults = self.faults.clone().unwrap_or_default();
                let inline = toml::to_string(&faults).unwrap_or_default();
                let inline = inline.trim().replace('\n', "; ");
                let what = if inline.is_empty() { "none" } else { &inline };
                format!("faults at {}: {what}", or_empty(&self.url))
            }
            ActionKind::Drain => format!("drain {}", or_empty(&self.target)),
            ActionKind::Restore => format!("restore {}", or_empty(&self.target)),
            ActionKind::Wait => format!(
                "wait {}",
                self.duration.map(|d| d.to_string()).unwrap_or_default()
            ),
            ActionKind::Exec => format!("exec {}", self.command.join(" ")),
        }
    }

    /// Does it (all but `wait`).
    pub(crate) async fn apply(&self, api: &Api) -> Result<(), String> {
        match self.action {
            ActionKind::Faults => self.set_faults().await,
            ActionKind::Drain => {
                let target = self.target.clone().unwrap_or_default();
                let length = self.duration.map_or(DEFAULT_DRAIN, |d| d.duration());
                let body = json!({"for": format!("{}s", length.as_secs().max(1))});
                let path = format!("/admin/targets/{target}/drain");
                api.call(reqwest::Method::POST, &path, Some(body))
                    .await
                    .map(|_| ())
            }
            ActionKind::Restore => {
                let target = self.target.clone().unwrap_or_default();
                let path = format!("/admin/targets/{target}/restore");
                api.call(reqwest::Method::POST, &path, Some(json!({})))
                    .await
                    .map(|_| ())
            }
            ActionKind::Wait => Ok(()),
            ActionKind::Exec => self.exec().await,
        }
    }

    async fn set_faults(&self) -> Result<(), String> {
        let base = self.url.clone().unwrap_or_default();
        let url = format!("{}/admin/faults", base.trim_end_matches('/'));
        let faults = self.faults.clone().unwrap_or_default();
        let text = toml::to_string(&faults).map_err(|e| e.to_string())?;
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("POST {url}: {}: {body}", status.as_u16()))
    }

    async fn exec(&self) -> Result<(), String> {
        let Some((program, args)) = self.command.split_first() else {
            return Err("no command".to_owned());
        };
        let mut command = tokio::process::Command::new(program);
        command.args(args).kill_on_drop(true);
        let output = tokio::time::timeout(EXEC_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("{program} did not finish within {EXEC_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "{program} exited with {}: {}",
            output.status,
            stderr.trim()
        ))
    }
}
