//! `holdfast config import litellm`: a LiteLLM proxy `config.yaml` turned into a
//! holdfast configuration, so that a team on LiteLLM can try holdfast with the setup it
//! already has.
//!
//! What maps (see `convert.rs` for each rule): `model_list` deployments become
//! providers and targets (OpenAI, Anthropic, Azure OpenAI and OpenAI-compatible
//! `api_base`s; `os.environ/NAME` becomes `key_env`), each model group a route whose
//! chain is its deployments then its `fallbacks`, `context_window_fallbacks` and
//! `content_policy_fallbacks`; `model_group_alias` adds routes; `num_retries`,
//! `retry_policy`, `timeout`, `stream_timeout`, `allowed_fails` and `cooldown_time`
//! become the default policy and the targets' timeouts; `master_key` an admin client
//! key. Everything else is listed with its line as a [`Note`], never dropped silently;
//! a key written in the file is never copied (a `key_env` names where it must go).

mod convert;
mod yaml;

/// What the import produced: the configuration's TOML text and what the reader must
/// know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// A holdfast configuration, notes included as comments at its head.
    pub toml: String,
    /// What was not carried over, or carried over differently, with its line.
    pub notes: Vec<Note>,
}

/// One thing the reader must know, at a line of the LiteLLM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The line (1-based) of the key concerned.
    pub line: usize,
    /// The key's path in the file, e.g. `litellm_settings.success_callback`.
    pub key: String,
    /// What happened to it.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// Why a file could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// The line (1-based) of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Converts the text of a LiteLLM `config.yaml`. `env` resolves `os.environ/NAME`
/// where a URL must be known now (an Azure `api_base`).
pub fn import_litellm(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, ImportError> {
    let doc = yaml::parse(text).map_err(|e| ImportError {
        line: e.line,
        message: format!("not valid YAML: {}", e.message),
    })?;
    convert::convert(&doc, env)
}
