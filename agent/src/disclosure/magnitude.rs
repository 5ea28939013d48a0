//! Perturbation of magnitudes: the sums behind means and cost sums, and the spread released
//! in place of the sum of squares.
//!
//! As for counts, the noise is driven by a cell key (the sum of the units' record keys in a
//! key stream of its own), so the same cell always gets the same noise and a repeated
//! question cannot average it away. Following the cell key method for magnitude tables
//! (ABS TableBuilder, Destatis/Eurostat), the size of the noise is scaled to the cell's
//! largest contribution, the value that differencing would single out:
//!
//! `released sum = sum + m · top1 · δ`, with `δ` drawn by the key from ±[0.5, 1]
//!
//! (uniform on both halves, mean zero). The noise is never smaller than `m/2 · top1`, so a
//! released sum is never exact, and never larger than `m · top1`, so a sum of many
//! contributions keeps its precision. `m` is the policy's `magnitude` (default 0.1).
//!
//! The sum of squares does not leave the agent. A cell's standard deviation is released
//! instead, multiplied by `1 + m/2 · δ'` with a key of a third stream and rounded to three
//! significant digits; the coordinator's intervals use it.

/// δ in ±[0.5, 1] for a key in [0, 1): keys below one half give the negative side.
pub fn delta(key: f64) -> f64 {
    let key = key.clamp(0.0, 1.0 - f64::EPSILON);
    if key < 0.5 {
        -(0.5 + key)
    } else {
        0.5 + (key - 0.5)
    }
}

/// The released sum of a cell whose largest per-person contribution is `top1`.
pub fn perturb_sum(sum: f64, top1: f64, magnitude: f64, key: f64) -> f64 {
    let noise = magnitude * top1.abs() * delta(key);
    round_to(sum + noise, 2)
}

/// The standard deviation of `n` values with sum `sum` and sum of squares `sum_sq` (none
/// below two values).
pub fn standard_deviation(n: i64, sum: f64, sum_sq: f64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let n = n as f64;
    Some(((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt())
}

/// The released standard deviation: perturbed by up to half the magnitude, three
/// significant digits.
pub fn perturb_spread(sd: f64, magnitude: f64, key: f64) -> f64 {
    significant(sd * (1.0 + magnitude / 2.0 * delta(key)), 3)
}

/// `x` rounded to `digits` decimals.
pub fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `x` rounded to `digits` significant digits.
pub fn significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let f = 10f64.powi(digits - 1 - magnitude);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_is_bounded_below_and_above_and_unbiased() {
        let mut mean = 0.0;
        for i in 0..10_000 {
            let key = i as f64 / 10_000.0;
            let d = delta(key);
            assert!((0.5..=1.0).contains(&d.abs()), "{key}: {d}");
            mean += d;
            let s = perturb_sum(10_000.0, 800.0, 0.1, key);
            let noise = (s - 10_000.0).abs();
            assert!((39.99..=80.01).contains(&noise), "{key}: {noise}");
        }
        assert!((mean / 10_000.0).abs() < 1e-3, "{mean}");
        // The same key gives the same sum.
        assert_eq!(perturb_sum(123.4, 50.0, 0.1, 0.37), perturb_sum(123.4, 50.0, 0.1, 0.37));
    }

    #[test]
    fn spreads_are_rounded_and_sums_of_squares_become_a_standard_deviation() {
        // 1..=5: sd 1.5811
        let sd = standard_deviation(5, 15.0, 55.0).unwrap();
        assert!((sd - 1.581_138_8).abs() < 1e-6);
        assert!(standard_deviation(1, 3.0, 9.0).is_none());
        let released = perturb_spread(sd, 0.1, 0.9);
        assert!((released - sd).abs() <= 0.05 * sd + 0.005 && released != sd, "{released}");
        assert_eq!(significant(0.012_345, 3), 0.0123);
        assert_eq!(significant(98_765.0, 3), 98_800.0);
    }
}
