//! `[providers]` and `[targets]`: URLs, keys, prices, timeouts and limits.
//!
//! A target whose provider is unknown is reported once, at its `provider` field; a
//! target whose provider exists but is itself invalid is left out quietly, since the
//! provider's own error already says what to fix.

use std::collections::BTreeMap;

use holdfast_llm::client::Timeouts;
use holdfast_llm::{Format, Price, PriceError};
use holdfast_policy::concurrency;
use holdfast_policy::pipeline::TargetSettings;

use super::{Checker, known};
use crate::path::FieldPath;
use crate::resolved::{Probe, Provider, Target};
use crate::schema::{self, Document};

/// Every provider that validated.
pub(crate) fn providers(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, schema::Provider>,
) -> BTreeMap<String, Provider> {
    raw.iter()
        .filter_map(|(name, raw)| {
            let path = FieldPath::root("providers").key(name);
            Some((name.clone(), provider(c, &path, name, raw)?))
        })
        .collect()
}

fn provider(
    c: &mut Checker<'_>,
    path: &FieldPath,
    name: &str,
    raw: &schema::Provider,
) -> Option<Provider> {
    let url_ok = check_base_url(c, path.key("base_url"), &raw.base_url);
    let key = raw
        .key_env
        .as_ref()
        .and_then(|var| c.secret(path.key("key_env"), var));
    let version_ok = match &raw.azure_api_version {
        None => true,
        Some(_) if raw.format != Format::OpenAi => {
            c.invalid(
                path.key("azure_api_version"),
                "is for Azure OpenAI, whose format is \"openai\"",
            );
            false
        }
        Some(version)
            if version.is_empty()
                || !version
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.') =>
        {
            c.invalid(
                path.key("azure_api_version"),
                format!("{version:?} is not an API version such as \"2024-10-21\""),
            );
            false
        }
        Some(_) => true,
    };
    if !url_ok || !version_ok {
        return None;
    }
    Some(Provider {
        name: name.to_owned(),
        format: raw.format,
        base_url: raw.base_url.clone(),
        key,
        azure_api_version: raw.azure_api_version.clone(),
    })
}

fn check_base_url(c: &mut Checker<'_>, path: FieldPath, text: &str) -> bool {
    let problem = match url::Url::parse(text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => Some(format!(
            "{text:?} has scheme `{}`; use http:// or https://",
            url.scheme()
        )),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(format!("{text:?} has no host"))
        }
        Ok(_) => None,
        Err(e) => Some(format!("{text:?} is not a URL: {e}")),
    };
    match problem {
        Some(message) => {
            c.invalid(path, message);
            false
        }
        None => true,
    }
}

/// Every target that validated, with default registry settings (routes assign the
/// breaker and budget later).
pub(crate) fn targets(
    c: &mut Checker<'_>,
    doc: &Document,
    providers: &BTreeMap<String, Provider>,
) -> BTreeMap<String, Target> {
    doc.targets
        .iter()
        .filter_map(|(name, raw)| {
            let path = FieldPath::root("targets").key(name);
            let provider = if doc.providers.contains_key(&raw.provider) {
                providers.get(&raw.provider)
            } else {
                let message = format!(
                    "unknown provider {:?} {}",
                    raw.provider,
                    known(doc.providers.keys())
                );
                c.invalid(path.key("provider"), message);
                None
            };
            let target = target(c, &path, name, raw, provider);
            Some((name.clone(), target?))
        })
        .collect()
}

fn target(
    c: &mut Checker<'_>,
    path: &FieldPath,
    name: &str,
    raw: &schema::Target,
    provider: Option<&Provider>,
) -> Option<Target> {
    if raw.model.trim().is_empty() {
        c.invalid(path.key("model"), "must not be empty");
    }
    if raw.context_window == 0 {
        c.invalid(path.key("context_window"), "must be at least 1 token");
    }
    let price =
        Price::new(raw.price.input_per_mtok, raw.price.output_per_mtok).map_err(|e| match e {
            PriceError::Invalid { field, value } => {
                c.invalid(
                    path.key("price").key(field),
                    format!("{value} is not a price (a finite number ≥ 0)"),
                );
            }
        });
    let timeouts = timeouts(c, &path.key("timeouts"), &raw.timeouts);
    if raw.probe.every.0 < std::time::Duration::from_millis(100) {
        c.invalid(
            path.key("probe").key("every"),
            format!("{:?} is below the shortest, 100ms", raw.probe.every.0),
        );
    }
    let probe = raw.probe.enabled.then_some(Probe {
        every: raw.probe.every.0,
        kind: raw.probe.kind,
    });
    let settings = TargetSettings {
        breaker: None,
        budget: None,
        requests: c.per_minute(path.key("requests_per_minute"), raw.requests_per_minute),
        tokens: c.per_minute(path.key("tokens_per_minute"), raw.tokens_per_minute),
        concurrency: concurrency(c, &path.key("concurrency"), &raw.concurrency),
    };
    let provider = provider?;
    if raw.model.trim().is_empty() || raw.context_window == 0 {
        return None;
    }
    Some(Target {
        name: name.to_owned(),
        provider: provider.name.clone(),
        format: provider.format,
        base_url: provider.base_url.clone(),
        model: raw.model.clone(),
        key: provider.key.clone(),
        azure_api_version: provider.azure_api_version.clone(),
        context_window: raw.context_window,
        price: price.ok()?,
        timeouts: timeouts?,
        supports_prefill: raw.supports_prefill.unwrap_or(match provider.format {
            Format::Anthropic => true,
            Format::OpenAi => false,
        }),
        takes_filtered: raw.takes_filtered,
        probe,
        settings,
    })
}

/// A target's concurrency limiter, when it asks for one; each refused field named.
fn concurrency(
    c: &mut Checker<'_>,
    path: &FieldPath,
    raw: &schema::Concurrency,
) -> Option<concurrency::Config> {
    if !raw.adaptive {
        return None;
    }
    let config = concurrency::Config {
        limit: concurrency::LimitConfig {
            initial: raw.initial,
            min: raw.min,
            max: raw.max,
            tolerance: raw.tolerance,
            ..concurrency::LimitConfig::default()
        },
        throttle: raw.throttle.then(concurrency::ThrottleConfig::default),
        max_queue: raw.max_queue as usize,
        max_wait: raw.max_wait.0,
    };
    match config.validate() {
        Ok(()) => Some(config),
        Err(refused) => {
            let field = refused
                .field
                .strip_prefix("concurrency.")
                .unwrap_or(refused.field);
            c.invalid(path.key(field), refused.problem);
            None
        }
    }
}

/// The longest learned first-byte timeout of a stream, and the wait before any is
/// learned.
const LEARNED_FIRST_BYTE_CEILING: std::time::Duration = std::time::Duration::from_secs(10);

fn timeouts(c: &mut Checker<'_>, path: &FieldPath, raw: &schema::Timeouts) -> Option<Timeouts> {
    let total = c.positive(path.key("total"), raw.total);
    let mut ok = total.is_some();
    let fields = [
        ("connect", Some(raw.connect)),
        ("first_byte", raw.first_byte),
        ("idle", Some(raw.idle)),
    ];
    for (field, value) in fields {
        let Some(value) = value else { continue };
        match (c.positive(path.key(field), value), total) {
            (None, _) => ok = false,
            (Some(value), Some(total)) if value > total => {
                c.invalid(
                    path.key(field),
                    format!("{value:?} is longer than timeouts.total {total:?}"),
                );
                ok = false;
            }
            (Some(_), _) => {}
        }
    }
    ok.then_some(Timeouts {
        connect: raw.connect.0,
        first_byte: raw
            .first_byte
            .map_or(LEARNED_FIRST_BYTE_CEILING.min(raw.total.0), |set| set.0),
        learns_first_byte: raw.first_byte.is_none(),
        idle: raw.idle.0,
        total: raw.total.0,
    })
}
