//! `[quality]`: the gate's suite files located, as workflow files are.
//!
//! The decision: only where the suites are is checked here (a `.toml` path resolved
//! against the configuration file's directory); parsing a suite is the quality crate's
//! job when the gate runs, which reports the file, line and field at fault and refuses
//! the version it was judging.

use std::path::Path;

use super::Checker;
use super::engine::base_dir;
use crate::path::FieldPath;
use crate::resolved::{Quality, QualityGate};
use crate::schema;

pub(super) fn quality(c: &mut Checker<'_>, raw: &schema::Quality, source: &str) -> Quality {
    let Some(gate) = &raw.gate else {
        return Quality::default();
    };
    let path = FieldPath::root("quality").key("gate");
    if gate.suites.is_empty() {
        c.invalid(path.key("suites"), "must name at least one suite file");
    }
    let base = base_dir(source);
    let mut suites = Vec::with_capacity(gate.suites.len());
    for (i, file) in gate.suites.iter().enumerate() {
        let at = path.key("suites").index(i);
        let file = Path::new(file);
        let is_toml = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if !is_toml {
            c.invalid(at, "must be a suite file ending in .toml");
            continue;
        }
        suites.push(match &base {
            Some(base) if file.is_relative() => base.join(file),
            _ => file.to_path_buf(),
        });
    }
    Quality {
        gate: Some(QualityGate {
            suites,
            on_fail: gate.on_fail,
        }),
    }
}
