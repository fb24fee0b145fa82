//! Reading the Prometheus text format that `/metrics` writes: one sample line at a time.
//!
//! Two readers need it: the alert rules, which sample the server's own exposition so
//! that they read exactly the series a Prometheus server reads, and `holdfast demo`,
//! which reports from a scrape of its own server. Only what those readers need is
//! parsed: `name{label="value",…} number` lines, with the format's escapes in values.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric's name (with `_sum`, `_count` or `_bucket` for histogram lines).
    pub name: String,
    /// Its labels, in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Series {
    /// `name{a="x",b="y"} 1.5`, or `name 1.5`; `None` for a line that is neither
    /// (comments included).
    pub fn parse(line: &str) -> Option<Series> {
        let (head, value) = line.trim().rsplit_once(' ')?;
        let value: f64 = value.parse().ok()?;
        let (name, labels) = match head.find('{') {
            Some(open) => (&head[..open], parse_labels(&head[open + 1..])?),
            None => (head, Vec::new()),
        };
        if name.is_empty() || name.starts_with('#') {
            return None;
        }
        Some(Series {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// The value of label `name`, if the line has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `a="x",b="y\"z"}` → pairs, unescaping values.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars();
    loop {
        let mut name = String::new();
        loop {
            match chars.next()? {
                '=' => break,
                '}' if name.is_empty() => return Some(labels),
                ',' if name.is_empty() => {}
                c => name.push(c),
            }
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_with_their_labels_and_escapes() {
        let s = Series::parse(r#"holdfast_attempts_total{target="b\"x",outcome="ok"} 10"#).unwrap();
        assert_eq!(s.name, "holdfast_attempts_total");
        assert_eq!(s.label("target"), Some("b\"x"));
        assert_eq!(s.label("outcome"), Some("ok"));
        assert_eq!(s.value, 10.0);
        assert_eq!(Series::parse("up 1").unwrap().labels, vec![]);
        for bad in [
            "# TYPE up gauge",
            "",
            "up",
            "up{a=\"x\" 1",
            "up{a=x} 1",
            "up one",
        ] {
            assert_eq!(Series::parse(bad), None, "{bad}");
        }
    }
}
