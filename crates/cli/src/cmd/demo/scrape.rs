//! Reading the demo's own `GET /metrics`: the one source of every figure the live view
//! and the report show.
//!
//! The decision: the demo scrapes its own server over loopback, exactly as Prometheus
//! would, instead of keeping counters of its own or reaching into the gateway's
//! registry. What the report says is then what `/metrics` says by construction, and a
//! user can check any figure with `curl`. The parser reads only what the exposition
//! format needs here: `name{label="value",…} number` lines, comments skipped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use holdfast_alerts::exposition::Series;

/// One sample line.
pub(crate) type Sample = Series;

/// Whether `sample` is of `name` with every label of `filter`.
fn matches(sample: &Sample, name: &str, filter: &[(&str, &str)]) -> bool {
    sample.name == name && filter.iter().all(|(k, v)| sample.label(k) == Some(*v))
}

/// A parsed scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format; lines it cannot read are skipped (a scrape
    /// is read for a few known families, and a new family must not break the demo).
    pub(crate) fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(Series::parse)
            .collect();
        Scrape { samples }
    }

    /// The sum of `name` over the samples whose labels include `filter`.
    pub(crate) fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| matches(s, name, filter))
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// [`Scrape::sum`] as a count (counters of events are whole numbers).
    pub(crate) fn count(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.sum(name, filter).max(0.0).round() as u64
    }

    /// The sums of `name` matching `filter`, by the value of `label`.
    pub(crate) fn by(
        &self,
        name: &str,
        label: &str,
        filter: &[(&str, &str)],
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| matches(s, name, filter)) {
            if let Some(value) = sample.label(label) {
                *out.entry(value.to_owned()).or_insert(0.0) += sample.value;
            }
        }
        out
    }
}

/// Scrapes `GET /metrics` of the server at `addr`.
#[derive(Debug, Clone)]
pub(crate) struct Scraper {
    client: reqwest::Client,
    url: String,
}

impl Scraper {
    pub(crate) fn new(addr: SocketAddr) -> anyhow::Result<Scraper> {
        // No proxy: the server is on loopback, and a developer's HTTP_PROXY must not
        // see (or break) the demo's own scrapes.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the metrics client")?;
        Ok(Scraper {
            client,
            url: format!("http://{addr}/metrics"),
        })
    }

    pub(crate) async fn scrape(&self) -> anyhow::Result<Scrape> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .with_context(|| format!("scraping {}", self.url))?;
        let status = response.status();
        let text = response.text().await.context("reading /metrics")?;
        if !status.is_success() {
            anyhow::bail!("{} answered {status}", self.url);
        }
        Ok(Scrape::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_filter_by_labels_and_read_escapes() {
        let text = "# HELP x y\n# TYPE x counter\n\
            holdfast_tasks_total{workflow=\"a\",status=\"succeeded\"} 3\n\
            holdfast_tasks_total{workflow=\"b\\\"q\",status=\"succeeded\"} 2\n\
            holdfast_tasks_total{workflow=\"a\",status=\"failed\"} 1\n\
            holdfast_task_takeovers_total 0\n\
            holdfast_cost_usd_total{route=\"r\",target=\"t\"} 0.25\n";
        let scrape = Scrape::parse(text);
        assert_eq!(
            scrape.count("holdfast_tasks_total", &[("status", "succeeded")]),
            5
        );
        assert_eq!(scrape.count("holdfast_tasks_total", &[]), 6);
        assert_eq!(scrape.count("holdfast_task_takeovers_total", &[]), 0);
        assert!((scrape.sum("holdfast_cost_usd_total", &[]) - 0.25).abs() < 1e-12);
        let by = scrape.by("holdfast_tasks_total", "workflow", &[]);
        assert_eq!(by.get("b\"q").copied(), Some(2.0));
    }
}
