//! Templates: prompts, URLs and payloads rendered with minijinja over what a task knows.
//!
//! A template sees `input` (the task's input), `steps.<name>.output` (the outputs of the
//! steps committed before it) and `task.id`. Rendering is strict: a name that does not
//! exist is an error, not an empty string, because a prompt silently missing its
//! context is a wrong answer that costs money. Definitions are checked ahead of time
//! ([`references`]) so that at run time an error can only come from the data.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// What a template reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    /// The top-level names it reads (`input`, `steps`, `task`, or anything else).
    pub roots: BTreeSet<String>,
    /// The steps it reads (`steps.<name>`).
    pub steps: BTreeSet<String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Parses `text` and lists what it reads; a syntax error is described.
pub fn references(text: &str) -> Result<References, String> {
    let env = environment();
    let template = env.template_from_str(text).map_err(|e| {
        format!(
            "template does not parse: {}",
            e.detail().unwrap_or("syntax error")
        )
    })?;
    let mut refs = References::default();
    for var in template.undeclared_variables(true) {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default().to_string();
        if root == "steps"
            && let Some(step) = parts.next()
        {
            refs.steps.insert(step.to_string());
        }
        refs.roots.insert(root);
    }
    Ok(refs)
}

/// Renders `text` over `context`.
pub fn render(text: &str, context: &Value) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    let env = environment();
    env.render_str(text, context).map_err(|e| {
        let detail = e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string());
        format!("template failed: {detail}")
    })
}

/// Renders every string in `value` as a template. A string that is exactly one
/// `{{ expression }}` whose value is not a string keeps its JSON type, so that a payload
/// can carry an earlier step's object output as an object.
pub fn render_json(value: &Value, context: &Value) -> Result<Value, String> {
    match value {
        Value::String(s) => {
            if let Some(expr) = sole_expression(s) {
                let env = environment();
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| format!("template failed: {e}"))?;
                let result = compiled.eval(context).map_err(|e| {
                    format!(
                        "template failed: {}",
                        e.detail().unwrap_or("undefined value")
                    )
                })?;
                if result.is_undefined() {
                    return Err(format!("template failed: {expr} is undefined"));
                }
                return serde_json::to_value(&result).map_err(|e| format!("template failed: {e}"));
            }
            render(s, context).map(Value::String)
        }
        Value::Array(items) => items
            .iter()
            .map(|v| render_json(v, context))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), render_json(v, context)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// `"{{ expr }}"` → `Some("expr")` when the whole string is one expression.
fn sole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// Calls `each(path, text)` for every string in `value`, with its path under `prefix`.
pub fn strings_in(value: &Value, prefix: &str, each: &mut dyn FnMut(String, &str)) {
    match value {
        Value::String(s) => each(prefix.to_string(), s),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                strings_in(v, &format!("{prefix}[{i}]"), each);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings_in(v, &format!("{prefix}.{k}"), each);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_name_steps_and_roots() {
        let r = references(
            "{{ input.topic }} {{ steps.fetch.output.title }} {% if steps.b %}x{% endif %}",
        )
        .unwrap();
        assert_eq!(r.steps, ["b", "fetch"].map(String::from).into());
        assert_eq!(r.roots, ["input", "steps"].map(String::from).into());
        assert!(references("{{ unclosed").is_err());
    }

    #[test]
    fn rendering_is_strict_about_missing_names() {
        let ctx = json!({"input": {"q": "rust"}, "steps": {}});
        assert_eq!(render("about {{ input.q }}", &ctx).unwrap(), "about rust");
        assert!(render("{{ input.missing }}", &ctx).is_err());
        assert!(render("{{ steps.a.output }}", &ctx).is_err());
    }

    #[test]
    fn a_sole_expression_keeps_its_json_type() {
        let ctx = json!({"steps": {"a": {"output": {"n": 3, "tags": ["x"]}}}});
        let out = render_json(
            &json!({"whole": "{{ steps.a.output }}", "text": "n={{ steps.a.output.n }}"}),
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"whole": {"n": 3, "tags": ["x"]}, "text": "n=3"})
        );
        assert!(render_json(&json!("{{ steps.b.output }}"), &ctx).is_err());
    }
}
