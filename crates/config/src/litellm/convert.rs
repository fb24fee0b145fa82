//! The mapping from LiteLLM's settings to holdfast's, one rule per key.
//!
//! The decisions, where the two differ in kind:
//! - a LiteLLM model group spreads calls over its deployments; a holdfast route tries
//!   its targets in order. A group becomes a route whose chain is its deployments in
//!   file order, then its fallbacks (general, context-window, content-policy), so
//!   every target LiteLLM could reach is still reached, in a fixed order;
//! - LiteLLM counts retries per error class; holdfast retries by class on its own (a
//!   400 or 401 is never retried on the same target, a 429 or 5xx is). The largest
//!   count for a retryable class becomes `retry.max_attempts`; the rest is a note;
//! - a cooldown after `allowed_fails` failures becomes a breaker that opens at a 50%
//!   failure rate over 60 s once it holds `allowed_fails + 1` calls, open for
//!   `cooldown_time` (not doubled);
//! - a key written in the file is never copied: the provider's `key_env` names the
//!   variable it must be put in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::yaml::{Node, Value};
use super::{ImportError, Imported, Note};

/// Holdfast's default timeouts, in seconds, to keep a converted set consistent.
const CONNECT: f64 = 2.0;
const FIRST_BYTE: f64 = 10.0;
const IDLE: f64 = 15.0;
const TOTAL: f64 = 120.0;

/// The Azure API version used when a deployment names none.
const AZURE_API_VERSION: &str = "2024-10-21";

/// Providers that speak OpenAI's format at a known address: LiteLLM prefix, base URL,
/// the variable LiteLLM reads the key from.
const OPENAI_COMPATIBLE: &[(&str, &str, &str)] = &[
    ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    (
        "together_ai",
        "https://api.together.xyz/v1",
        "TOGETHERAI_API_KEY",
    ),
    ("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    (
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
    ),
    (
        "fireworks_ai",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_AI_API_KEY",
    ),
    (
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    ),
    ("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    (
        "perplexity",
        "https://api.perplexity.ai",
        "PERPLEXITYAI_API_KEY",
    ),
];

/// A provider as holdfast needs it; equal ones are written once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Provider {
    format: &'static str,
    base_url: String,
    key_env: Option<String>,
    azure_api_version: Option<String>,
}

/// One deployment of `model_list`.
#[derive(Debug, Clone)]
struct Deployment {
    group: String,
    id: Option<String>,
    provider: Provider,
    model: String,
    context_window: u64,
    /// US$ per million tokens, input and output.
    price: Option<(f64, f64)>,
    /// Seconds.
    timeout: Option<f64>,
    stream_timeout: Option<f64>,
    rpm: Option<u64>,
    tpm: Option<u64>,
}

/// The router's settings, from `router_settings` and `litellm_settings` together.
#[derive(Debug, Default)]
struct Router<'a> {
    num_retries: Option<(u64, usize)>,
    retry_policy: Option<&'a Node>,
    timeout: Option<f64>,
    stream_timeout: Option<f64>,
    allowed_fails: Option<u64>,
    cooldown_time: Option<f64>,
    breaker_line: usize,
    fallbacks: Vec<&'a Node>,
    context_window_fallbacks: Vec<&'a Node>,
    content_policy_fallbacks: Vec<&'a Node>,
    default_fallbacks: Option<&'a Node>,
    model_group_alias: Option<&'a Node>,
}

struct Converter<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    notes: Vec<Note>,
}

pub(super) fn convert(
    doc: &Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, ImportError> {
    if !matches!(doc.value, Value::Map(_)) {
        return Err(ImportError {
            line: doc.line,
            message: "a LiteLLM config is a mapping with `model_list` at its top".to_owned(),
        });
    }
    let mut c = Converter {
        env,
        notes: Vec::new(),
    };
    let mut router = Router::default();
    let mut master_key = None;
    let mut model_list = None;
    for (name, key, value) in doc.entries() {
        match name {
            "model_list" => model_list = Some(value),
            "router_settings" | "litellm_settings" => c.settings(name, value, &mut router),
            "general_settings" => master_key = c.general(value),
            "environment_variables" => {
                for (var, key, _) in value.entries() {
                    c.note(
                        key.line,
                        format!("environment_variables.{var}"),
                        "not carried over: set it in holdfast's environment",
                    );
                }
            }
            _ => c.note(
                key.line,
                name,
                "no equivalent in holdfast; not carried over",
            ),
        }
    }
    let Some(model_list) = model_list else {
        return Err(ImportError {
            line: doc.line,
            message: "no `model_list`: there is nothing to route".to_owned(),
        });
    };
    let deployments = c.deployments(model_list);
    if deployments.is_empty() {
        return Err(ImportError {
            line: model_list.line,
            message: "no deployment of `model_list` could be converted (see the notes)".to_owned(),
        });
    }
    let text = c.emit(&deployments, &router, master_key)?;
    let mut notes = c.notes;
    notes.sort_by_key(|n| n.line);
    let mut toml = String::from(
        "# Imported from a LiteLLM config.yaml by `holdfast config import litellm`.\n\
         # Check it with `holdfast config check FILE`.\n",
    );
    if !notes.is_empty() {
        toml.push_str("# Not carried over, or carried over differently:\n");
        for note in &notes {
            let _ = writeln!(toml, "#   {note}");
        }
    }
    toml.push('\n');
    toml.push_str(&text);
    Ok(Imported { toml, notes })
}

impl Converter<'_> {
    fn note(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// A number of seconds, or a note.
    fn seconds(&mut self, path: &str, node: &Node) -> Option<f64> {
        match node.as_str().and_then(|t| t.trim().parse::<f64>().ok()) {
            Some(s) if s.is_finite() && s > 0.0 => Some(s),
            _ => {
                self.note(node.line, path, "not a number of seconds above 0; ignored");
                None
            }
        }
    }

    /// A whole number, or a note.
    fn count(&mut self, path: &str, node: &Node) -> Option<u64> {
        match node.as_str().and_then(|t| t.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                self.note(node.line, path, "not a whole number; ignored");
                None
            }
        }
    }

    /// A value that may be `os.environ/NAME`: the variable's name, or the text.
    fn env_ref(node: &Node) -> Option<Result<String, String>> {
        let text = node.as_str()?.trim();
        Some(match text.strip_prefix("os.environ/") {
            Some(var) => Err(var.to_owned()),
            None => Ok(text.to_owned()),
        })
    }

    fn settings<'a>(&mut self, section: &str, node: &'a Node, router: &mut Router<'a>) {
        for (name, key, value) in node.entries() {
            let path = format!("{section}.{name}");
            match name {
                "num_retries" => {
                    router.num_retries = self.count(&path, value).map(|n| (n, key.line));
                }
                "retry_policy" => router.retry_policy = Some(value),
                "timeout" | "request_timeout" => router.timeout = self.seconds(&path, value),
                "stream_timeout" => router.stream_timeout = self.seconds(&path, value),
                "allowed_fails" | "cooldown_time" => {
                    if name == "allowed_fails" {
                        router.allowed_fails = self.count(&path, value);
                    } else {
                        router.cooldown_time = self.seconds(&path, value);
                    }
                    if router.breaker_line == 0 {
                        router.breaker_line = key.line;
                    }
                }
                "fallbacks" => router.fallbacks.push(value),
                "context_window_fallbacks" => router.context_window_fallbacks.push(value),
                "content_policy_fallbacks" => router.content_policy_fallbacks.push(value),
                "default_fallbacks" => router.default_fallbacks = Some(value),
                "model_group_alias" => router.model_group_alias = Some(value),
                "routing_strategy" => self.note(
                    key.line,
                    path,
                    "holdfast tries a route's targets in order rather than spreading calls \
                     over them; the next is used when one fails or is unhealthy",
                ),
                "enable_pre_call_checks" => self.note(
                    key.line,
                    path,
                    "always on in holdfast: a request larger than a target's context \
                     window skips that target",
                ),
                _ => self.note(
                    key.line,
                    path,
                    "no equivalent in holdfast; not carried over",
                ),
            }
        }
    }

    /// `general_settings`: the master key, as (its variable, the line); notes for the rest.
    fn general(&mut self, node: &Node) -> Option<(String, usize)> {
        let mut master = None;
        for (name, key, value) in node.entries() {
            let path = format!("general_settings.{name}");
            if name != "master_key" {
                self.note(
                    key.line,
                    path,
                    "no equivalent in holdfast; not carried over",
                );
                continue;
            }
            match Self::env_ref(value) {
                Some(Err(var)) => master = Some((var, key.line)),
                Some(Ok(_)) => {
                    self.note(
                        key.line,
                        path,
                        "the key written in the file is not copied: put it in \
                         HOLDFAST_MASTER_KEY (an admin client key)",
                    );
                    master = Some(("HOLDFAST_MASTER_KEY".to_owned(), key.line));
                }
                None => self.note(key.line, path, "not a key; ignored"),
            }
        }
        if let Some((_, line)) = &master {
            self.note(
                *line,
                "general_settings.master_key",
                "LiteLLM's virtual keys live in its database: give each agent a \
                 [[client_keys]] entry (role agent) of its own",
            );
        }
        master
    }

    fn deployments(&mut self, list: &Node) -> Vec<Deployment> {
        let mut out = Vec::new();
        for (i, item) in list.items().iter().enumerate() {
            let at = format!("model_list[{i}]");
            let Some(group) = item.get("model_name").and_then(Node::as_str) else {
                self.note(item.line, at, "no `model_name`; skipped");
                continue;
            };
            for (name, key, _) in item.entries() {
                if !matches!(name, "model_name" | "litellm_params" | "model_info") {
                    let path = format!("{at}.{name}");
                    self.note(
                        key.line,
                        path,
                        "no equivalent in holdfast; not carried over",
                    );
                }
            }
            let Some(params) = item.get("litellm_params") else {
                self.note(item.line, at, "no `litellm_params`; skipped");
                continue;
            };
            if let Some(deployment) = self.deployment(&at, group, params, item.get("model_info")) {
                out.push(deployment);
            }
        }
        out
    }

    fn deployment(
        &mut self,
        at: &str,
        group: &str,
        params: &Node,
        info: Option<&Node>,
    ) -> Option<Deployment> {
        let Some(model_node) = params.get("model") else {
            self.note(
                params.line,
                format!("{at}.litellm_params"),
                "no `model`; skipped",
            );
            return None;
        };
        let full = model_node.as_str().unwrap_or_default().trim().to_owned();
        let (prefix, model) = match full.split_once('/') {
            Some((prefix, model)) => (prefix.to_owned(), model.to_owned()),
            None if is_openai_model(&full) => ("openai".to_owned(), full.clone()),
            None if full.starts_with("claude") => ("anthropic".to_owned(), full.clone()),
            None => (String::new(), full.clone()),
        };
        let model_path = format!("{at}.litellm_params.model");
        let api_base = match params.get("api_base").or_else(|| params.get("base_url")) {
            None => None,
            Some(node) => match Self::env_ref(node) {
                Some(Ok(url)) => Some(url),
                Some(Err(var)) => match (self.env)(&var) {
                    Some(url) if !url.is_empty() => Some(url),
                    _ => {
                        self.note(
                            node.line,
                            format!("{at}.litellm_params.api_base"),
                            format!("os.environ/{var} is not set here, so the address is unknown; the deployment is skipped (set it and import again)"),
                        );
                        return None;
                    }
                },
                None => None,
            },
        };
        let key_var = |default: &str| match params.get("api_key").map(Self::env_ref) {
            Some(Some(Err(var))) => (Some(var), false),
            Some(Some(Ok(_))) => (Some(default.to_owned()), true),
            _ => (Some(default.to_owned()), false),
        };
        let (provider, literal_key) = match prefix.as_str() {
            "anthropic" => {
                let (key_env, literal) = key_var("ANTHROPIC_API_KEY");
                let base = api_base.unwrap_or_else(|| "https://api.anthropic.com/v1".to_owned());
                (
                    Provider {
                        format: "anthropic",
                        base_url: with_v1(&base),
                        key_env,
                        azure_api_version: None,
                    },
                    literal,
                )
            }
            "azure" => {
                let Some(base) = api_base else {
                    self.note(
                        model_node.line,
                        model_path,
                        "an Azure deployment needs `api_base` (the resource's URL); skipped",
                    );
                    return None;
                };
                let version = match params.get("api_version").map(Self::env_ref) {
                    Some(Some(Ok(version))) => version,
                    Some(Some(Err(var))) => {
                        (self.env)(&var).unwrap_or_else(|| AZURE_API_VERSION.to_owned())
                    }
                    _ => AZURE_API_VERSION.to_owned(),
                };
                let (key_env, literal) = key_var("AZURE_API_KEY");
                let base = base.trim_end_matches('/');
                (
                    Provider {
                        format: "openai",
                        base_url: format!("{base}/openai/deployments/{model}"),
                        key_env,
                        azure_api_version: Some(version),
                    },
                    literal,
                )
            }
            "ollama" | "ollama_chat" => {
                let base = api_base.unwrap_or_else(|| "http://localhost:11434".to_owned());
                (
                    Provider {
                        format: "openai",
                        base_url: with_v1(&base),
                        key_env: None,
                        azure_api_version: None,
                    },
                    false,
                )
            }
            "hosted_vllm" | "lm_studio" | "openai_like" | "custom_openai" => {
                let Some(base) = api_base else {
                    self.note(
                        model_node.line,
                        model_path,
                        format!("`{prefix}/` needs `api_base`; skipped"),
                    );
                    return None;
                };
                let key_env = match params.get("api_key").map(Self::env_ref) {
                    Some(Some(Err(var))) => Some(var),
                    _ => None,
                };
                (
                    Provider {
                        format: "openai",
                        base_url: base,
                        key_env,
                        azure_api_version: None,
                    },
                    matches!(params.get("api_key").map(Self::env_ref), Some(Some(Ok(_)))),
                )
            }
            other => {
                let Some((_, default_base, default_var)) =
                    OPENAI_COMPATIBLE.iter().find(|(p, _, _)| *p == other)
                else {
                    self.note(
                        model_node.line,
                        model_path,
                        format!(
                            "{full:?}: holdfast speaks the OpenAI and Anthropic APIs (and \
                             Azure OpenAI and OpenAI-compatible servers); this provider has \
                             no equivalent; skipped"
                        ),
                    );
                    return None;
                };
                let (key_env, literal) = key_var(default_var);
                (
                    Provider {
                        format: "openai",
                        base_url: api_base.unwrap_or_else(|| (*default_base).to_owned()),
                        key_env,
                        azure_api_version: None,
                    },
                    literal,
                )
            }
        };
        if literal_key {
            let line = params.get("api_key").map_or(params.line, |n| n.line);
            let var = provider.key_env.clone().unwrap_or_default();
            self.note(
                line,
                format!("{at}.litellm_params.api_key"),
                format!("the key written in the file is not copied: put it in {var}"),
            );
        }
        let mut deployment = Deployment {
            group: group.to_owned(),
            id: info
                .and_then(|i| i.get("id"))
                .and_then(Node::as_str)
                .map(str::to_owned),
            provider,
            model: model.clone(),
            context_window: 0,
            price: None,
            timeout: None,
            stream_timeout: None,
            rpm: None,
            tpm: None,
        };
        let mut costs = (None, None);
        for (name, key, value) in params.entries() {
            let path = format!("{at}.litellm_params.{name}");
            match name {
                "model" | "api_base" | "base_url" | "api_key" | "api_version" => {}
                "rpm" => deployment.rpm = self.count(&path, value).filter(|n| *n > 0),
                "tpm" => deployment.tpm = self.count(&path, value).filter(|n| *n > 0),
                "timeout" => deployment.timeout = self.seconds(&path, value),
                "stream_timeout" => deployment.stream_timeout = self.seconds(&path, value),
                "input_cost_per_token" => costs.0 = self.price(&path, value),
                "output_cost_per_token" => costs.1 = self.price(&path, value),
                "max_input_tokens" => {
                    deployment.context_window = self.count(&path, value).unwrap_or(0);
                }
                _ => self.note(
                    key.line,
                    path,
                    "not carried over: holdfast sends the client's request as it came",
                ),
            }
        }
        let mut base_model = None;
        if let Some(info) = info {
            for (name, _, value) in info.entries() {
                let path = format!("{at}.model_info.{name}");
                match name {
                    "input_cost_per_token" => costs.0 = costs.0.or(self.price(&path, value)),
                    "output_cost_per_token" => costs.1 = costs.1.or(self.price(&path, value)),
                    "max_input_tokens" if deployment.context_window == 0 => {
                        deployment.context_window = self.count(&path, value).unwrap_or(0);
                    }
                    "base_model" => base_model = value.as_str().map(str::to_owned),
                    _ => {}
                }
            }
        }
        if let (Some(input), Some(output)) = costs {
            deployment.price = Some((input, output));
        } else if costs.0.is_some() || costs.1.is_some() {
            self.note(
                model_node.line,
                model_path.clone(),
                "only one of input_cost_per_token and output_cost_per_token is given; the \
                 other counts as 0",
            );
            deployment.price = Some((costs.0.unwrap_or(0.0), costs.1.unwrap_or(0.0)));
        }
        if deployment.context_window == 0 {
            let known = base_model
                .as_deref()
                .and_then(|m| context_window(m.rsplit('/').next().unwrap_or(m)))
                .or_else(|| context_window(&model));
            deployment.context_window = known.unwrap_or_else(|| {
                self.note(
                    model_node.line,
                    model_path,
                    format!(
                        "the context window of {full:?} is not known: 128000 tokens assumed \
                         (set `context_window`, or `max_input_tokens` in model_info)"
                    ),
                );
                128_000
            });
        }
        Some(deployment)
    }

    /// US$ per token to US$ per million tokens.
    fn price(&mut self, path: &str, node: &Node) -> Option<f64> {
        match node.as_str().and_then(|t| t.trim().parse::<f64>().ok()) {
            Some(p) if p.is_finite() && p >= 0.0 => Some(p * 1_000_000.0),
            _ => {
                self.note(node.line, path, "not a price; ignored");
                None
            }
        }
    }

    /// Group names of a fallback list `[{group: [fallback, …]}, …]`, as pairs.
    fn fallback_pairs(&mut self, path: &str, lists: &[&Node]) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for list in lists {
            let entries: Vec<&Node> = match &list.value {
                Value::Seq(items) => items.iter().collect(),
                Value::Map(_) => vec![*list],
                _ => {
                    self.note(
                        list.line,
                        path,
                        "not a list of {group: [fallbacks]}; ignored",
                    );
                    continue;
                }
            };
            for entry in entries {
                for (group, _, targets) in entry.entries() {
                    let names: Vec<String> = match &targets.value {
                        Value::Seq(items) => items
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect(),
                        Value::Scalar(one) => vec![one.clone()],
                        _ => Vec::new(),
                    };
                    out.push((group.to_owned(), names));
                }
            }
        }
        out
    }

    fn emit(
        &mut self,
        deployments: &[Deployment],
        router: &Router<'_>,
        master_key: Option<(String, usize)>,
    ) -> Result<String, ImportError> {
        let mut out = String::new();
        if let Some((var, _)) = &master_key {
            let _ = writeln!(
                out,
                "[[client_keys]]\nname = \"master\"\nkey_env = {}\nrole = \"admin\"\n",
                quote(var)
            );
        }

        // Providers, named after their kind and made unique.
        let mut providers: BTreeMap<Provider, String> = BTreeMap::new();
        let mut provider_order = Vec::new();
        for d in deployments {
            if providers.contains_key(&d.provider) {
                continue;
            }
            let base = provider_name(&d.provider);
            let name = unique(&base, providers.values());
            providers.insert(d.provider.clone(), name.clone());
            provider_order.push(d.provider.clone());
        }
        for provider in &provider_order {
            let name = &providers[provider];
            let _ = writeln!(out, "[providers.{}]", key(name));
            let _ = writeln!(out, "format = {}", quote(provider.format));
            let _ = writeln!(out, "base_url = {}", quote(&provider.base_url));
            if let Some(var) = &provider.key_env {
                let _ = writeln!(out, "key_env = {}", quote(var));
            }
            if let Some(version) = &provider.azure_api_version {
                let _ = writeln!(out, "azure_api_version = {}", quote(version));
            }
            out.push('\n');
        }

        // Targets: one per deployment.
        let mut per_group: BTreeMap<&str, usize> = BTreeMap::new();
        for d in deployments {
            *per_group.entry(d.group.as_str()).or_default() += 1;
        }
        let takes_filtered: Vec<String> = self
            .fallback_pairs("content_policy_fallbacks", &router.content_policy_fallbacks)
            .into_iter()
            .flat_map(|(_, names)| names)
            .collect();
        let mut target_names: Vec<String> = Vec::new();
        let mut seen_in_group: BTreeMap<&str, usize> = BTreeMap::new();
        for d in deployments {
            let n = seen_in_group.entry(d.group.as_str()).or_default();
            *n += 1;
            let wanted = match (&d.id, per_group[d.group.as_str()]) {
                (Some(id), _) => id.clone(),
                (None, 1) => d.group.clone(),
                (None, _) => format!("{}-{n}", d.group),
            };
            let name = unique(&wanted, target_names.iter());
            target_names.push(name.clone());
            let _ = writeln!(out, "[targets.{}]", key(&name));
            let _ = writeln!(out, "provider = {}", quote(&providers[&d.provider]));
            let _ = writeln!(out, "model = {}", quote(&d.model));
            let _ = writeln!(out, "context_window = {}", d.context_window);
            if let Some((input, output)) = d.price {
                let _ = writeln!(
                    out,
                    "price = {{ input_per_mtok = {}, output_per_mtok = {} }}",
                    number(input),
                    number(output)
                );
            }
            let total = d.timeout.or(router.timeout);
            let stream = d.stream_timeout.or(router.stream_timeout);
            if total.is_some() || stream.is_some() {
                let total = total.unwrap_or(TOTAL);
                let first_byte = stream.unwrap_or(FIRST_BYTE).min(total);
                let idle = stream.unwrap_or(IDLE).min(total);
                let _ = writeln!(
                    out,
                    "timeouts = {{ connect = {}, first_byte = {}, idle = {}, total = {} }}",
                    duration(CONNECT.min(total)),
                    duration(first_byte),
                    duration(idle),
                    duration(total)
                );
            }
            if let Some(rpm) = d.rpm {
                let _ = writeln!(out, "requests_per_minute = {rpm}");
            }
            if let Some(tpm) = d.tpm {
                let _ = writeln!(out, "tokens_per_minute = {tpm}");
            }
            if takes_filtered.contains(&d.group) {
                let _ = writeln!(out, "takes_filtered = true");
            }
            out.push('\n');
        }

        // Routes: each group's deployments, then its fallbacks' deployments.
        let mut groups: Vec<&str> = Vec::new();
        let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (d, name) in deployments.iter().zip(&target_names) {
            if !groups.contains(&d.group.as_str()) {
                groups.push(&d.group);
            }
            members.entry(&d.group).or_default().push(name.clone());
        }
        let mut chains: BTreeMap<String, Vec<String>> = groups
            .iter()
            .map(|g| ((*g).to_owned(), members[g].clone()))
            .collect();
        let general = self.fallback_pairs("fallbacks", &router.fallbacks);
        let context =
            self.fallback_pairs("context_window_fallbacks", &router.context_window_fallbacks);
        let content =
            self.fallback_pairs("content_policy_fallbacks", &router.content_policy_fallbacks);
        let mut has_general: Vec<String> = Vec::new();
        for (kind, pairs, line) in [
            (
                "fallbacks",
                &general,
                router.fallbacks.first().map_or(0, |n| n.line),
            ),
            (
                "context_window_fallbacks",
                &context,
                router
                    .context_window_fallbacks
                    .first()
                    .map_or(0, |n| n.line),
            ),
            (
                "content_policy_fallbacks",
                &content,
                router
                    .content_policy_fallbacks
                    .first()
                    .map_or(0, |n| n.line),
            ),
        ] {
            for (group, fallbacks) in pairs {
                let Some(chain) = chains.get_mut(group) else {
                    self.note(
                        line,
                        kind,
                        format!("{group:?} is not a model_name; ignored"),
                    );
                    continue;
                };
                if kind == "fallbacks" {
                    has_general.push(group.clone());
                }
                for fallback in fallbacks {
                    let Some(targets) = members.get(fallback.as_str()) else {
                        self.note(
                            line,
                            kind,
                            format!("{fallback:?} (a fallback of {group:?}) is not a model_name; ignored"),
                        );
                        continue;
                    };
                    for target in targets {
                        if !chain.contains(target) {
                            chain.push(target.clone());
                        }
                    }
                }
            }
        }
        if let Some(defaults) = router.default_fallbacks {
            let names: Vec<String> = defaults
                .items()
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            for group in &groups {
                if has_general.iter().any(|g| g == group) {
                    continue;
                }
                let Some(chain) = chains.get_mut(*group) else {
                    continue;
                };
                for fallback in &names {
                    for target in members.get(fallback.as_str()).into_iter().flatten() {
                        if !chain.contains(target) {
                            chain.push(target.clone());
                        }
                    }
                }
            }
        }
        if groups.iter().any(|g| members[g].len() > 1) || !general.is_empty() {
            self.note(
                1,
                "model_list",
                "each model group is a route whose targets are tried in order: its \
                 deployments, then its fallbacks; any failure that moves a call on may use \
                 any of them (holdfast skips a target whose context window is too small)",
            );
        }
        let mut route_names: Vec<String> = Vec::new();
        for group in &groups {
            route_names.push((*group).to_owned());
            let _ = writeln!(out, "[routes.{}]", key(group));
            let _ = writeln!(out, "targets = [{}]", list(&chains[*group]));
            out.push('\n');
        }
        if let Some(aliases) = router.model_group_alias {
            for (alias, key_node, value) in aliases.entries() {
                let group = value
                    .as_str()
                    .or_else(|| value.get("model").and_then(Node::as_str));
                let path = format!("model_group_alias.{alias}");
                match group.and_then(|g| chains.get(g)) {
                    Some(_) if route_names.iter().any(|r| r == alias) => self.note(
                        key_node.line,
                        path,
                        "already a model_name; the alias is ignored",
                    ),
                    Some(chain) => {
                        route_names.push(alias.to_owned());
                        let _ = writeln!(out, "[routes.{}]", key(alias));
                        let _ = writeln!(out, "targets = [{}]", list(chain));
                        out.push('\n');
                    }
                    None => self.note(key_node.line, path, "names no model_name; ignored"),
                }
            }
        }

        out.push_str(&self.policy(router));
        Ok(out)
    }

    /// `[policies.default]` from the retry and cooldown settings.
    fn policy(&mut self, router: &Router<'_>) -> String {
        let mut retries = router.num_retries.map(|(n, _)| n);
        if let Some(policy) = router.retry_policy {
            for (name, key, value) in policy.entries() {
                let path = format!("retry_policy.{name}");
                let Some(n) = self.count(&path, value) else {
                    continue;
                };
                match name {
                    "RateLimitErrorRetries"
                    | "TimeoutErrorRetries"
                    | "InternalServerErrorRetries"
                    | "ServiceUnavailableErrorRetries" => {
                        retries = Some(retries.map_or(n, |r| r.max(n)));
                    }
                    "BadRequestErrorRetries"
                    | "AuthenticationErrorRetries"
                    | "ContentPolicyViolationErrorRetries"
                        if n > 0 =>
                    {
                        self.note(
                            key.line,
                            path,
                            "holdfast never retries this class on the same target (it is \
                             not transient); the call moves to the next target instead",
                        );
                    }
                    "BadRequestErrorRetries"
                    | "AuthenticationErrorRetries"
                    | "ContentPolicyViolationErrorRetries" => {}
                    _ => self.note(key.line, path, "not an error class holdfast knows; ignored"),
                }
            }
            if retries.is_some() {
                self.note(
                    policy.line,
                    "retry_policy",
                    "holdfast keeps one retry count for the retryable classes (429, \
                     timeouts, 5xx): the largest is used",
                );
            }
        }
        let mut lines = Vec::new();
        if let Some(n) = retries {
            let attempts = n.saturating_add(1).min(100);
            lines.push(format!("retry = {{ max_attempts = {attempts} }}"));
        }
        if router.allowed_fails.is_some() || router.cooldown_time.is_some() {
            let fails = router.allowed_fails.unwrap_or(3);
            let cooldown = duration(router.cooldown_time.unwrap_or(5.0));
            lines.push(format!(
                "breaker = {{ failure_rate = 0.5, window = \"60s\", min_calls = {}, open_for = {cooldown}, max_open_for = {cooldown} }}",
                fails.saturating_add(1).min(u64::from(u32::MAX))
            ));
            self.note(
                router.breaker_line,
                "allowed_fails, cooldown_time",
                format!(
                    "a breaker per target: it opens when half of at least {} calls in 60 s \
                     failed (LiteLLM counts failures; holdfast weighs them against \
                     successes) and stays open {cooldown}",
                    fails.saturating_add(1)
                ),
            );
        }
        if lines.is_empty() {
            return String::new();
        }
        format!("[policies.default]\n{}\n", lines.join("\n"))
    }
}

fn is_openai_model(model: &str) -> bool {
    ["gpt-", "o1", "o3", "o4", "chatgpt-"]
        .iter()
        .any(|p| model.starts_with(p))
}

/// `base` with `/v1` at its end (Anthropic's and Ollama's OpenAI-compatible APIs).
fn with_v1(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_owned()
    } else {
        format!("{base}/v1")
    }
}

/// The published context windows of common models, in tokens.
fn context_window(model: &str) -> Option<u64> {
    const KNOWN: &[(&str, u64)] = &[
        ("gpt-5", 400_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-4o", 128_000),
        ("gpt-4-turbo", 128_000),
        ("gpt-4-32k", 32_768),
        ("gpt-4", 8_192),
        ("gpt-3.5-turbo-16k", 16_385),
        ("gpt-3.5-turbo", 16_385),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4", 200_000),
        ("claude", 200_000),
    ];
    KNOWN
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map(|(_, window)| *window)
}

fn provider_name(provider: &Provider) -> String {
    if provider.azure_api_version.is_some() {
        let deployment = provider.base_url.rsplit('/').next().unwrap_or("deployment");
        return format!("azure-{deployment}");
    }
    if provider.format == "anthropic" {
        return "anthropic".to_owned();
    }
    if let Some((prefix, _, _)) = OPENAI_COMPATIBLE
        .iter()
        .find(|(_, base, _)| *base == provider.base_url)
    {
        return (*prefix).to_owned();
    }
    url::Url::parse(&provider.base_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.replace('.', "-")))
        .unwrap_or_else(|| "provider".to_owned())
}

/// `wanted`, or `wanted-2`, `wanted-3`… if taken.
fn unique<'a>(wanted: &str, taken: impl Iterator<Item = &'a String> + Clone) -> String {
    let free = |name: &str| !taken.clone().any(|t| t == name);
    if free(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|n| format!("{wanted}-{n}"))
        .find(|name| free(name))
        .unwrap_or_else(|| wanted.to_owned())
}

/// A TOML string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A TOML key: bare where it can be.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        quote(name)
    }
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A price: short, and always a TOML float.
fn number(value: f64) -> String {
    let text = format!("{:.6}", value);
    let text = text.trim_end_matches('0');
    if text.ends_with('.') {
        format!("{text}0")
    } else {
        text.to_owned()
    }
}

/// Seconds as a holdfast duration.
fn duration(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round().max(1.0);
    if millis % 1000.0 == 0.0 {
        format!("\"{}s\"", millis / 1000.0)
    } else {
        format!("\"{millis}ms\"")
    }
}
