//! A unified line diff of two configuration texts, for `holdfast config diff`.
//!
//! The decision: a plain longest-common-subsequence table over lines, written here
//! rather than pulled in as a dependency. Configuration files are a few hundred lines,
//! so the quadratic table is small (the size is capped to keep it so), and the output
//! is the familiar unified format with three lines of context.

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Above this many cells the table is not built and the texts are shown as replaced
/// whole: 4000 × 4000 lines.
const MAX_CELLS: usize = 16_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Removed(usize),
    Added(usize),
}

/// The unified diff of `old` into `new`, labelled; empty when they are equal.
pub(crate) fn unified(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = script(&a, &b);
    if ops.iter().all(|op| matches!(op, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for hunk in hunks(&ops) {
        let (mut old_start, mut new_start, mut old_len, mut new_len) = (None, None, 0, 0);
        let mut body = String::new();
        for op in &ops[hunk.0..hunk.1] {
            match *op {
                Op::Same(i, j) => {
                    old_start.get_or_insert(i);
                    new_start.get_or_insert(j);
                    old_len += 1;
                    new_len += 1;
                    body.push_str(&format!(" {}\n", a[i]));
                }
                Op::Removed(i) => {
                    old_start.get_or_insert(i);
                    old_len += 1;
                    body.push_str(&format!("-{}\n", a[i]));
                }
                Op::Added(j) => {
                    new_start.get_or_insert(j);
                    new_len += 1;
                    body.push_str(&format!("+{}\n", b[j]));
                }
            }
        }
        let start = |s: Option<usize>, len: usize| {
            if len == 0 {
                s.unwrap_or(0)
            } else {
                s.unwrap_or(0) + 1
            }
        };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n{body}",
            start(old_start, old_len),
            start(new_start, new_len)
        ));
    }
    out
}

/// The edit script: every line of both texts, in order.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if (n + 1).saturating_mul(m + 1) > MAX_CELLS {
        let mut ops: Vec<Op> = (0..n).map(Op::Removed).collect();
        ops.extend((0..m).map(Op::Added));
        return ops;
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let width = m + 1;
    let mut lcs = vec![0_u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
            // Removals before additions, as unified diffs show a replaced line.
            ops.push(Op::Removed(i));
            i += 1;
        } else {
            ops.push(Op::Added(j));
            j += 1;
        }
    }
    ops
}

/// Ranges of `ops` to print: each change with its context, overlapping ones merged.
fn hunks(ops: &[Op]) -> Vec<(usize, usize)> {
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        if matches!(op, Op::Same(..)) {
            continue;
        }
        let start = k.saturating_sub(CONTEXT);
        let end = (k + 1 + CONTEXT).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => hunks.push((start, end)),
        }
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_is_shown_with_its_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let diff = unified(old, new, "version 1", "version 2");
        assert_eq!(
            diff,
            "--- version 1\n+++ version 2\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
    }

    #[test]
    fn equal_texts_have_no_diff_and_additions_count_right() {
        assert_eq!(unified("x\n", "x\n", "1", "2"), "");
        let diff = unified("", "x\ny\n", "1", "2");
        assert!(diff.contains("@@ -0,0 +1,2 @@\n+x\n+y\n"), "{diff}");
    }
}
