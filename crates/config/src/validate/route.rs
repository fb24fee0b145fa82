//! `[routes]`: references to targets and policies, and which policy's breaker and
//! budget each target gets.
//!
//! A target has one breaker and one budget however many routes list it, since they
//! describe the target's health. When routes with different policies share a target,
//! the first route in the file that lists it decides; a target no route lists gets the
//! `default` policy's.

use std::collections::BTreeMap;
use std::sync::Arc;

use holdfast_policy::pipeline::{self, Policy};

use super::policy::{DEFAULT, Resolved};
use super::{Checker, known};
use crate::locate::Locator;
use crate::path::FieldPath;
use crate::resolved::{Degraded, FewShot, Route, Target};
use crate::schema::{self, Document};

/// Every route that validated.
pub(crate) fn routes(
    c: &mut Checker<'_>,
    doc: &Document,
    policies: &BTreeMap<String, Resolved>,
) -> BTreeMap<String, Route> {
    doc.routes
        .iter()
        .filter_map(|(name, raw)| {
            let path = FieldPath::root("routes").key(name);
            Some((name.clone(), route(c, &path, name, raw, doc, policies)?))
        })
        .collect()
}

fn route(
    c: &mut Checker<'_>,
    path: &FieldPath,
    name: &str,
    raw: &schema::Route,
    doc: &Document,
    policies: &BTreeMap<String, Resolved>,
) -> Option<Route> {
    let mut ok = check_targets(c, &path.key("targets"), &raw.targets, doc);
    let policy = if doc.policies.contains_key(&raw.policy) || raw.policy == DEFAULT {
        policies.get(&raw.policy)
    } else {
        let mut names: Vec<String> = doc.policies.keys().cloned().collect();
        if !doc.policies.contains_key(DEFAULT) {
            names.insert(0, DEFAULT.to_owned());
        }
        let message = format!("unknown policy {:?} {}", raw.policy, known(names.iter()));
        c.invalid(path.key("policy"), message);
        None
    };
    let degraded = match &raw.degraded {
        Some(d) => degraded(c, &path.key("degraded"), d).map(Some),
        None => Some(None),
    };
    ok &= degraded.is_some();
    if let Some(few_shot) = &raw.few_shot {
        ok &= check_few_shot(c, &path.key("few_shot"), few_shot);
    }
    let policy = policy?;
    let retry_on = match raw.retry_on {
        schema::RetryOn::Same => pipeline::RetryOn::Same,
        schema::RetryOn::Next => pipeline::RetryOn::Next,
    };
    let policy = if policy.policy.retry_on == retry_on {
        policy.policy.clone()
    } else {
        Arc::new(Policy {
            retry_on,
            ..(*policy.policy).clone()
        })
    };
    ok.then(|| Route {
        name: name.to_owned(),
        targets: raw.targets.clone(),
        policy_name: raw.policy.clone(),
        policy,
        mid_stream: raw.mid_stream,
        degraded: degraded.flatten(),
        few_shot: raw.few_shot.clone(),
    })
}

/// Checks a route's few-shot library name and `k`.
fn check_few_shot(c: &mut Checker<'_>, path: &FieldPath, raw: &FewShot) -> bool {
    let mut ok = true;
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || "_.:/@-".contains(ch);
    if raw.library.is_empty() || raw.library.len() > 200 || !raw.library.chars().all(allowed) {
        c.invalid(
            path.key("library"),
            "must be 1..=200 bytes of letters, digits and _ . : / @ -",
        );
        ok = false;
    }
    if !(1..=32).contains(&raw.k) {
        c.invalid(path.key("k"), "must be 1..=32");
        ok = false;
    }
    ok
}

/// Checks that the list is not empty, names known targets, and names each once.
fn check_targets(
    c: &mut Checker<'_>,
    path: &FieldPath,
    targets: &[String],
    doc: &Document,
) -> bool {
    if targets.is_empty() {
        c.invalid(path.clone(), "a route needs at least one target");
        return false;
    }
    let mut ok = true;
    for (i, target) in targets.iter().enumerate() {
        if !doc.targets.contains_key(target) {
            let message = format!("unknown target {target:?} {}", known(doc.targets.keys()));
            c.invalid(path.index(i), message);
            ok = false;
        } else if let Some(first) = targets[..i].iter().position(|t| t == target) {
            c.invalid(
                path.index(i),
                format!("target {target:?} is listed twice (also at [{first}])"),
            );
            ok = false;
        }
    }
    ok
}

fn degraded(c: &mut Checker<'_>, path: &FieldPath, raw: &schema::Degraded) -> Option<Degraded> {
    let ttl = c.positive(path.key("ttl"), raw.ttl);
    if raw
        .static_response
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        c.invalid(
            path.key("static_response"),
            "must not be empty (leave it out for none)",
        );
        return None;
    }
    Some(Degraded {
        cache: raw.cache,
        ttl: ttl?,
        static_response: raw.static_response.clone(),
    })
}

/// Gives each target the breaker and budget of the first route in the file that lists
/// it, or of the `default` policy.
pub(crate) fn assign_settings(
    targets: &mut BTreeMap<String, Target>,
    routes: &BTreeMap<String, Route>,
    policies: &BTreeMap<String, Resolved>,
    doc: &Document,
    locator: &Locator<'_>,
) {
    let mut in_file_order: Vec<&String> = doc.routes.keys().collect();
    in_file_order.sort_by_key(|name| locator.offset(&FieldPath::root("routes").key(name)));
    let mut chosen: BTreeMap<&str, &Resolved> = BTreeMap::new();
    for route in in_file_order.iter().filter_map(|name| routes.get(*name)) {
        let Some(policy) = policies.get(&route.policy_name) else {
            continue;
        };
        for target in &route.targets {
            chosen.entry(target.as_str()).or_insert(policy);
        }
    }
    let default = policies.get(DEFAULT);
    for (name, target) in targets.iter_mut() {
        if let Some(policy) = chosen.get(name.as_str()).copied().or(default) {
            target.settings.breaker = policy.breaker;
            target.settings.budget = policy.budget;
        }
    }
}
