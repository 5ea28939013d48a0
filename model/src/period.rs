//! Query periods: inclusive ranges of years, quarters or months.
//!
//! Written `2023..2025` (three years), `2023Q1..2024Q2`, `2023-01..2023-06`, or a single
//! unit such as `2024`. Both bounds must use the same grain.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::breakdown::TimeGrain;

/// A month counted from year 0: `year * 12 + (month - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthIndex(pub i32);

impl MonthIndex {
    pub fn new(year: i32, month: u32) -> MonthIndex {
        MonthIndex(year * 12 + month as i32 - 1)
    }
    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }
    /// 1..=12
    pub fn month(self) -> u32 {
        (self.0.rem_euclid(12) + 1) as u32
    }
    pub fn quarter(self) -> u32 {
        (self.month() - 1) / 3 + 1
    }
    /// The month's time labels at each level: `2024`, `2024Q2`, `2024-05`.
    pub fn labels(self) -> [String; 3] {
        [format!("{}", self.year()), format!("{}Q{}", self.year(), self.quarter()), format!("{}-{:02}", self.year(), self.month())]
    }
}

/// An inclusive range of whole months, remembered with the grain it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub first: MonthIndex,
    pub last: MonthIndex,
    pub grain: TimeGrain,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid period {}: {reason}", crate::text::quote(input))]
pub struct PeriodError {
    pub input: String,
    pub reason: String,
}

const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 2100;

fn parse_bound(s: &str) -> Result<(TimeGrain, MonthIndex, MonthIndex), String> {
    let s = s.trim();
    let year = |y: &str| -> Result<i32, String> {
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} is not a year, quarter (2023Q1) or month (2023-01)", crate::text::quote(s)));
        }
        let y: i32 = y.parse().map_err(|_| format!("{} is not a year", crate::text::quote(s)))?;
        if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
            return Err(format!("year {y} is outside {MIN_YEAR}..{MAX_YEAR}"));
        }
        Ok(y)
    };
    if let Some((y, q)) = s.split_once(['Q', 'q']) {
        let y = year(y)?;
        let q: u32 = match q {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            "4" => 4,
            _ => return Err(format!("{}: quarter must be 1 to 4", crate::text::quote(s))),
        };
        let first = MonthIndex::new(y, (q - 1) * 3 + 1);
        Ok((TimeGrain::Quarter, first, MonthIndex(first.0 + 2)))
    } else if let Some((y, m)) = s.split_once('-') {
        let y = year(y)?;
        let m: u32 = match m.parse() {
            Ok(n) if (1..=12).contains(&n) && m.len() == 2 => n,
            _ => return Err(format!("{}: month must be 01 to 12", crate::text::quote(s))),
        };
        let mi = MonthIndex::new(y, m);
        Ok((TimeGrain::Month, mi, mi))
    } else {
        let y = year(s)?;
        Ok((TimeGrain::Year, MonthIndex::new(y, 1), MonthIndex::new(y, 12)))
    }
}

impl Period {
    pub fn years(first: i32, last: i32) -> Period {
        Period { first: MonthIndex::new(first, 1), last: MonthIndex::new(last, 12), grain: TimeGrain::Year }
    }

    pub fn parse(input: &str) -> Result<Period, PeriodError> {
        let err = |reason: String| PeriodError { input: input.to_string(), reason };
        let (a, b) = match input.split_once("..") {
            Some((a, b)) => (a, b),
            None => (input, input),
        };
        let (ga, first, _) = parse_bound(a).map_err(err)?;
        let (gb, _, last) = parse_bound(b).map_err(err)?;
        if ga != gb {
            return Err(err(format!("both ends must use the same grain, got {} and {}", ga.name(), gb.name())));
        }
        if last < first {
            return Err(err("the end lies before the start".to_string()));
        }
        Ok(Period { first, last, grain: ga })
    }

    /// The period's first day.
    pub fn first_day(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.first.year(), self.first.month(), 1).unwrap_or(chrono::NaiveDate::MIN)
    }
    /// The period's last day.
    pub fn last_day(&self) -> chrono::NaiveDate {
        let next = MonthIndex(self.last.0 + 1);
        chrono::NaiveDate::from_ymd_opt(next.year(), next.month(), 1).and_then(|d| d.pred_opt()).unwrap_or(chrono::NaiveDate::MAX)
    }
    /// The share of the period's days after `through` (0 when it ends by then, 1 when it
    /// starts after it).
    pub fn share_after(&self, through: chrono::NaiveDate) -> f64 {
        let (first, last) = (self.first_day(), self.last_day());
        let days = (last - first).num_days() + 1;
        let after = (last - through).num_days().clamp(0, days);
        after as f64 / days as f64
    }

    pub fn first_year(&self) -> i32 {
        self.first.year()
    }
    pub fn last_year(&self) -> i32 {
        self.last.year()
    }
    pub fn months(&self) -> i32 {
        self.last.0 - self.first.0 + 1
    }
    /// True when the period starts in January and ends in December.
    pub fn is_whole_years(&self) -> bool {
        self.first.month() == 1 && self.last.month() == 12
    }
    /// First day as (year, month); the period runs until the end of `last`.
    pub fn start(&self) -> (i32, u32) {
        (self.first.year(), self.first.month())
    }
    /// First day after the period as (year, month).
    pub fn end_exclusive(&self) -> (i32, u32) {
        let next = MonthIndex(self.last.0 + 1);
        (next.year(), next.month())
    }
    /// Whether the period is a building block of the data: whole years, one quarter or one
    /// month. Other periods (eleven months, three quarters) are not asked: two periods that
    /// differ by a month or two would differ by a few persons.
    pub fn is_building_block(&self) -> bool {
        self.is_whole_years() || self.months() == 1 || (self.months() == 3 && self.first.month() % 3 == 1)
    }
    pub fn contains_years(&self, first: i32, last: i32) -> bool {
        self.first_year() >= first && self.last_year() <= last
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |m: MonthIndex| match self.grain {
            TimeGrain::Year => format!("{}", m.year()),
            TimeGrain::Quarter => format!("{}Q{}", m.year(), m.quarter()),
            TimeGrain::Month => format!("{}-{:02}", m.year(), m.month()),
        };
        let (a, b) = (show(self.first), show(self.last));
        if a == b {
            f.write_str(&a)
        } else {
            write!(f, "{a}..{b}")
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Period, D::Error> {
        let s = String::deserialize(d)?;
        Period::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_grain() {
        let p = Period::parse("2023..2025").unwrap();
        assert_eq!((p.first_year(), p.last_year(), p.months()), (2023, 2025, 36));
        assert_eq!(p.to_string(), "2023..2025");
        assert_eq!(p.end_exclusive(), (2026, 1));
        let q = Period::parse("2023Q2..2024Q1").unwrap();
        assert_eq!((q.start(), q.end_exclusive(), q.months()), ((2023, 4), (2024, 4), 12));
        assert_eq!(q.to_string(), "2023Q2..2024Q1");
        let m = Period::parse("2024-02").unwrap();
        assert_eq!((m.start(), m.months(), m.grain), ((2024, 2), 1, TimeGrain::Month));
        assert_eq!(Period::parse("2024").unwrap().months(), 12);
    }

    #[test]
    fn rejects_bad_periods_with_reasons() {
        for (input, fragment) in [
            ("2025..2023", "before the start"),
            ("2023..2024Q1", "same grain"),
            ("2023Q5", "quarter must be 1 to 4"),
            ("2023-13", "month must be 01 to 12"),
            ("23..25", "not a year"),
            ("1066", "outside"),
            ("", "not a year"),
            ("2023;drop", "not a year"),
        ] {
            let e = Period::parse(input).unwrap_err();
            assert!(e.to_string().contains(fragment), "{input}: {e}");
        }
    }
}
