//! `[engine]`: the workflow engine's settings, checked against what the store accepts.
//!
//! The decision: the node id is checked here with the store's own name rules (letters,
//! digits and `_ . : / @ -`, at most 200 bytes), so a bad one is a line in
//! `config check` instead of a refused lease at the first claim. Workflow files are
//! only located here (resolved against the configuration file's directory and checked
//! for a known extension); parsing them is the engine's job at startup, which reports
//! the file and the field at fault. Egress patterns are parsed by the engine's own
//! parser, so what `config check` accepts is exactly what the engine enforces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_engine::egress::{Pattern, Rules};

use super::Checker;
use crate::Env;
use crate::path::FieldPath;
use crate::resolved::Engine;
use crate::schema;

/// The longest node id, as the store limits names.
const MAX_NAME_LEN: usize = 200;
/// The shortest lease: shorter ones expire between two renewals under ordinary load.
const MIN_LEASE: Duration = Duration::from_millis(100);
/// The largest task input: the store's default document limit.
const MAX_INPUT_BYTES: u64 = 1 << 20;
/// The most tasks one node runs at once.
const MAX_CONCURRENT_TASKS: u64 = 100_000;
/// The node id when neither the file nor `HOSTNAME` gives one.
const DEFAULT_NODE_ID: &str = "node-1";

/// Checks `[engine]`; `source` is the configuration file's name (`<defaults>` without
/// a file), against whose directory workflow paths are resolved.
pub(super) fn engine(
    c: &mut Checker<'_>,
    raw: &schema::Engine,
    env: Env<'_>,
    source: &str,
    max_input: Option<u64>,
) -> Option<Engine> {
    let path = FieldPath::root("engine");
    let node_id = match &raw.node_id {
        Some(id) => match name_problem(id) {
            None => Some(id.clone()),
            Some(problem) => {
                c.invalid(path.key("node_id"), problem);
                None
            }
        },
        None => Some(default_node_id(env)),
    };
    let lease = raw.lease.0;
    if lease < MIN_LEASE {
        c.invalid(path.key("lease"), "must be at least \"100ms\"");
    }
    let poll = raw.poll_interval.0;
    if poll.is_zero() {
        c.invalid(path.key("poll_interval"), "must be longer than zero");
    } else if poll > lease {
        c.invalid(
            path.key("poll_interval"),
            "must not be longer than `lease` (an idle node would miss expired leases)",
        );
    }
    if !(1..=MAX_CONCURRENT_TASKS).contains(&raw.max_concurrent_tasks) {
        c.invalid(
            path.key("max_concurrent_tasks"),
            format!("must be 1..={MAX_CONCURRENT_TASKS}"),
        );
    }
    let max_input_ok = (1..=max_input.unwrap_or(MAX_INPUT_BYTES)).contains(&raw.max_input_bytes.0);
    if !max_input_ok {
        let message = match max_input {
            Some(max) => format!("must be 1 byte to `artifacts.max_output` ({max} bytes)"),
            None => format!(
                "must be 1 byte to 1MiB ({MAX_INPUT_BYTES} bytes), or up to \
                 `artifacts.max_output` with `[artifacts]`"
            ),
        };
        c.invalid(path.key("max_input_bytes"), message);
    }
    let base = base_dir(source);
    let mut workflows = Vec::with_capacity(raw.workflows.len());
    for (i, file) in raw.workflows.iter().enumerate() {
        let at = path.key("workflows").index(i);
        if file.trim().is_empty() {
            c.invalid(at, "must name a file");
            continue;
        }
        let file = Path::new(file);
        let known = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("toml"));
        if !known {
            c.invalid(at, "must end in .json or .toml");
            continue;
        }
        workflows.push(match &base {
            Some(base) if file.is_relative() => base.join(file),
            _ => file.to_path_buf(),
        });
    }
    let rules = egress(c, &path.key("egress"), &raw.egress);
    let ok = lease >= MIN_LEASE
        && !poll.is_zero()
        && poll <= lease
        && (1..=MAX_CONCURRENT_TASKS).contains(&raw.max_concurrent_tasks)
        && max_input_ok
        && workflows.len() == raw.workflows.len();
    if !ok {
        return None;
    }
    Some(Engine {
        node_id: node_id?,
        lease,
        poll_interval: poll,
        max_concurrent_tasks: usize::try_from(raw.max_concurrent_tasks).ok()?,
        max_input_bytes: usize::try_from(raw.max_input_bytes.0).ok()?,
        workflows,
        egress: rules?,
    })
}

/// `[engine.egress]`: every allow pattern parsed, each bad one reported at its index.
fn egress(c: &mut Checker<'_>, path: &FieldPath, raw: &schema::Egress) -> Option<Rules> {
    let mut allow = Vec::with_capacity(raw.allow.len());
    for (i, text) in raw.allow.iter().enumerate() {
        match Pattern::parse(text) {
            Ok(pattern) => allow.push(pattern),
            Err(e) => c.invalid(path.key("allow").index(i), e.to_string()),
        }
    }
    (allow.len() == raw.allow.len()).then(|| Rules::new(allow, raw.follow_redirects))
}

/// Why `id` is not a valid store name, if it is not.
pub(crate) fn name_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_NAME_LEN {
        return Some(format!("must be 1 to {MAX_NAME_LEN} bytes"));
    }
    id.chars()
        .find(|c| !name_char(*c))
        .map(|c| format!("{c:?} is not allowed; use letters, digits and _ . : / @ -"))
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.:/@-".contains(c)
}

/// `HOSTNAME` made into a valid name, or `node-1`.
fn default_node_id(env: Env<'_>) -> String {
    let Some(host) = env("HOSTNAME") else {
        return DEFAULT_NODE_ID.to_owned();
    };
    let cleaned: String = host
        .trim()
        .chars()
        .map(|c| if name_char(c) { c } else { '-' })
        .take(MAX_NAME_LEN)
        .collect();
    if cleaned.is_empty() {
        DEFAULT_NODE_ID.to_owned()
    } else {
        cleaned
    }
}

/// The directory relative workflow paths start from: the configuration file's, or
/// none (the working directory) without a file.
pub(super) fn base_dir(source: &str) -> Option<PathBuf> {
    if source == crate::load::NO_FILE {
        return None;
    }
    Path::new(source)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_the_store_name_rules() {
        assert_eq!(name_problem("node-1"), None);
        assert_eq!(name_problem("eu-west/1@host.example"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("has space").unwrap().contains("' '"));
        assert!(name_problem(&"x".repeat(201)).is_some());
    }

    #[test]
    fn the_default_node_id_is_a_cleaned_hostname() {
        let env = |name: &str| (name == "HOSTNAME").then(|| "web 01.local".to_owned());
        assert_eq!(default_node_id(&env), "web-01.local");
        let none = |_: &str| None;
        assert_eq!(default_node_id(&none), "node-1");
    }

    #[test]
    fn workflow_paths_start_at_the_config_file() {
        assert_eq!(base_dir("conf/holdfast.toml"), Some(PathBuf::from("conf")));
        assert_eq!(base_dir("holdfast.toml"), None);
        assert_eq!(base_dir("<defaults>"), None);
    }
}
