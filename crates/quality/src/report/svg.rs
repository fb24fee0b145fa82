//! Plots as inline SVG: pass rates with their intervals, and histograms.
//!
//! The decision: a report is one self-contained HTML file that opens anywhere, offline,
//! years later, so plots are drawn here as SVG text, with no script, font or stylesheet
//! from anywhere else. Two kinds suffice: bars with interval whiskers (rates) and a
//! histogram with its median and 95th percentile marked (cost, latency).

use std::fmt::Write as _;

use super::Group;
use super::html::escape;
use crate::stats;

const WIDTH: f64 = 640.0;
const LABEL: f64 = 130.0;
const ROW: f64 = 26.0;

/// Horizontal bars of each group's pass rate, its Wilson interval as a whisker, its
/// threshold as a red tick and the baseline's rate as a hollow diamond.
pub(super) fn pass_rates(groups: &[Group]) -> String {
    let plot = WIDTH - LABEL - 120.0;
    let height = ROW * groups.len() as f64 + 30.0;
    let x = |rate: f64| LABEL + rate.clamp(0.0, 1.0) * plot;
    let mut svg = open(height, "pass rate per tag, with 95% intervals");
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="4" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" font-size="10">{3:.0}%</text>"##,
            x(tick),
            height - 22.0,
            height - 8.0,
            tick * 100.0
        );
    }
    for (i, g) in groups.iter().enumerate() {
        let y = 6.0 + ROW * i as f64;
        let mid = y + ROW / 2.0 - 3.0;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12">{}</text><rect x="{LABEL}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#4a7bb7"/>"##,
            LABEL - 8.0,
            mid + 4.0,
            escape(&g.tag),
            x(g.rate) - LABEL,
            ROW - 8.0
        );
        let _ = write!(
            svg,
            r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#222" stroke-width="1.5"/>"##,
            x(g.interval.0),
            x(g.interval.1)
        );
        if let Some(t) = g.threshold {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#c0392b" stroke-width="2"/>"##,
                x(t),
                y - 2.0,
                y + ROW - 6.0
            );
        }
        if let Some(p) = &g.paired {
            let cx = x(p.baseline_rate);
            let _ = write!(
                svg,
                r##"<path d="M{:.1} {mid:.1} l5 -5 l5 5 l-5 5 z" fill="none" stroke="#e67e22" stroke-width="1.5"/>"##,
                cx - 5.0
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11">{:.1}% ({}/{})</text>"##,
            LABEL + plot + 8.0,
            mid + 4.0,
            g.rate * 100.0,
            g.passed,
            g.cases
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of `values` in 20 bins, with p50 and p95 marked; `unit` formats a value.
pub(super) fn histogram(title: &str, values: &[f64], unit: &dyn Fn(f64) -> String) -> String {
    let height = 180.0;
    let mut svg = open(height, title);
    if values.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="20" y="40" font-size="12">no cases</text></svg>"#
        );
        return svg;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (low, high) = (sorted[0], sorted[sorted.len() - 1]);
    let span = if high > low { high - low } else { 1.0 };
    const BINS: usize = 20;
    let mut counts = [0usize; BINS];
    for v in &sorted {
        let bin = (((v - low) / span) * BINS as f64) as usize;
        counts[bin.min(BINS - 1)] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (left, plot_w, plot_h, base) = (50.0, WIDTH - 70.0, height - 60.0, height - 35.0);
    let bin_w = plot_w / BINS as f64;
    for (i, count) in counts.iter().enumerate() {
        let h = *count as f64 / tallest * plot_h;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#6a9f58"><title>{count}</title></rect>"##,
            left + bin_w * i as f64 + 1.0,
            base - h,
            bin_w - 2.0
        );
    }
    let x = |v: f64| left + (v - low) / span * plot_w;
    for (name, q, y) in [("p50", 0.5, 10.0), ("p95", 0.95, 22.0)] {
        let v = stats::quantile(&sorted, q);
        // Labels near the right edge end at their line, so they stay inside the plot.
        let anchor = if x(v) > left + plot_w * 0.7 {
            "end"
        } else {
            "start"
        };
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{4:.1}" x2="{0:.1}" y2="{1:.1}" stroke="#c0392b" stroke-dasharray="4 3"/><text x="{0:.1}" y="{5:.1}" text-anchor="{6}" font-size="10">{2} {3}</text>"##,
            x(v),
            base,
            name,
            escape(&unit(v)),
            y + 2.0,
            y,
            anchor
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#444"/><text x="{left}" y="{:.1}" font-size="10">{}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">tallest bar: {} cases</text></svg>"##,
        left + plot_w,
        base + 14.0,
        escape(&unit(low)),
        left + plot_w,
        base + 14.0,
        escape(&unit(high)),
        left + plot_w / 2.0,
        base + 14.0,
        tallest
    );
    svg
}

fn open(height: f64, title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" role="img" font-family="sans-serif"><title>{}</title>"#,
        escape(title)
    )
}
