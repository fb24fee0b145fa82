//! Whether a count of failures is too many to be chance: the binomial upper tail.
//!
//! The breaker's short window must open on a burst of failures as soon as the burst is
//! conclusive, at any traffic, and never on a target that merely fails now and then. A
//! bare threshold cannot do both: 5 failures out of 5 calls and 500 out of 1,000 say
//! different things. The test asks how likely `k` or more failures out of `n` calls
//! would be from a target that fails with probability `p`, and answers yes only when
//! that is below `alpha`. It runs on the hot path (every failure a breaker records), so
//! it sums no more terms than it needs: it stops as soon as the sum reaches `alpha`, or
//! as soon as a geometric bound on the terms left keeps it below.

/// Whether `P(X ≥ k) < alpha` for `X ~ Binomial(n, p)`; `k` above `n` counts as `n`.
/// `alpha` is expected in `(0, 0.5)`.
pub(crate) fn upper_tail_below(k: u64, n: u64, p: f64, alpha: f64) -> bool {
    let k = k.min(n);
    if k == 0 || p >= 1.0 {
        return false; // the tail is 1
    }
    if p <= 0.0 {
        return true; // k ≥ 1 failures from a target that never fails
    }
    // At or below the mean the tail holds the median: at least one half.
    if k as f64 <= n as f64 * p {
        return false;
    }
    let odds = p / (1.0 - p);
    let mut log_term = ln_choose(n, k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln();
    let mut sum = 0.0;
    let mut i = k;
    loop {
        let term = log_term.exp();
        sum += term;
        if sum >= alpha {
            return false;
        }
        if i == n {
            return true;
        }
        // term(i+1) / term(i); it only falls as i grows, and is below 1 past the mean,
        // so the terms left sum to at most term·ratio / (1 − ratio).
        let ratio = (n - i) as f64 / (i + 1) as f64 * odds;
        if sum + term * ratio / (1.0 - ratio) < alpha {
            return true;
        }
        log_term += ratio.ln();
        i += 1;
    }
}

/// `ln(n choose k)`, `k ≤ n`.
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// `ln(n!)`: exact below 16, Stirling's series above (error below 1e-11).
fn ln_factorial(n: u64) -> f64 {
    if n < 16 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    x * x.ln() - x
        + 0.5 * (std::f64::consts::TAU * x).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact tail by summing every term in plain floating point (small `n` only).
    fn tail(k: u64, n: u64, p: f64) -> f64 {
        (k..=n)
            .map(|i| {
                let choose: f64 = (0..i).map(|j| (n - j) as f64 / (j + 1) as f64).product();
                choose * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32)
            })
            .sum()
    }

    #[test]
    fn agrees_with_the_exact_tail_on_every_small_case() {
        for n in 0..=60 {
            for k in 0..=n {
                for p in [0.05, 0.2, 0.3, 0.5, 0.8] {
                    for alpha in [1e-2, 1e-3, 1e-5] {
                        let exact = tail(k, n, p);
                        // Leave out the cases that round either way.
                        if (exact / alpha - 1.0).abs() < 1e-9 {
                            continue;
                        }
                        assert_eq!(
                            upper_tail_below(k, n, p, alpha),
                            exact < alpha,
                            "k={k} n={n} p={p} alpha={alpha} tail={exact}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_familiar_cutoffs() {
        // 10 failures out of 10 from a coin: 1/1024 < 1e-3; 9 of 10: 11/1024 is not.
        assert!(upper_tail_below(10, 10, 0.5, 1e-3));
        assert!(!upper_tail_below(9, 10, 0.5, 1e-3));
        // n = 1000, p = 0.5: P(X ≥ 550) = 8.6e-4, P(X ≥ 545) = 2.3e-3.
        assert!(upper_tail_below(550, 1_000, 0.5, 1e-3));
        assert!(!upper_tail_below(545, 1_000, 0.5, 1e-3));
        // A large count is decided in a few terms and is as right.
        assert!(upper_tail_below(60_000, 100_000, 0.5, 1e-3));
        assert!(!upper_tail_below(50_300, 100_000, 0.5, 1e-3));
    }

    #[test]
    fn edges() {
        assert!(!upper_tail_below(0, 0, 0.5, 1e-3), "nothing seen");
        assert!(
            !upper_tail_below(5, 5, 1.0, 1e-3),
            "a target that always fails"
        );
        assert!(upper_tail_below(1, 5, 0.0, 1e-3), "one that never does");
        assert_eq!(
            upper_tail_below(12, 10, 0.5, 1e-3),
            upper_tail_below(10, 10, 0.5, 1e-3)
        );
    }

    #[test]
    fn ln_factorial_is_continuous_where_the_series_takes_over() {
        let exact: f64 = (2..=16).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(16) - exact).abs() < 1e-10);
        let exact: f64 = (2..=40).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(40) - exact).abs() < 1e-10);
    }
}
