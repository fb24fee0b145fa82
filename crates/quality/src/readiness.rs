//! The production checklist, checked against a deployment where a machine can check it.
//!
//! The decision: the checks are a pure function of a [`Deployment`], a snapshot the
//! server takes of itself (its workflows as written, the suites of its quality gate,
//! each suite's newest gate run, its alert rules and where they go), so every verdict
//! is reproducible from what the snapshot holds and tested without a server. Each item
//! says why it passed or failed in terms a person can act on; what no machine can
//! check is listed apart, for a person to tick.
//!
//! Task types are the routes and workflows the gate's suites run against, and every
//! registered workflow (a workflow with no suite is a task type without a test set).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::suite::{Suite, TaskType};

/// The least labeled cases a task type's suites hold.
pub const MIN_LABELED: usize = 200;
/// The least adversarial cases a task type's suites hold.
pub const MIN_ADVERSARIAL: usize = 50;

/// What the checks read.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The running configuration's version.
    pub config_version: Option<u64>,
    /// Registered workflows, the newest version of each: name and definition as
    /// written.
    pub workflows: Vec<(String, Value)>,
    /// The quality gate's suites (empty without a gate).
    pub suites: Vec<Suite>,
    /// Suite files of the gate that did not load, with why.
    pub broken_suites: Vec<String>,
    /// Per suite name: its newest finished gate run through the running version.
    pub gate_runs: BTreeMap<String, GateRun>,
    /// The alert rules: whether they are evaluated, where notices go, and the enabled
    /// rules by name.
    pub alerts: AlertRouting,
}

/// A suite's newest finished gate run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRun {
    /// Its id.
    pub run_id: String,
    /// Whether its gate passed.
    pub passed: bool,
    /// Whether it ran the suite file and dataset as they are now.
    pub current_suite: bool,
}

/// Where alerts go.
#[derive(Debug, Clone, Default)]
pub struct AlertRouting {
    /// Whether rules are evaluated.
    pub enabled: bool,
    /// Webhooks notices are posted to.
    pub webhooks: usize,
    /// The enabled rules' names.
    pub rules: Vec<String>,
}

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The checklist's section: `integration`, `test sets`, `monitoring`, `ownership`.
    pub section: String,
    /// What is checked (`tool steps of demo-article`).
    pub name: String,
    /// Whether it holds.
    pub passed: bool,
    /// Why, in words.
    pub reason: String,
}

/// The checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checklist {
    /// The running configuration's version.
    pub config_version: Option<u64>,
    /// Whether every machine-checked item passed.
    pub ready: bool,
    /// The items a machine checked.
    pub items: Vec<Item>,
    /// What a person must check and tick.
    pub for_people: Vec<String>,
}

/// The checklist's sections, in order.
const SECTIONS: &[&str] = &["integration", "test sets", "ownership", "monitoring"];

/// What no machine can check here.
const FOR_PEOPLE: &[&str] = &[
    "integration: the agents' tools are the production ones (not staging), with production credentials and rate limits",
    "test sets: the labeled cases are real inputs from the domain, labeled by people who know it, and refreshed as usage changes",
    "test sets: the adversarial cases cover the attacks and edge cases seen in this domain (prompt injection, out-of-scope requests, malformed input)",
    "domain data: the data the agents read is current, and its owners know the agents read it",
    "ownership: each owner agreed to own the task type and is on call for its alerts",
    "ownership: the runbooks were rehearsed (a gate failure, a rollback, an escalation backlog)",
];

/// Checks `d` against the checklist.
pub fn check(d: &Deployment) -> Checklist {
    let mut items = Vec::new();
    integration(d, &mut items);
    let types = task_types(d);
    for broken in &d.broken_suites {
        items.push(item(
            "test sets",
            "gate suites",
            false,
            format!("a suite does not load: {broken}"),
        ));
    }
    if types.is_empty() {
        items.push(item(
            "test sets",
            "task types",
            false,
            "no task type: set `[quality] gate` suites for each route and workflow in use"
                .to_owned(),
        ));
    }
    for (name, suites) in &types {
        test_sets(d, name, suites, &mut items);
        ownership(name, suites, &mut items);
    }
    monitoring(d, &mut items);
    // Section by section, in the checklist's order (stable: each keeps its own order).
    let rank = |section: &str| SECTIONS.iter().position(|s| *s == section);
    items.sort_by_key(|i| rank(&i.section));
    Checklist {
        config_version: d.config_version,
        ready: items.iter().all(|i| i.passed),
        items,
        for_people: FOR_PEOPLE.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn item(section: &str, name: &str, passed: bool, reason: String) -> Item {
    Item {
        section: section.to_owned(),
        name: name.to_owned(),
        passed,
        reason,
    }
}

/// Every tool step (`http`, `worker`) sets its own `timeout` and `retry`.
fn integration(d: &Deployment, items: &mut Vec<Item>) {
    for (workflow, definition) in &d.workflows {
        let steps = definition["steps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut tools = 0;
        let mut missing = Vec::new();
        for step in steps {
            let kind = step["kind"].as_str().unwrap_or_default();
            if kind != "http" && kind != "worker" {
                continue;
            }
            tools += 1;
            let name = step["name"].as_str().unwrap_or("?");
            let lacks: Vec<&str> = ["timeout", "retry"]
                .into_iter()
                .filter(|field| step.get(field).is_none())
                .collect();
            if !lacks.is_empty() {
                missing.push(format!("{name} (no {})", lacks.join(", no ")));
            }
        }
        let reason = if missing.is_empty() {
            format!("{tools} tool steps, each with its own timeout and retry policy")
        } else {
            format!(
                "tool steps on the defaults instead of their own settings: {}",
                missing.join("; ")
            )
        };
        items.push(item(
            "integration",
            &format!("tool steps of {workflow}"),
            missing.is_empty(),
            reason,
        ));
    }
}

/// The task types, each with its suites: by `route NAME` or `workflow NAME`.
fn task_types(d: &Deployment) -> BTreeMap<String, Vec<&Suite>> {
    let mut types: BTreeMap<String, Vec<&Suite>> = BTreeMap::new();
    for suite in &d.suites {
        let name = match &suite.task {
            TaskType::Route { route } => format!("route {route}"),
            TaskType::Workflow { workflow, .. } => format!("workflow {workflow}"),
        };
        types.entry(name).or_default().push(suite);
    }
    for (workflow, _) in &d.workflows {
        types.entry(format!("workflow {workflow}")).or_default();
    }
    types
}

fn test_sets(d: &Deployment, name: &str, suites: &[&Suite], items: &mut Vec<Item>) {
    let count = |tag: &str| -> usize {
        suites
            .iter()
            .map(|s| {
                s.cases
                    .iter()
                    .filter(|c| c.tags.iter().any(|t| t == tag))
                    .count()
            })
            .sum()
    };
    let (labeled, adversarial) = (count("labeled"), count("adversarial"));
    let enough = labeled >= MIN_LABELED && adversarial >= MIN_ADVERSARIAL;
    let names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
    let reason = if suites.is_empty() {
        "no suite of the quality gate runs against it".to_owned()
    } else {
        format!(
            "{labeled} labeled (at least {MIN_LABELED}) and {adversarial} adversarial (at \
             least {MIN_ADVERSARIAL}) cases in {}",
            names.join(", ")
        )
    };
    items.push(item("test sets", &format!("{name}: cases"), enough, reason));
    if suites.is_empty() {
        return;
    }
    let unset: Vec<&str> = suites
        .iter()
        .filter(|s| s.thresholds.pass_rate.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    let reason = if unset.is_empty() {
        let set: Vec<String> = suites
            .iter()
            .map(|s| {
                let rates: Vec<String> = s
                    .thresholds
                    .pass_rate
                    .iter()
                    .map(|(tag, rate)| format!("{tag} {:.0}%", rate * 100.0))
                    .collect();
                format!("{}: {}", s.name, rates.join(", "))
            })
            .collect();
        format!("pass rates set ({})", set.join("; "))
    } else {
        format!(
            "no `[thresholds] pass_rate` in {} (only a baseline comparison would gate them)",
            unset.join(", ")
        )
    };
    items.push(item(
        "test sets",
        &format!("{name}: thresholds"),
        unset.is_empty(),
        reason,
    ));
    let mut failing = Vec::new();
    let mut passing = Vec::new();
    for suite in suites {
        match d.gate_runs.get(&suite.name) {
            Some(run) if run.passed && run.current_suite => passing.push(run.run_id.clone()),
            Some(run) if run.passed => failing.push(format!(
                "{}: its newest gate run {} ran an older suite file or dataset",
                suite.name, run.run_id
            )),
            Some(run) => failing.push(format!(
                "{}: its newest gate run {} failed",
                suite.name, run.run_id
            )),
            None => failing.push(format!(
                "{}: no gate run through the running version",
                suite.name
            )),
        }
    }
    let reason = if failing.is_empty() {
        format!("passed: {}", passing.join(", "))
    } else {
        failing.join("; ")
    };
    items.push(item(
        "test sets",
        &format!("{name}: gate passed"),
        failing.is_empty(),
        reason,
    ));
}

fn ownership(name: &str, suites: &[&Suite], items: &mut Vec<Item>) {
    let owner = suites.iter().find_map(|s| s.owner.clone());
    let runbook = suites.iter().find_map(|s| s.runbook.clone());
    let (passed, reason) = match (&owner, &runbook) {
        (Some(o), Some(r)) => (true, format!("owner {o}, runbook {r}")),
        _ => {
            let mut lacks = Vec::new();
            if owner.is_none() {
                lacks.push("`owner`");
            }
            if runbook.is_none() {
                lacks.push("`runbook`");
            }
            let place = if suites.is_empty() {
                "it has no suite to set them in"
            } else {
                "set them in its suite file"
            };
            (false, format!("no {}: {place}", lacks.join(" and no ")))
        }
    };
    items.push(item(
        "ownership",
        &format!("{name}: owner and runbook"),
        passed,
        reason,
    ));
}

fn monitoring(d: &Deployment, items: &mut Vec<Item>) {
    let a = &d.alerts;
    let (passed, reason) = if !a.enabled {
        (
            false,
            "alert rules are off (`[alerts] enabled = false`)".to_owned(),
        )
    } else if a.webhooks == 0 {
        (
            false,
            "alerts reach only the log and the dashboard: set `[alerts] webhooks` so a \
             person is paged"
                .to_owned(),
        )
    } else {
        (
            true,
            format!(
                "{} enabled rules, notices to {} webhooks",
                a.rules.len(),
                a.webhooks
            ),
        )
    };
    items.push(item("monitoring", "alerts routed", passed, reason));
    let tracked = |rule: &str| a.enabled && a.rules.iter().any(|r| r == rule);
    for (what, rule) in [
        ("cost per task", "cost_per_task"),
        ("escalation rate", "escalation_rate"),
        ("completion rate per task type", "completion_rate"),
    ] {
        let passed = tracked(rule);
        let reason = if passed {
            format!("alert rule {rule} enabled")
        } else {
            format!("no enabled alert rule {rule}")
        };
        items.push(item(
            "monitoring",
            &format!("{what} tracked"),
            passed,
            reason,
        ));
    }
}

impl Checklist {
    /// The checklist for people: each item with its verdict and reason, then what a
    /// person must tick.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let version = self
            .config_version
            .map_or_else(|| "unrecorded".to_owned(), |v| v.to_string());
        out.push_str(&format!("readiness of configuration version {version}\n"));
        let mut section = "";
        for i in &self.items {
            if i.section != section {
                section = &i.section;
                out.push_str(&format!("\n{section}\n"));
            }
            let verdict = if i.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("  [{verdict}] {}: {}\n", i.name, i.reason));
        }
        out.push_str("\nfor a person to check\n");
        for p in &self.for_people {
            out.push_str(&format!("  [ ] {p}\n"));
        }
        let failed = self.items.iter().filter(|i| !i.passed).count();
        out.push_str(&format!(
            "\n{}: {} of {} machine checks pass\n",
            if self.ready { "ready" } else { "NOT ready" },
            self.items.len() - failed,
            self.items.len()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suite(route: &str, labeled: usize, adversarial: usize, owned: bool) -> Suite {
        let mut lines = String::new();
        for i in 0..labeled + adversarial {
            let tag = if i < labeled {
                "labeled"
            } else {
                "adversarial"
            };
            lines.push_str(&format!(
                "{{\"id\": \"c{i}\", \"input\": [{{\"role\": \"user\", \"content\": \"q\"}}], \
                 \"assert\": [{{\"type\": \"contains\", \"value\": \"a\"}}], \"tags\": [\"{tag}\"]}}\n"
            ));
        }
        let owner = if owned {
            "owner = \"support-team\"\nrunbook = \"https://runbooks/support\"\n"
        } else {
            ""
        };
        let text = format!(
            "name = \"{route}-suite\"\n{owner}dataset = \"d.jsonl\"\n[task]\nroute = \"{route}\"\n\
             [thresholds]\npass_rate = {{ all = 0.9 }}\n"
        );
        Suite::parse(("s.toml", &text), ("d.jsonl", &lines)).unwrap()
    }

    fn routing() -> AlertRouting {
        AlertRouting {
            enabled: true,
            webhooks: 1,
            rules: vec!["cost_per_task".into(), "escalation_rate".into()],
        }
    }

    #[test]
    fn a_deployment_that_meets_the_list_passes_each_machine_item() {
        let s = suite("support", 200, 50, true);
        let mut d = Deployment {
            config_version: Some(3),
            suites: vec![s],
            alerts: routing(),
            ..Deployment::default()
        };
        d.gate_runs.insert(
            "support-suite".into(),
            GateRun {
                run_id: "gate-v3-1/support-suite".into(),
                passed: true,
                current_suite: true,
            },
        );
        let list = check(&d);
        let failed: Vec<&Item> = list.items.iter().filter(|i| !i.passed).collect();
        // Only the completion rule, which this deployment switched off.
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].name, "completion rate per task type tracked");
        assert!(!list.ready);
        assert!(list.to_text().contains("[pass] route support: gate passed"));
    }

    #[test]
    fn each_shortfall_fails_its_item_with_the_reason() {
        let workflow = json!({"steps": [
            {"name": "fetch", "kind": "http", "timeout": "5s", "retry": {"max_attempts": 3}},
            {"name": "publish", "kind": "http"},
            {"name": "draft", "kind": "llm"}]});
        let d = Deployment {
            workflows: vec![("article".into(), workflow)],
            suites: vec![suite("support", 12, 2, false)],
            alerts: AlertRouting {
                enabled: true,
                webhooks: 0,
                rules: vec![],
            },
            ..Deployment::default()
        };
        let list = check(&d);
        let reason = |name: &str| {
            let i = list.items.iter().find(|i| i.name == name).unwrap();
            assert!(!i.passed, "{i:?}");
            i.reason.clone()
        };
        assert!(reason("tool steps of article").contains("publish (no timeout, no retry)"));
        assert!(reason("route support: cases").contains("12 labeled (at least 200)"));
        assert!(
            reason("route support: gate passed")
                .contains("no gate run through the running version")
        );
        assert!(reason("route support: owner and runbook").contains("no `owner` and no `runbook`"));
        assert!(reason("workflow article: cases").contains("no suite"));
        assert!(reason("alerts routed").contains("webhooks"));
        assert!(reason("cost per task tracked").contains("no enabled alert rule"));
        assert!(!list.for_people.is_empty());
    }
}
