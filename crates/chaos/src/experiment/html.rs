//! The experiment as one self-contained HTML page: the verdict, the judgements, the
//! actions, and three plots over time (success rate, p99 latency, traffic share per
//! target) with the fault window shaded.
//!
//! The decision: inline SVG drawn here, no script and no external asset, so the file
//! opens anywhere (an attachment, an air-gapped machine, a CI artifact) and shows the
//! same thing in every browser.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::judge::rank;
use super::run::{Report, Sample};

/// The width of a plot's time bucket.
const BUCKET: Duration = Duration::from_millis(500);

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 180.0;
const PAD_LEFT: f64 = 56.0;
const PAD_BOTTOM: f64 = 24.0;

const COLORS: [&str; 6] = [
    "#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#be123c",
];

/// A line to plot: its name, colour and points (seconds, value).
struct Series {
    name: String,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

/// One self-contained HTML page for the reports of a run, one section each.
pub fn page(reports: &[Report]) -> String {
    let title = match reports {
        [one] => one.title.clone(),
        _ => format!("{} chaos experiments", reports.len()),
    };
    let mut page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#111}}\
         .ok{{color:#15803d}}.bad{{color:#b91c1c}}table{{border-collapse:collapse}}\
         td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         section{{margin-bottom:40px}}svg{{display:block;margin:8px 0 20px}}</style></head><body>",
        escape(&title)
    );
    for report in reports {
        page.push_str(&report.section());
    }
    page.push_str("</body></html>\n");
    page
}

impl Report {
    /// The report as a section of the page.
    fn section(&self) -> String {
        let end = self
            .phases
            .last()
            .map_or(1.0, |p| p.end.as_secs_f64())
            .max(1.0);
        let buckets = buckets(&self.samples);
        let mut page = String::new();
        let verdict_class = if self.verdict.passed() { "ok" } else { "bad" };
        let _ = write!(
            page,
            "<section><h1>{}</h1><p>{}</p><p class=\"verdict {verdict_class}\"><b>{}</b></p>",
            escape(&self.title),
            escape(&self.file),
            escape(&self.verdict.to_string()),
        );
        page.push_str("<h2>Hypothesis</h2><table><tr><th>phase</th><th>probe</th><th>value</th><th>tolerance</th><th>held</th></tr>");
        for j in &self.judgements {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                j.phase.name(),
                escape(&j.probe),
                escape(&j.shown),
                escape(&j.tolerance),
                if j.held { "ok" } else { "bad" },
                if j.held { "yes" } else { "no" },
            );
        }
        page.push_str("</table><h2>Actions</h2><ul>");
        for a in &self.actions {
            let _ = write!(
                page,
                "<li>+{:.1} s {}: {}{}</li>",
                a.at.as_secs_f64(),
                escape(&a.list),
                escape(&a.what),
                a.error
                    .as_ref()
                    .map(|e| format!(" <span class=\"bad\">failed: {}</span>", escape(e)))
                    .unwrap_or_default()
            );
        }
        page.push_str("</ul>");
        let success = Series {
            name: "success rate".into(),
            color: COLORS[1],
            points: buckets.iter().map(|(t, b)| (*t, b.success())).collect(),
        };
        page.push_str(&self.plot("Success rate", &[success], end, 1.0, |v| {
            format!("{:.0}%", v * 100.0)
        }));
        let p99 = Series {
            name: "p99 latency".into(),
            color: COLORS[0],
            points: buckets
                .iter()
                .map(|(t, b)| (*t, b.p99().as_secs_f64() * 1000.0))
                .collect(),
        };
        let top = p99.points.iter().map(|p| p.1).fold(1.0, f64::max);
        page.push_str(&self.plot("Latency (p99, ms)", &[p99], end, top, |v| format!("{v:.0}")));
        let shares = shares(&buckets);
        page.push_str(
            &self.plot("Traffic share per target", &shares, end, 1.0, |v| {
                format!("{:.0}%", v * 100.0)
            }),
        );
        page.push_str("</section>");
        page
    }

    fn plot(
        &self,
        title: &str,
        series: &[Series],
        x_max: f64,
        y_max: f64,
        label: impl Fn(f64) -> String,
    ) -> String {
        let (w, h) = (WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM);
        let x = |t: f64| PAD_LEFT + t / x_max * w;
        let y = |v: f64| h - (v / y_max).clamp(0.0, 1.0) * (h - 8.0);
        let mut svg = format!(
            "<h2>{}</h2><svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" \
             viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"{}\">",
            escape(title),
            HEIGHT + 18.0,
            HEIGHT + 18.0,
            escape(title)
        );
        for (a, b) in &self.fault_windows {
            let _ = write!(
                svg,
                "<rect class=\"fault\" x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#fecaca\" opacity=\"0.6\"><title>fault window</title></rect>",
                x(a.as_secs_f64()),
                (x(b.as_secs_f64()) - x(a.as_secs_f64())).max(1.0)
            );
        }
        let _ = write!(
            svg,
            "<line x1=\"{PAD_LEFT}\" y1=\"{h}\" x2=\"{WIDTH}\" y2=\"{h}\" stroke=\"#999\"/>\
             <line x1=\"{PAD_LEFT}\" y1=\"0\" x2=\"{PAD_LEFT}\" y2=\"{h}\" stroke=\"#999\"/>\
             <text x=\"4\" y=\"12\" font-size=\"11\">{}</text><text x=\"4\" y=\"{h}\" font-size=\"11\">{}</text>\
             <text x=\"{PAD_LEFT}\" y=\"{:.0}\" font-size=\"11\">0 s</text><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"end\">{x_max:.1} s</text>",
            escape(&label(y_max)),
            escape(&label(0.0)),
            h + 16.0,
            WIDTH,
            h + 16.0
        );
        for s in series {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let _ = write!(
                svg,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
                s.color,
                points.join(" "),
                escape(&s.name)
            );
        }
        let mut legend_x = PAD_LEFT;
        for s in series {
            let _ = write!(
                svg,
                "<text x=\"{legend_x:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"{}\">■ {}</text>",
                HEIGHT + 14.0,
                s.color,
                escape(&s.name)
            );
            legend_x += 16.0 + 7.0 * s.name.chars().count() as f64;
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The requests of one time bucket.
#[derive(Default)]
struct Bucket {
    latencies: Vec<Duration>,
    ok: usize,
    by_target: BTreeMap<String, usize>,
}

impl Bucket {
    fn success(&self) -> f64 {
        self.ok as f64 / self.latencies.len().max(1) as f64
    }

    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        rank(&sorted, 99.0)
    }
}

/// Requests grouped by [`BUCKET`], keyed by the bucket's middle in seconds.
fn buckets(samples: &[Sample]) -> Vec<(f64, Bucket)> {
    let mut map: BTreeMap<u128, Bucket> = BTreeMap::new();
    for s in samples {
        let bucket = map
            .entry(s.at.as_millis() / BUCKET.as_millis())
            .or_default();
        bucket.latencies.push(s.latency);
        if let Ok((target, _)) = &s.outcome {
            bucket.ok += 1;
            *bucket.by_target.entry(target.clone()).or_default() += 1;
        }
    }
    let half = BUCKET.as_secs_f64() / 2.0;
    map.into_iter()
        .map(|(i, b)| (i as f64 * BUCKET.as_secs_f64() + half, b))
        .collect()
}

/// One series per target: its share of each bucket's answered requests.
fn shares(buckets: &[(f64, Bucket)]) -> Vec<Series> {
    let targets: std::collections::BTreeSet<&String> = buckets
        .iter()
        .flat_map(|(_, b)| b.by_target.keys())
        .collect();
    targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| Series {
            name: target.clone(),
            color: COLORS[i % COLORS.len()],
            points: buckets
                .iter()
                .map(|(t, b)| {
                    let n = b.by_target.get(target).copied().unwrap_or(0);
                    (*t, n as f64 / b.ok.max(1) as f64)
                })
                .collect(),
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
