//! A cohort recipe: persons who join an intervention (an index event), their care use in
//! a window before and a window after, and optionally a comparison group of persons who met
//! the same referral criterion and did not join. The recipe is declarative (a `[cohort]`
//! table, no SQL); [`Cohort::unit_sql`] compiles it to the unit query every other recipe
//! writes by hand, so the agent's engine, disclosure control and audit treat it like any
//! mean: a unit is one person and one measure (before, after, change), its value the
//! person's outcome in that window, and only perturbed n, sums and spreads leave the region.
//! Designs and limits: docs/analysis.md ("Evaluations across regions").

use super::*;

pub use crate::cdm::{ARMS, MEASURES};

/// What is measured per person in each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Care contacts of every kind that start in the window.
    Contacts,
    /// Inpatient stays (vårdtillfällen) admitted in the window.
    InpatientStays,
    /// Days in hospital (vårdtid in days, discharge minus admission) of stays admitted in
    /// the window.
    InpatientDays,
    /// KPP cost in SEK of the contacts that start in the window.
    Cost,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Contacts => "contacts",
            Outcome::InpatientStays => "inpatient_stays",
            Outcome::InpatientDays => "inpatient_days",
            Outcome::Cost => "cost",
        }
    }

    /// The contribution of one contact `c` to the outcome, in SQL.
    fn contribution(self) -> &'static str {
        match self {
            Outcome::Contacts => "1.0",
            Outcome::InpatientStays => "CASE WHEN c.care_type = 'inpatient' THEN 1.0 ELSE 0.0 END",
            Outcome::InpatientDays => {
                "CASE WHEN c.care_type = 'inpatient' THEN (date_part('epoch', c.end_time) - date_part('epoch', c.start_time)) / 86400.0 ELSE 0.0 END"
            }
            Outcome::Cost => "COALESCE(c.cost_sek, 0.0)",
        }
    }
}

/// Who may form the comparison group: residents who met the intervention's referral
/// criterion (at least `acute_stays` acute inpatient stays admitted within `within_days`)
/// and never had the index event. Their index date is the discharge from the stay that
/// first met the criterion (on or after `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    pub acute_stays: u32,
    pub within_days: u32,
    /// Only discharges on or after this day (the intervention's start, `YYYY-MM-DD`) meet
    /// the criterion: the comparison group is followed from the first time they met it
    /// while the intervention was offered.
    #[serde(default)]
    pub since: Option<String>,
}

/// A cohort recipe's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    /// Procedure codes (procedures.code) that mark the index event; the person's first one
    /// is the index date.
    pub index_procedures: Vec<String>,
    /// Length of the window before the index date, in days.
    pub before_days: u32,
    /// Length of the window after the index date (after the washout), in days.
    pub after_days: u32,
    /// Days after the index date left out of the after window.
    #[serde(default)]
    pub washout_days: u32,
    pub outcome: Outcome,
    /// The comparison group, when the recipe has one (for a difference-in-differences).
    #[serde(default)]
    pub comparison: Option<Eligibility>,
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

impl Cohort {
    /// Checks the definition; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.index_procedures.is_empty() {
            return Err(("cohort.index_procedures", "name at least one procedure code".into()));
        }
        if let Some(c) = self.index_procedures.iter().find(|c| !is_code(c)) {
            return Err(("cohort.index_procedures", format!("'{c}' is not a code (letters, digits and '.', at most 16)")));
        }
        for (field, days) in [("cohort.before_days", self.before_days), ("cohort.after_days", self.after_days)] {
            if !(1..=3650).contains(&days) {
                return Err((field, format!("{days} must be 1 to 3650 days")));
            }
        }
        if self.washout_days > 365 {
            return Err(("cohort.washout_days", format!("{} must be at most 365 days", self.washout_days)));
        }
        if let Some(e) = &self.comparison {
            if !(1..=20).contains(&e.acute_stays) {
                return Err(("cohort.comparison.acute_stays", format!("{} must be 1 to 20", e.acute_stays)));
            }
            if !(1..=3650).contains(&e.within_days) {
                return Err(("cohort.comparison.within_days", format!("{} must be 1 to 3650 days", e.within_days)));
            }
            if let Some(d) = &e.since {
                // Checked here, so the date reaches the SQL only in its canonical form.
                let ok = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok_and(|x| x.format("%Y-%m-%d").to_string() == *d);
                if !ok {
                    return Err(("cohort.comparison.since", format!("'{d}' is not a date written YYYY-MM-DD")));
                }
            }
        }
        Ok(())
    }

    /// Days from the index date to the end of the after window: the recipe's follow-up.
    pub fn follow_up_days(&self) -> u32 {
        self.washout_days + self.after_days
    }

    /// The unit query: `unit_id`, `person_id`, `index_time`, `arm`, `measure`, `value`; three
    /// rows per person in the cohort (one per measure), over the agent's residents. The
    /// three rows share the person's unit id, so a cell of one measure has the same count
    /// and the same record keys (so the same perturbation) as the others: an answer shows
    /// one count of the same persons, not three noisy ones to average.
    pub fn unit_sql(&self) -> String {
        let codes: Vec<String> = self.index_procedures.iter().map(|c| format!("'{c}'")).collect();
        let (b, w, a) = (self.before_days, self.washout_days, self.washout_days + self.after_days);
        let value = self.outcome.contribution();
        let comparison = match &self.comparison {
            Some(e) => format!(
                ",\nstays AS (\n    SELECT c.person_id, c.start_time, c.end_time FROM contacts c\n    WHERE c.care_type = 'inpatient' AND c.acute\n),\n\
                 qualifying AS (\n    SELECT s.person_id, s.start_time, s.end_time FROM stays s\n    \
                 JOIN stays e ON e.person_id = s.person_id AND e.start_time < s.start_time AND e.start_time >= s.start_time - INTERVAL '{} days'\n    \
                 {since}GROUP BY s.person_id, s.start_time, s.end_time\n    HAVING COUNT(*) >= {}\n),\n\
                 eligible AS (\n    SELECT q.person_id, MIN(q.end_time) AS index_time FROM qualifying q GROUP BY q.person_id\n)",
                e.within_days,
                e.acute_stays - 1,
                since = e.since.as_deref().map(|d| format!("WHERE s.end_time >= TIMESTAMP '{d} 00:00:00'\n    ")).unwrap_or_default(),
            ),
            None => String::new(),
        };
        let comparison_arm = if self.comparison.is_some() {
            "\n    UNION ALL\n    SELECT e.person_id, e.index_time, 'comparison' AS arm FROM eligible e\n    \
             LEFT JOIN exposed x ON x.person_id = e.person_id WHERE x.person_id IS NULL"
        } else {
            ""
        };
        format!(
            "WITH exposed AS (\n    SELECT pr.person_id, MIN(pr.performed_at) AS index_time FROM procedures pr\n    \
             WHERE pr.code IN ({codes}) GROUP BY pr.person_id\n){comparison},\n\
             cohort AS (\n    SELECT k.person_id, k.index_time, k.arm FROM (\n    \
             SELECT x.person_id, x.index_time, 'exposed' AS arm FROM exposed x{comparison_arm}\n    ) k\n    \
             JOIN residents r ON r.person_id = k.person_id\n),\n\
             windows AS (\n    SELECT k.person_id, k.index_time, k.arm,\n        \
             SUM(CASE WHEN c.start_time < k.index_time THEN {value} ELSE 0.0 END) AS before_value,\n        \
             SUM(CASE WHEN c.start_time >= k.index_time + INTERVAL '{w} days' THEN {value} ELSE 0.0 END) AS after_value\n    \
             FROM cohort k\n    LEFT JOIN contacts c ON c.person_id = k.person_id\n        \
             AND c.start_time >= k.index_time - INTERVAL '{b} days' AND c.start_time < k.index_time + INTERVAL '{a} days'\n        \
             AND (c.start_time < k.index_time OR c.start_time >= k.index_time + INTERVAL '{w} days')\n    \
             GROUP BY k.person_id, k.index_time, k.arm\n)\n\
             SELECT person_id AS unit_id, person_id, index_time, arm, 'before' AS measure, COALESCE(before_value, 0.0) AS value FROM windows\n\
             UNION ALL\n\
             SELECT person_id AS unit_id, person_id, index_time, arm, 'after' AS measure, COALESCE(after_value, 0.0) AS value FROM windows\n\
             UNION ALL\n\
             SELECT person_id AS unit_id, person_id, index_time, arm, 'change' AS measure, COALESCE(after_value, 0.0) - COALESCE(before_value, 0.0) AS value FROM windows",
            codes = codes.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cohort() -> Cohort {
        Cohort {
            index_procedures: vec!["XMT01".into()],
            before_days: 90,
            after_days: 90,
            washout_days: 0,
            outcome: Outcome::InpatientStays,
            comparison: Some(Eligibility { acute_stays: 2, within_days: 90, since: Some("2023-01-01".into()) }),
        }
    }

    #[test]
    fn the_unit_query_has_both_arms_three_measures_and_the_windows() {
        let sql = cohort().unit_sql();
        assert!(sql.contains("WHERE pr.code IN ('XMT01')"), "{sql}");
        assert!(sql.contains("'comparison' AS arm") && sql.contains("'exposed' AS arm"), "{sql}");
        assert!(sql.contains("HAVING COUNT(*) >= 1"), "two stays: the stay and one before it\n{sql}");
        assert!(sql.contains("WHERE s.end_time >= TIMESTAMP '2023-01-01 00:00:00'"), "{sql}");
        assert!(sql.contains("INTERVAL '90 days'"), "{sql}");
        for m in MEASURES {
            assert!(sql.contains(&format!("'{m}' AS measure")), "{m}: {sql}");
        }
        let mut without = cohort();
        without.comparison = None;
        let sql = without.unit_sql();
        assert!(!sql.contains("comparison") && !sql.contains("eligible"), "{sql}");
    }

    #[test]
    fn bad_definitions_name_their_field() {
        let mut c = cohort();
        c.index_procedures = vec!["X'; DROP".into()];
        assert_eq!(c.validate().unwrap_err().0, "cohort.index_procedures");
        let mut c = cohort();
        c.after_days = 0;
        assert_eq!(c.validate().unwrap_err().0, "cohort.after_days");
        let mut c = cohort();
        c.comparison = Some(Eligibility { acute_stays: 0, within_days: 90, since: None });
        assert_eq!(c.validate().unwrap_err().0, "cohort.comparison.acute_stays");
        let mut c = cohort();
        c.comparison = Some(Eligibility { acute_stays: 2, within_days: 90, since: Some("2023-1-1' OR 1=1".into()) });
        assert_eq!(c.validate().unwrap_err().0, "cohort.comparison.since");
        assert!(cohort().validate().is_ok());
        assert_eq!(Cohort { washout_days: 14, ..cohort() }.follow_up_days(), 104);
    }
}
