//! The definition checks, one problem at a time and all together.

use serde_json::json;

use super::*;
use crate::error::EngineError;

fn problems(def: Value) -> Vec<String> {
    match parse(def) {
        Ok(_) => vec![],
        Err(EngineError::Invalid { problems }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => vec![format!("unexpected: {other}")],
    }
}

fn wf(steps: Value) -> Value {
    json!({"name": "w", "steps": steps})
}

#[test]
fn a_sequential_workflow_resolves_its_dependencies_in_order() {
    let w = parse(wf(json!([
        {"name": "a", "kind": "sleep", "duration": "1ms"},
        {"name": "b", "kind": "http", "url": "http://x/{{ steps.a.output }}"},
        {"name": "c", "kind": "llm", "route": "r", "prompt": "{{ input.q }} {{ steps.b.output }}"},
    ])))
    .unwrap();
    assert_eq!(w.version, 1);
    let deps: Vec<_> = w.steps.iter().map(|s| s.depends_on.clone()).collect();
    assert_eq!(deps, vec![vec![], vec![0], vec![1]]);
    assert_eq!(w.output_step, 2);
    assert_eq!(
        w.steps[0].action,
        Action::Sleep(SleepAction {
            duration: Duration::from_millis(1)
        })
    );
}

#[test]
fn an_unknown_step_kind_names_its_field() {
    let p = problems(wf(json!([{"name": "a", "kind": "teleport"}])));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("steps[0].kind: unknown step kind \"teleport\""),
        "{p:?}"
    );
}

#[test]
fn a_depends_on_cycle_is_named() {
    let p = problems(wf(json!([
        {"name": "a", "kind": "sleep", "duration": "1s", "depends_on": ["c"]},
        {"name": "b", "kind": "sleep", "duration": "1s", "depends_on": ["a"]},
        {"name": "c", "kind": "sleep", "duration": "1s", "depends_on": ["b"]},
    ])));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("depends_on forms a cycle: a → c → b → a"),
        "{p:?}"
    );
}

#[test]
fn a_template_naming_an_unknown_or_later_step_is_refused() {
    let p = problems(wf(json!([
        {"name": "a", "kind": "llm", "route": "r", "prompt": "{{ steps.nope.output }}"},
        {"name": "b", "kind": "llm", "route": "r", "prompt": "{{ steps.c.output }}"},
        {"name": "c", "kind": "sleep", "duration": "1s"},
    ])));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("steps[0].prompt: template names unknown step \"nope\""),
        "{p:?}"
    );
    assert!(
        p[1].starts_with(
            "steps[1].prompt: template names step \"c\", which does not finish before"
        ),
        "{p:?}"
    );
}

#[test]
fn parallel_steps_see_only_their_dependencies() {
    let ok = parse(wf(json!([
        {"name": "a", "kind": "sleep", "duration": "1s"},
        {"name": "b", "kind": "sleep", "duration": "1s", "depends_on": []},
        {"name": "c", "kind": "llm", "route": "r", "prompt": "{{ steps.a.output }}{{ steps.b.output }}", "depends_on": ["a", "b"]},
    ])))
    .unwrap();
    assert_eq!(ok.steps[1].depends_on, Vec::<usize>::new());
    let p = problems(wf(json!([
        {"name": "a", "kind": "sleep", "duration": "1s"},
        {"name": "b", "kind": "llm", "route": "r", "prompt": "{{ steps.a.output }}", "depends_on": []},
    ])));
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn field_errors_carry_their_path() {
    let p = problems(wf(json!([
        {"name": "a", "kind": "http", "url": "ftp://x", "method": "FETCH", "timeout": "soon",
         "retry": {"max_attempts": 0}},
        {"name": "b-c", "kind": "worker", "queue": "q", "colour": "red"},
        {"name": "d", "kind": "llm", "route": "r", "prompt": "{{ nope }}",
         "compensate": {"kind": "human", "prompt": "x"}},
    ])));
    let joined = p.join("\n");
    for expected in [
        "steps[0].method:",
        "steps[0].url: must start with http",
        "steps[0].timeout:",
        "steps[0].retry.max_attempts:",
        "steps[1].colour: unknown field `colour`",
        "steps[2].compensate.kind: \"human\" cannot compensate",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
}

#[test]
fn workflow_level_errors_carry_their_path() {
    let p =
        problems(json!({"name": "w w", "version": 0, "steps": [], "input_schema": {"type": 12}}));
    let joined = p.join("\n");
    for expected in [
        "name:",
        "version: must be ≥ 1",
        "steps: a workflow needs",
        "input_schema: not a valid JSON schema",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
    let p = problems(
        json!({"name": "w", "steps": [{"name": "a", "kind": "sleep", "duration": "1s"}], "extra": 1}),
    );
    assert!(p[0].contains("unknown field `extra`"), "{p:?}");
    let p = problems(
        json!({"name": "w", "steps": [{"name": "a", "kind": "sleep", "duration": "1s"}, {"name": "a", "kind": "sleep", "duration": "1s"}]}),
    );
    assert!(
        p[0].starts_with("steps[1].name: \"a\" is used by an earlier step"),
        "{p:?}"
    );
}

#[test]
fn toml_definitions_parse_like_json() {
    let w = parse_toml(
        r#"
        name = "t"
        version = 2
        [[steps]]
        name = "a"
        kind = "http"
        method = "GET"
        url = "http://localhost/{{ input.id }}"
        retry = { max_attempts = 5, base = "100ms", cap = "2s" }
        on_exhausted = "escalate"
        "#,
    )
    .unwrap();
    assert_eq!(w.version, 2);
    assert_eq!(w.steps[0].retry.max_attempts(), 5);
    assert_eq!(w.steps[0].on_exhausted, OnExhausted::Escalate);
    assert!(parse_toml("name = ").is_err());
}

/// Regression (found by the config fuzz target; the same TOML parser reads definitions):
/// `{}` where an inline table wants a key unbalanced the parser's depth count, so that
/// deeper nesting after it overflowed the stack (toml_parser before 1.1.6).
#[test]
fn unbalanced_inline_tables_are_refused_not_a_stack_overflow() {
    let n = 20_000;
    let text = format!(
        "name = \"deep\"\nx = {{ {} a = {}1{} }}\n",
        "{}".repeat(n),
        "{ a = ".repeat(n),
        " }".repeat(n)
    );
    let err = parse_toml(&text).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");
}
