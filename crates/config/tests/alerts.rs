//! `[alerts]`: overrides merge onto the default rules field by field, thresholds take
//! the unit their rule needs, and webhook secrets stay secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use holdfast_config::{AlertKind, AlertRule, Config, Severity};

fn load(text: &str) -> Result<Config, String> {
    let env = |name: &str| (name == "HOOK_TOKEN").then(|| "tok-3f9a".to_owned());
    Config::from_toml_str(text, "holdfast.toml", &env).map_err(|e| e.to_string())
}

fn rule(config: &Config, kind: AlertKind) -> &AlertRule {
    config.alerts.rules.iter().find(|r| r.kind == kind).unwrap()
}

#[test]
fn without_a_section_every_default_rule_is_on() {
    let config = load("").unwrap();
    let alerts = &config.alerts;
    assert!(alerts.enabled);
    assert_eq!(alerts.eval_interval, Duration::from_secs(5));
    assert_eq!(alerts.rules.len(), AlertKind::ALL.len());
    assert!(alerts.rules.iter().all(|r| r.enabled));
    let retry = rule(&config, AlertKind::RetryRate);
    assert_eq!(retry.threshold, 0.10);
    assert_eq!(retry.for_duration, Duration::from_secs(300));
    assert_eq!(rule(&config, AlertKind::TaskRetryingLong).threshold, 1800.0);
    assert_eq!(
        rule(&config, AlertKind::BreakerOpen).severity,
        Severity::Critical
    );
}

#[test]
fn an_override_changes_only_the_fields_it_writes() {
    let config = load(
        r#"
[alerts]
eval_interval = "200ms"
webhooks = [{ url = "https://hooks.example/holdfast", secret_env = "HOOK_TOKEN" }]

[alerts.rules.retry_delay]
threshold = "90s"
severity = "critical"

[alerts.rules.cost_per_task]
enabled = false
baseline_window = "2h"
"#,
    )
    .unwrap();
    let alerts = &config.alerts;
    assert_eq!(alerts.eval_interval, Duration::from_millis(200));
    let delay = rule(&config, AlertKind::RetryDelay);
    assert_eq!(delay.threshold, 90.0);
    assert_eq!(delay.severity, Severity::Critical);
    assert_eq!(delay.window, Duration::from_secs(300));
    let cost = rule(&config, AlertKind::CostPerTask);
    assert!(!cost.enabled);
    assert_eq!(cost.baseline_window, Duration::from_secs(7200));
    let hook = &alerts.webhooks[0];
    assert_eq!(hook.url, "https://hooks.example/holdfast");
    assert_eq!(hook.secret.as_ref().unwrap().expose(), "tok-3f9a");
    assert!(!format!("{config:?}").contains("tok-3f9a"));
}

#[test]
fn a_window_shorter_than_the_interval_is_refused() {
    let errors =
        load("[alerts]\neval_interval = \"10s\"\n\n[alerts.rules.retry_rate]\nwindow = \"5s\"\n")
            .unwrap_err();
    assert!(
        errors.contains("holdfast.toml:5:10: alerts.rules.retry_rate.window: must be at least `alerts.eval_interval`"),
        "{errors}"
    );
    // A rule turned off does not hold the interval back.
    load("[alerts]\neval_interval = \"10s\"\n\n[alerts.rules.retry_rate]\nenabled = false\nwindow = \"5s\"\n").unwrap();
}

#[test]
fn webhook_urls_need_http_and_a_host() {
    for (url, problem) in [
        ("mailto:ops@example.com", "has scheme `mailto`"),
        ("http://", "is not a URL"),
        ("/relative/hook", "is not a URL"),
    ] {
        let errors = load(&format!("[[alerts.webhooks]]\nurl = \"{url}\"\n")).unwrap_err();
        assert!(
            errors.contains("alerts.webhooks[0].url:") && errors.contains(problem),
            "{url}: {errors}"
        );
    }
    let errors =
        load("[[alerts.webhooks]]\nurl = \"https://h.example/x\"\nsecret_env = \"UNSET_VAR\"\n")
            .unwrap_err();
    assert!(
        errors.contains("alerts.webhooks[0].secret_env: environment variable UNSET_VAR is not set"),
        "{errors}"
    );
}
