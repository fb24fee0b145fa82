//! The statistics of a run: how sure a pass rate is, whether a run is worse than its
//! baseline, and how large a drop a suite of its size can see at all.
//!
//! Why these three and not a threshold alone: a pass rate of 18/20 is 90%, but its 95%
//! interval runs from 70% to 97%, and a suite that small cannot tell a 2-point
//! regression from noise. So every rate carries its Wilson score interval (good at
//! small samples and near 0 and 1, where the normal approximation fails); a run is
//! compared to its baseline on the same cases with the exact McNemar test (only the
//! cases whose outcome changed carry information, and under no change each is equally
//! likely to have gone either way, a binomial with p = ½); and the report states the
//! smallest drop the test could detect. The formulas are in `docs/quality.md`; the
//! tests below check them against published values.

/// z for a two-sided 95% interval: the 97.5th percentile of the standard normal.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The significance level of the baseline comparison.
pub const ALPHA: f64 = 0.05;

/// The power at which [`detectable_drop`] is stated.
pub const POWER: f64 = 0.8;

/// The Wilson score interval at 95% for `passed` of `n`: `(low, high)`, `(0, 1)` for
/// `n = 0`.
///
/// With p̂ = passed / n and z = 1.96: centre = (p̂ + z²/2n) / (1 + z²/n), half-width =
/// z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/4n²).
pub fn wilson(passed: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = passed.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The two-sided p-value of the exact McNemar test for `b` cases that passed in the
/// baseline and failed in the run and `c` the other way round: under no change each of
/// the n = b + c discordant cases went either way with probability ½, so
/// p = min(1, 2 · Σ_{i=0}^{min(b,c)} C(n, i) / 2ⁿ). 1 when nothing changed.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    (2.0 * binomial_cdf_half(b.min(c), n)).min(1.0)
}

/// P(X ≤ k) for X ~ Binomial(n, ½), summed in log space so that large n does not
/// underflow 2⁻ⁿ.
fn binomial_cdf_half(k: u64, n: u64) -> f64 {
    let ln_half_n = n as f64 * std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_choose - ln_half_n).exp();
    }
    total.min(1.0)
}

/// P(X ≥ k) for X ~ Binomial(n, p).
fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_choose = 0.0;
    let mut below = 0.0; // P(X < k)
    for i in 0..k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        below += (ln_choose + i as f64 * ln_p + (n - i) as f64 * ln_q).exp();
    }
    (1.0 - below).clamp(0.0, 1.0)
}

/// The fewest discordant cases, all changed for the worse, that the exact McNemar test
/// calls significant: the smallest k with 2 · 2⁻ᵏ < α (6 at α = 0.05).
pub fn min_discordant() -> u64 {
    (1..64).find(|k| mcnemar_exact(*k, 0) < ALPHA).unwrap_or(64)
}

/// The smallest share of the cases the suite can see regress: `n` paired cases, each of
/// which regresses independently with probability d, give at least
/// [`min_discordant`] regressions (so a significant test, when nothing improves) with
/// probability [`POWER`] only for d at or above the returned value. `None` when no
/// drop is detectable (n below [`min_discordant`]).
///
/// It is optimistic: real runs also have cases that improve by chance, which only
/// raises the drop needed. It is never below [`min_discordant`] / n, the floor: fewer
/// changed cases can never be significant.
pub fn detectable_drop(n: u64) -> Option<f64> {
    let k = min_discordant();
    if n < k {
        return None;
    }
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if binomial_sf(k, n, mid) >= POWER {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

/// The `q`-quantile (0..=1) of `sorted` by the nearest-rank method; 0 for none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, within: f64) -> bool {
        (a - b).abs() <= within
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    /// Statistics in Medicine 17:857–872, Table II, method 3 (Wilson score, no
    /// continuity correction), to four decimals.
    #[test]
    fn wilson_intervals_match_newcombes_table() {
        for (passed, n, low, high) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0000, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson(passed, n);
            assert!(
                close(l, low, 5e-5) && close(h, high, 5e-5),
                "{passed}/{n}: got ({l:.4}, {h:.4}), published ({low}, {high})"
            );
        }
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (l, h) = wilson(20, 20);
        assert!(close(h, 1.0, 1e-12) && close(l, 0.8389, 5e-5), "{l} {h}");
    }

    /// Fagerland, Lydersen and Laake (2013), "The McNemar test for binary
    /// matched-pairs data: mid-p and asymptotic are better than exact conditional",
    /// BMC Medical Research Methodology 13:91: the airway hyper-responsiveness example
    /// (1 and 7 discordant pairs) has an exact conditional p-value of 0.070.
    #[test]
    fn mcnemar_matches_the_published_example() {
        assert!(
            close(mcnemar_exact(1, 7), 0.0703, 5e-5),
            "{}",
            mcnemar_exact(1, 7)
        );
        assert!(close(mcnemar_exact(7, 1), 0.0703, 5e-5));
        // R: binom.test(2, 12)$p.value = 0.03857.
        assert!(
            close(mcnemar_exact(2, 10), 0.03857, 5e-6),
            "{}",
            mcnemar_exact(2, 10)
        );
        // Exact by hand: 2 · 2⁻⁵ and 2 · 2⁻⁶.
        assert!(close(mcnemar_exact(5, 0), 0.0625, 1e-12));
        assert!(close(mcnemar_exact(0, 6), 0.03125, 1e-12));
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        // Large n does not underflow: 600 against 400 is far from chance.
        let p = mcnemar_exact(600, 400);
        assert!(p > 0.0 && p < 1e-9, "{p}");
    }

    #[test]
    fn the_smallest_detectable_drop_shrinks_with_the_suite() {
        assert_eq!(min_discordant(), 6);
        assert_eq!(detectable_drop(5), None);
        let twenty = detectable_drop(20).unwrap();
        let two_hundred = detectable_drop(200).unwrap();
        // At 20 cases only a drop of about 37 points is seen 80% of the time; at 200,
        // about 4.
        assert!((0.35..0.40).contains(&twenty), "{twenty}");
        assert!((0.035..0.05).contains(&two_hundred), "{two_hundred}");
        assert!(twenty >= 6.0 / 20.0 && two_hundred >= 6.0 / 200.0);
        // By definition: at the drop, P(at least 6 regressions) is 80%.
        assert!(close(binomial_sf(6, 200, two_hundred), POWER, 1e-6));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.95), 95.0);
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
