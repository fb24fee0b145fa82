//! `[quality]`: the gate's and the sampling's suite files located, as workflow files
//! are, and the sampling's share, budget and retention checked.
//!
//! The decision: only where the suites are is checked here (a `.toml` path resolved
//! against the configuration file's directory); parsing a suite is the quality crate's
//! job when the gate runs, which reports the file, line and field at fault and refuses
//! the version it was judging.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Checker;
use super::engine::base_dir;
use crate::path::FieldPath;
use crate::resolved::{Quality, QualityGate, QualitySampling};
use crate::schema;

pub(super) fn quality(
    c: &mut Checker<'_>,
    raw: &schema::Quality,
    doc: &schema::Document,
    source: &str,
) -> Quality {
    Quality {
        gate: raw
            .gate
            .as_ref()
            .and_then(|gate| self::gate(c, gate, source)),
        sampling: sampling(c, &raw.sampling, source),
        few_shot_embeddings: few_shot(c, &raw.few_shot, doc),
    }
}

/// The libraries using embeddings, each with a route to embed through.
fn few_shot(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, schema::FewShotLibrary>,
    doc: &schema::Document,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (library, l) in raw {
        let path = FieldPath::root("quality").key("few_shot").key(library);
        match (l.similarity, &l.embedding_route) {
            (schema::FewShotSimilarity::Lexical, None) => {}
            (schema::FewShotSimilarity::Lexical, Some(_)) => c.invalid(
                path.key("embedding_route"),
                "is only for similarity = \"embeddings\"",
            ),
            (schema::FewShotSimilarity::Embeddings, None) => c.invalid(
                path.clone(),
                "embedding_route is required with similarity = \"embeddings\"",
            ),
            (schema::FewShotSimilarity::Embeddings, Some(route)) => {
                if doc.routes.contains_key(route) {
                    out.insert(library.clone(), route.clone());
                } else {
                    c.invalid(path.key("embedding_route"), "names no route in [routes]");
                }
            }
        }
    }
    out
}

/// A suite file named at `at`: a `.toml` path, resolved against the base directory.
fn suite_file(c: &mut Checker<'_>, at: FieldPath, file: &str, source: &str) -> Option<PathBuf> {
    let file = Path::new(file);
    let is_toml = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if !is_toml {
        c.invalid(at, "must be a suite file ending in .toml");
        return None;
    }
    Some(match base_dir(source) {
        Some(base) if file.is_relative() => base.join(file),
        _ => file.to_path_buf(),
    })
}

fn sampling(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, schema::Sampling>,
    source: &str,
) -> BTreeMap<String, QualitySampling> {
    let mut out = BTreeMap::new();
    // A name is a route's or a workflow's; which one, and that it exists, the server
    // checks at start against the suite's `[task]` and the workflows it registered.
    for (route, s) in raw {
        let path = FieldPath::root("quality").key("sampling").key(route);
        let suite = suite_file(c, path.key("suite"), &s.suite, source);
        if !(0.0..=1.0).contains(&s.share) {
            c.invalid(path.key("share"), "must be in [0, 1]");
        }
        if !(s.budget_per_hour.is_finite() && s.budget_per_hour >= 0.0) {
            c.invalid(path.key("budget_per_hour"), "US dollars, at least 0");
        }
        if s.retention.0 < Duration::from_secs(60) {
            c.invalid(path.key("retention"), "must be at least 1m");
        }
        if let Some(suite) = suite {
            out.insert(
                route.clone(),
                QualitySampling {
                    suite,
                    share: s.share,
                    budget_per_hour: s.budget_per_hour,
                    retention: s.retention.0,
                },
            );
        }
    }
    out
}

fn gate(c: &mut Checker<'_>, gate: &schema::Gate, source: &str) -> Option<QualityGate> {
    let path = FieldPath::root("quality").key("gate");
    if gate.suites.is_empty() {
        c.invalid(path.key("suites"), "must name at least one suite file");
    }
    let suites = gate
        .suites
        .iter()
        .enumerate()
        .filter_map(|(i, file)| suite_file(c, path.key("suites").index(i), file, source))
        .collect();
    Some(QualityGate {
        suites,
        on_fail: gate.on_fail,
    })
}
