//! The canonical form of a question: one spelling for every way of asking the same table.
//!
//! Disclosure control decides on the canonical form, so a question asked with its
//! breakdowns in another order, with a filter that selects every value, or with its period
//! written in quarters or months instead of years gets the same cells with the same
//! decisions. The answer is then put back in the order the requester asked for.

use norrsken_model::answer::ReleasedCell;
use norrsken_model::breakdown::TimeGrain;
use norrsken_model::period::Period;
use norrsken_model::query::ValidatedQuery;

/// A question in canonical form and the way back to the order asked.
#[derive(Debug, Clone)]
pub struct Canonical {
    pub query: ValidatedQuery,
    /// For each breakdown as asked, its position in the canonical order.
    positions: Vec<usize>,
}

/// The coarsest grain that writes the period exactly.
pub fn canonical_period(p: &Period) -> Period {
    let grain = if p.first.month() == 1 && p.last.month() == 12 {
        TimeGrain::Year
    } else if (p.first.month() - 1) % 3 == 0 && p.last.month() % 3 == 0 {
        TimeGrain::Quarter
    } else {
        TimeGrain::Month
    };
    Period { grain, ..*p }
}

impl Canonical {
    pub fn of(v: &ValidatedQuery) -> Canonical {
        let mut query = v.clone();
        query.breakdowns.sort();
        let positions = v.breakdowns.iter().map(|b| query.breakdowns.iter().position(|x| x == b).unwrap_or(0)).collect();
        // A filter that lets every value through filters nothing.
        let recipe = v.recipe.clone();
        query.filters.retain(|b, values| {
            let vocabulary = b.allowed_values(&recipe.age_bands);
            !vocabulary.iter().all(|x| values.contains(x))
        });
        query.period = canonical_period(&v.period);
        Canonical { query, positions }
    }

    /// The cells with their labels in the order asked.
    pub fn restore(&self, cells: Vec<ReleasedCell>) -> Vec<ReleasedCell> {
        cells
            .into_iter()
            .map(|mut c| {
                c.labels = self.positions.iter().map(|&p| c.labels.get(p).cloned().unwrap_or_default()).collect();
                c
            })
            .collect()
    }

    /// The breakdowns in the order asked.
    pub fn asked_breakdowns(&self) -> Vec<norrsken_model::breakdown::Breakdown> {
        self.positions.iter().map(|&p| self.query.breakdowns[p]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    fn v(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    #[test]
    fn spellings_of_one_table_have_one_canonical_form() {
        let sexes: Vec<String> = norrsken_model::cdm::SEXES.iter().map(|s| format!("\"{s}\"")).collect();
        let a = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","age_band"],"period":"2023..2024"}"#);
        let b = v(&format!(
            r#"{{"indicator":"stroke_reperfusion","breakdowns":["age_band","sex"],"filters":{{"sex":[{}]}},"period":"2023Q1..2024Q4"}}"#,
            sexes.join(",")
        ));
        let (ca, cb) = (Canonical::of(&a), Canonical::of(&b));
        assert_eq!(ca.query.normalized(), cb.query.normalized());
        assert_eq!(cb.asked_breakdowns(), b.breakdowns);
        let cell = ReleasedCell {
            region: "25".into(),
            labels: vec!["female".into(), "45-64".into()],
            category: None,
            numerator: None,
            denominator: None,
            value_sum: None,
            value_sd: None,
            status: norrsken_model::answer::CellStatus::Suppressed,
            reasons: vec![],
            suggestion: None,
            standardised: None,
            released_without: Vec::new(),
        };
        // Canonical order is sex, age_band (the order of the vocabulary): the first
        // question asked it so, the second the other way round.
        let back = ca.restore(vec![cell.clone()]);
        assert_eq!(back[0].labels, vec!["female".to_string(), "45-64".to_string()]);
        assert_eq!(cb.restore(vec![cell])[0].labels, vec!["45-64".to_string(), "female".to_string()]);
    }

    #[test]
    fn periods_take_the_coarsest_exact_grain() {
        let p = |s: &str| canonical_period(&Period::parse(s).unwrap());
        assert_eq!(p("2023-01..2024-12").grain, TimeGrain::Year);
        assert_eq!(p("2023-04..2023-09").grain, TimeGrain::Quarter);
        assert_eq!(p("2023-02..2023-03").grain, TimeGrain::Month);
        assert_eq!(p("2023Q1..2023Q4"), Period::parse("2023").unwrap());
    }
}
