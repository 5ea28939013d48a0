//! Standard populations for direct age standardisation, and the directly standardised
//! value itself.
//!
//! A standard is versioned data in the repository (`catalog/standards/*.toml`) naming its
//! source. Only these fixed standards can be asked for: a requester who could choose the
//! weights could put all weight on one age group and read that group's count (see
//! docs/analysis.md). A recipe's own age bands rarely match a standard's 5-year groups, so
//! a standard is brought to the recipe's bands by spreading each group's weight evenly over
//! its years (an open last group counts as five years) and keeping the years the recipe
//! counts; the weights are then normalised to sum to 1.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::breakdown::AgeBands;

/// One age group of a standard population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardBand {
    pub from: u32,
    /// Last age of the group; absent for the open last group.
    #[serde(default)]
    pub to: Option<u32>,
    pub weight: f64,
}

/// A standard population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardPopulation {
    pub id: String,
    pub title: String,
    pub source: String,
    pub unit: String,
    pub bands: Vec<StandardBand>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct StandardError {
    pub file: String,
    pub reason: String,
}

impl StandardPopulation {
    /// Parses and checks a standard: groups from age 0 on, contiguous, positive weights, the
    /// last one open.
    pub fn parse(file: &str, text: &str) -> Result<StandardPopulation, StandardError> {
        let err = |reason: String| StandardError { file: file.to_string(), reason };
        let s: StandardPopulation = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if s.bands.first().map(|b| b.from) != Some(0) {
            return Err(err("the first age group must start at 0".into()));
        }
        for w in s.bands.windows(2) {
            if w[0].to.map(|t| t + 1) != Some(w[1].from) {
                return Err(err(format!("age group from {} does not follow the one before it", w[1].from)));
            }
        }
        if s.bands.last().is_some_and(|b| b.to.is_some()) {
            return Err(err("the last age group must be open (no 'to')".into()));
        }
        if s.bands.iter().any(|b| !(b.weight > 0.0) || !b.weight.is_finite()) {
            return Err(err("every weight must be positive".into()));
        }
        Ok(s)
    }

    /// The standard's weights over a recipe's age bands, summing to 1.
    pub fn weights(&self, bands: &AgeBands) -> Vec<f64> {
        let edges = &bands.0;
        let mut out = vec![0.0; edges.len()];
        for b in &self.bands {
            let last = b.to.unwrap_or(b.from + 4);
            let years = (last - b.from + 1) as f64;
            for age in b.from..=last {
                // The recipe band this age falls in (ages below the first edge are not counted).
                if let Some(i) = edges.iter().rposition(|&e| age >= e) {
                    out[i] += b.weight / years;
                }
            }
        }
        let total: f64 = out.iter().sum();
        out.iter().map(|w| w / total).collect()
    }
}

/// Every standard population shipped, by id.
pub fn standards() -> &'static [StandardPopulation] {
    static ALL: OnceLock<Vec<StandardPopulation>> = OnceLock::new();
    ALL.get_or_init(|| {
        crate::catalog::embedded::STANDARDS
            .iter()
            .map(|(f, t)| match StandardPopulation::parse(f, t) {
                Ok(s) => s,
                // Checked by the unit tests below; a failure here is a build bug.
                Err(e) => panic!("embedded standard population is invalid: {e}"),
            })
            .collect()
    })
}

/// A standard by id.
pub fn standard(id: &str) -> Option<&'static StandardPopulation> {
    standards().iter().find(|s| s.id == id)
}

/// A directly standardised value and what its intervals need: `value` = Σ wᵢ xᵢ/nᵢ,
/// `var` = Σ wᵢ² xᵢ/nᵢ² (Poisson), `wmax` = max wᵢ/nᵢ (Fay and Feuer), `events` = Σ xᵢ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardised {
    pub value: f64,
    pub var: f64,
    pub wmax: f64,
    pub events: f64,
}

/// The directly standardised value of strata `(events, persons or person-time)` with
/// `weights` (summing to 1). None when a stratum with weight has no persons.
pub fn standardise(strata: &[(f64, f64)], weights: &[f64]) -> Option<Standardised> {
    if strata.len() != weights.len() || strata.is_empty() {
        return None;
    }
    let mut s = Standardised { value: 0.0, var: 0.0, wmax: 0.0, events: 0.0 };
    for (&(x, n), &w) in strata.iter().zip(weights) {
        if w <= 0.0 {
            continue;
        }
        if !(n > 0.0) {
            return None;
        }
        s.value += w * x / n;
        s.var += w * w * x / (n * n);
        s.wmax = s.wmax.max(w / n);
        s.events += x;
    }
    Some(s)
}

/// `x` rounded to `digits` significant digits.
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_standards_are_valid_and_sum_as_published() {
        let esp = standard("esp2013").expect("ESP 2013 ships");
        let total: f64 = esp.bands.iter().map(|b| b.weight).sum();
        assert_eq!(total, 100_000.0);
        let se = standard("se2020").expect("Sweden 2020 ships");
        assert_eq!(se.bands.iter().map(|b| b.weight).sum::<f64>(), 10_379_295.0, "SCB's population of Sweden on 31 December 2020");
        assert!(standards().iter().all(|s| !s.source.is_empty()));
    }

    #[test]
    fn weights_follow_the_recipe_bands() {
        let esp = standard("esp2013").unwrap();
        // 18-64, 65-79, 80+: 2/5 of 15-19 and 20..64 in the first band.
        let w = esp.weights(&AgeBands(vec![18, 65, 80]));
        let first = 2.0 / 5.0 * 5500.0 + 6000.0 * 2.0 + 6500.0 + 7000.0 * 4.0 + 6500.0 + 6000.0;
        let second = 5500.0 + 5000.0 + 4000.0;
        let third = 2500.0 + 1500.0 + 800.0 + 200.0;
        let sum = first + second + third;
        assert!((w[0] - first / sum).abs() < 1e-12 && (w[1] - second / sum).abs() < 1e-12 && (w[2] - third / sum).abs() < 1e-12, "{w:?}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let bad = StandardPopulation::parse("x.toml", "id='x'\ntitle='x'\nsource='x'\nunit='x'\nbands=[{from=1,to=4,weight=1},{from=5,weight=1}]");
        assert!(bad.unwrap_err().reason.contains("start at 0"));
    }

    #[test]
    fn a_standardised_value_is_the_weighted_sum_of_stratum_rates() {
        let s = standardise(&[(10.0, 1000.0), (30.0, 500.0)], &[0.75, 0.25]).unwrap();
        assert!((s.value - (0.75 * 0.01 + 0.25 * 0.06)).abs() < 1e-15);
        assert!((s.var - (0.5625 * 10.0 / 1e6 + 0.0625 * 30.0 / 250_000.0)).abs() < 1e-15);
        assert_eq!((s.events, s.wmax), (40.0, 0.75 / 1000.0));
        assert!(standardise(&[(1.0, 0.0)], &[1.0]).is_none(), "an empty stratum with weight");
        assert_eq!(round_significant(0.012345678, 4), 0.01235);
    }
}
