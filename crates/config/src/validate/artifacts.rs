//! `[artifacts]`: the object store's URL and the sizes, checked whole.

use std::time::Duration;

use holdfast_engine::ArtifactSettings;

use super::Checker;
use crate::path::FieldPath;
use crate::schema;

/// The smallest and largest `threshold`.
const THRESHOLD: std::ops::RangeInclusive<u64> = 1 << 10..=1 << 20;
/// The largest `max_output`.
const MAX_OUTPUT: u64 = 256 << 20;

/// The artifact settings, `None` without a `url` or with a problem (recorded in `c`).
pub(super) fn artifacts(c: &mut Checker<'_>, raw: &schema::Artifacts) -> Option<ArtifactSettings> {
    let path = FieldPath::root("artifacts");
    let url = raw.url.as_deref()?;
    let mut ok = true;
    if let Some(problem) = url_problem(url) {
        c.invalid(path.key("url"), problem);
        ok = false;
    }
    let (threshold, max_output) = (raw.threshold.0, raw.max_output.0);
    if !THRESHOLD.contains(&threshold) {
        c.invalid(path.key("threshold"), "must be \"1KiB\" to \"1MiB\"");
        ok = false;
    }
    if !(threshold..=MAX_OUTPUT).contains(&max_output) {
        c.invalid(
            path.key("max_output"),
            "must be at least `threshold` and at most \"256MiB\"",
        );
        ok = false;
    }
    for (key, value) in [
        ("sweep_interval", raw.sweep_interval.0),
        ("sweep_grace", raw.sweep_grace.0),
    ] {
        if value < Duration::from_secs(1) {
            c.invalid(path.key(key), "must be \"1s\" or longer");
            ok = false;
        }
    }
    ok.then(|| ArtifactSettings {
        url: url.to_owned(),
        threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
        max_output: usize::try_from(max_output).unwrap_or(usize::MAX),
        sweep_interval: raw.sweep_interval.0,
        sweep_grace: raw.sweep_grace.0,
    })
}

fn url_problem(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("{url:?} is not a URL: {e}")),
    };
    match parsed.scheme() {
        "file" if parsed.to_file_path().is_ok() => None,
        "file" => Some(format!("{url:?}: expected file:///absolute/path")),
        "s3" if parsed.host_str().is_some_and(|b| !b.is_empty()) => None,
        "s3" => Some(format!("{url:?}: expected s3://bucket/prefix")),
        other => Some(format!(
            "{url:?} has scheme `{other}`; use file:// or s3://"
        )),
    }
}
