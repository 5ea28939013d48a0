//! Release over release (docs/data-quality.md): when a region loads a new data version, the
//! agent compares each recipe's yearly volumes with the version in force before the new one
//! takes over, and reports the changes in its health (Sentinel's release-to-release checks:
//! a change over 5 % is a warning, over 10 % critical).
//!
//! Only complete years both versions hold are compared (the old version's last year may have
//! grown since), and only years with at least [`MIN_VOLUME`] units in the old version, so a
//! percentage is never a small count in disguise. Health shows the band and the change in
//! whole per cent, never a count.

use norrsken_model::catalog::Catalog;
use norrsken_model::query::IndicatorQuery;
use serde::Serialize;

use crate::engine::Engine;

/// The smallest yearly volume whose change is reported.
pub const MIN_VOLUME: i64 = 100;

/// One recipe-year whose volume changed between two data versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseChange {
    pub recipe: String,
    pub year: i32,
    /// `warning` (over 5 %) or `critical` (over 10 %).
    pub band: &'static str,
    /// The change in whole per cent.
    pub change_pct: i64,
}

/// What a reload found: the versions compared and the changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseReport {
    pub from_version: String,
    pub to_version: String,
    pub recipes_compared: usize,
    pub changes: Vec<ReleaseChange>,
}

/// The band of a relative change.
pub fn band(change: f64) -> Option<&'static str> {
    match change.abs() {
        c if c > 0.10 => Some("critical"),
        c if c > 0.05 => Some("warning"),
        _ => None,
    }
}

/// A data version's yearly volume per recipe, kept while the version is in force so that the
/// next version can be compared with it after its files have replaced the old ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Volumes {
    pub version: String,
    pub years: (i32, i32),
    pub by_recipe: std::collections::BTreeMap<String, Vec<(i32, i64)>>,
}

async fn yearly(engine: &Engine, catalog: &Catalog, recipe: &str, years: (i32, i32)) -> Option<Vec<(i32, i64)>> {
    let q = IndicatorQuery { indicator: recipe.to_string(), breakdowns: vec!["year".into()], period: format!("{}..{}", years.0, years.1), ..Default::default() };
    let v = q.validate_for_engine(catalog, Some(engine.data_years())).ok()?;
    let table = engine.evaluate(&v).await.ok()?;
    let at = v.breakdowns.iter().position(|b| *b == norrsken_model::breakdown::Breakdown::Year)?;
    let mut out: Vec<(i32, i64)> = Vec::new();
    for c in &table.cells {
        // The year's cell over every other breakdown (a cohort's: its `before` measure).
        let others_total = c.labels.iter().enumerate().all(|(i, l)| {
            i == at || l == crate::engine::cells::TOTAL || (v.breakdowns.get(i) == Some(&norrsken_model::breakdown::Breakdown::Measure) && l == "before")
        });
        let Ok(year) = c.labels[at].parse::<i32>() else { continue };
        if others_total && c.category.is_none() {
            out.push((year, c.units));
        }
    }
    Some(out)
}

/// Every recipe's yearly volumes in `engine`'s data.
pub async fn volumes(engine: &Engine, catalog: &Catalog) -> Volumes {
    let years = engine.data_years();
    let mut out = Volumes { version: engine.data_version().to_string(), years, by_recipe: Default::default() };
    for recipe in catalog.latest() {
        if let Some(v) = yearly(engine, catalog, &recipe.id, years).await {
            out.by_recipe.insert(recipe.id.clone(), v);
        }
    }
    out
}

/// Compares two versions' yearly volumes over the complete years both hold (the old
/// version's last year may still have been growing).
pub fn compare(old: &Volumes, new: &Volumes) -> ReleaseReport {
    let years = (old.years.0.max(new.years.0), (old.years.1 - 1).min(new.years.1));
    let mut report = ReleaseReport { from_version: old.version.clone(), to_version: new.version.clone(), recipes_compared: 0, changes: Vec::new() };
    for (recipe, before) in &old.by_recipe {
        let Some(after) = new.by_recipe.get(recipe) else { continue };
        report.recipes_compared += 1;
        for &(year, was) in before.iter().filter(|(y, _)| *y >= years.0 && *y <= years.1) {
            if was < MIN_VOLUME {
                continue;
            }
            let now = after.iter().find(|(y, _)| *y == year).map_or(0, |(_, n)| *n);
            let change = now as f64 / was as f64 - 1.0;
            if let Some(band) = band(change) {
                report.changes.push(ReleaseChange { recipe: recipe.clone(), year, band, change_pct: (change * 100.0).round() as i64 });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_over_complete_common_years_above_the_smallest_volume() {
        let v = |version: &str, years: (i32, i32), rows: &[(&str, &[(i32, i64)])]| Volumes {
            version: version.into(),
            years,
            by_recipe: rows.iter().map(|(r, ys)| (r.to_string(), ys.to_vec())).collect(),
        };
        let old = v("a", (2021, 2024), &[("kpp", &[(2021, 1000), (2022, 1000), (2023, 1000), (2024, 500)]), ("rare", &[(2022, 40)])]);
        let new = v("b", (2021, 2025), &[("kpp", &[(2021, 1000), (2022, 1090), (2023, 1200), (2024, 1000)]), ("rare", &[(2022, 80)])]);
        let r = compare(&old, &new);
        assert_eq!(r.recipes_compared, 2);
        // 2022 +9 % a warning, 2023 +20 % critical; 2024 (the old version's last year) and
        // the rare recipe (under 100) are not compared.
        assert_eq!(
            r.changes,
            vec![
                ReleaseChange { recipe: "kpp".into(), year: 2022, band: "warning", change_pct: 9 },
                ReleaseChange { recipe: "kpp".into(), year: 2023, band: "critical", change_pct: 20 },
            ]
        );
    }

    #[test]
    fn bands_follow_sentinels_thresholds() {
        assert_eq!(band(0.03), None);
        assert_eq!(band(0.08), Some("warning"));
        assert_eq!(band(-0.08), Some("warning"));
        assert_eq!(band(0.5), Some("critical"));
    }
}
