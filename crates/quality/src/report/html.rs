//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing
//! fetched), to attach to a pull request or keep with a release.
//!
//! Every text that came from a dataset, a model or a judge is escaped: an answer may
//! hold anything, and a report must not run what a model wrote.

use std::fmt::Write as _;

use super::{Report, svg};
use crate::result::CaseResult;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;\
color:#222}h1{font-size:1.4em}h3{font-size:.95em;margin-bottom:0}h2{font-size:1.1em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border-bottom:1px solid #eee;\
padding:4px 6px;text-align:left;vertical-align:top}.pass{color:#1e7e34;font-weight:bold}\
.fail{color:#c0392b;font-weight:bold}.muted{color:#777}code,pre{font-size:.85em;\
white-space:pre-wrap;word-break:break-word}";

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The page for `report`, whose cases are `results`.
pub fn render(report: &Report, results: &[CaseResult]) -> String {
    let mut page = String::new();
    let title = format!("{} · {}", report.suite, report.run_id);
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    header(&mut page, report);
    gate(&mut page, report);
    rates(&mut page, report);
    spreads(&mut page, results);
    changes(&mut page, report);
    cases(&mut page, results);
    page.push_str("</body></html>\n");
    page
}

fn header(page: &mut String, r: &Report) {
    let (class, verdict) = if r.gate.passed {
        ("pass", "gate passed")
    } else {
        ("fail", "gate FAILED")
    };
    let _ = write!(
        page,
        "<h1>Suite {} — run {} <span class=\"{class}\">{verdict}</span></h1>\
         <p>{} · tenant {} · seed {} · subject <code>{}</code></p>\
         <p>{} cases: {} passed, {} failed, {} errors. Cost per case: mean ${:.6}, total ${:.6} \
         (judges ${:.6}). Latency: p50 {:.0} ms, p95 {:.0} ms.</p>",
        escape(&r.suite),
        escape(&r.run_id),
        escape(&r.task),
        escape(&r.tenant),
        r.seed,
        escape(&r.subject.to_string()),
        r.cases,
        r.passed,
        r.failed,
        r.errors,
        r.cost_usd.mean,
        r.cost_usd.total,
        r.judge_cost_usd,
        r.latency_ms.p50,
        r.latency_ms.p95
    );
}

fn gate(page: &mut String, r: &Report) {
    page.push_str("<h2>Gate</h2>");
    if r.gate.checks.is_empty() {
        page.push_str("<p class=\"muted\">The suite sets no thresholds and has no baseline.</p>");
        return;
    }
    page.push_str("<table><tr><th>check</th><th></th><th>figures</th></tr>");
    for c in &r.gate.checks {
        let (class, word) = if c.passed {
            ("pass", "ok")
        } else {
            ("fail", "failed")
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.detail)
        );
    }
    page.push_str("</table>");
}

fn rates(page: &mut String, r: &Report) {
    page.push_str("<h2>Pass rate per tag</h2>");
    page.push_str(&svg::pass_rates(&r.groups));
    page.push_str(
        "<p class=\"muted\">Bars: pass rate; black whisker: Wilson 95% interval; red tick: \
         threshold; orange diamond: the baseline's rate on the same cases.</p>",
    );
    page.push_str(
        "<table><tr><th>tag</th><th>passed</th><th>rate</th><th>95% interval</th>\
         <th>threshold</th><th>baseline</th><th>smallest detectable drop</th></tr>",
    );
    for g in &r.groups {
        let threshold = g.threshold.map_or_else(|| "—".to_owned(), pct);
        let baseline = g.paired.as_ref().map_or_else(
            || "—".to_owned(),
            |p| {
                format!(
                    "{} on {} cases; {} regressed, {} improved; p = {:.4}{}",
                    pct(p.baseline_rate),
                    p.pairs,
                    p.regressed,
                    p.improved,
                    p.p_value,
                    if p.significantly_worse {
                        " (worse)"
                    } else {
                        ""
                    }
                )
            },
        );
        let drop = g.detectable_drop.map_or_else(
            || "none: under 6 cases".to_owned(),
            |d| format!("{:.0} points", d * 100.0),
        );
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{} – {}</td><td>{threshold}</td>\
             <td>{}</td><td>{drop}</td></tr>",
            escape(&g.tag),
            g.passed,
            g.cases,
            pct(g.rate),
            pct(g.interval.0),
            pct(g.interval.1),
            escape(&baseline)
        );
    }
    page.push_str(
        "</table><p class=\"muted\">The smallest drop a comparison with a baseline of this \
         size detects with 80% power (exact McNemar, p &lt; 0.05, if only regressions \
         change); no drop under 6 cases can ever be significant.</p>",
    );
}

fn spreads(page: &mut String, results: &[CaseResult]) {
    page.push_str("<h2>Cost and latency</h2>");
    let cost: Vec<f64> = results.iter().map(|r| r.cost_usd).collect();
    let latency: Vec<f64> = results.iter().map(|r| r.latency_ms as f64).collect();
    page.push_str(&svg::histogram("cost per case", &cost, &|v| {
        format!("${v:.6}")
    }));
    page.push_str(&svg::histogram("latency per case", &latency, &|v| {
        format!("{v:.0} ms")
    }));
}

fn changes(page: &mut String, r: &Report) {
    let Some(c) = &r.baseline else { return };
    let _ = write!(
        page,
        "<h2>Against baseline {}</h2><p>{} cases paired ({} only in this run, {} only in the \
         baseline): {} regressed, {} improved.</p>",
        escape(&c.run_id),
        c.pairs,
        c.only_in_run,
        c.only_in_baseline,
        c.regressed.len(),
        c.improved.len()
    );
    if c.regressed.is_empty() && c.improved.is_empty() {
        return;
    }
    page.push_str(
        "<table><tr><th>case</th><th>tags</th><th>before</th><th>after</th><th>why</th></tr>",
    );
    for (change, class) in c
        .regressed
        .iter()
        .map(|x| (x, "fail"))
        .chain(c.improved.iter().map(|x| (x, "pass")))
    {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{} ({:.2})</td><td class=\"{class}\">{} ({:.2})</td><td>{}</td></tr>",
            escape(&change.case_id),
            escape(&change.tags.join(", ")),
            escape(&change.before),
            change.before_score,
            escape(&change.after),
            change.after_score,
            escape(&change.why)
        );
    }
    page.push_str("</table>");
}

fn cases(page: &mut String, results: &[CaseResult]) {
    let mut sorted: Vec<&CaseResult> = results.iter().collect();
    sorted.sort_by(|a, b| (a.passed(), &a.case_id).cmp(&(b.passed(), &b.case_id)));
    page.push_str(
        "<h2>Cases</h2><table><tr><th>case</th><th>outcome</th><th>score</th><th>tags</th>\
         <th>verdicts</th><th>answer</th><th>cost</th><th>latency</th></tr>",
    );
    for r in sorted {
        let class = if r.passed() { "pass" } else { "fail" };
        let mut verdicts = String::new();
        for v in &r.verdicts {
            let _ = write!(
                verdicts,
                "{} ×{} → {:.2}: {}<br>",
                escape(&v.grader),
                v.weight,
                v.score,
                escape(&v.reason)
            );
        }
        if let Some(e) = &r.error {
            let _ = write!(verdicts, "{}", escape(e));
        }
        let answer = r.answer.as_ref().map_or(String::new(), |a| {
            let mut text = a.text.clone();
            for call in &a.tool_calls {
                let _ = write!(text, "\n→ {}({})", call.name, call.arguments);
            }
            text
        });
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{:.2}</td><td>{}</td><td>{verdicts}</td>\
             <td><pre>{}</pre></td><td>${:.6}</td><td>{} ms</td></tr>",
            escape(&r.case_id),
            r.outcome,
            r.score,
            escape(&r.tags.join(", ")),
            escape(&answer),
            r.cost_usd,
            r.latency_ms
        );
    }
    page.push_str("</table>");
}
