//! Published comparison values: Riket, regions outside the federation, national target
//! levels, imported from a file the analyst has (Socialstyrelsen's, Vården i siffror's,
//! a national quality register's). They are shown as their own rows, marked by their
//! source and date, and never mixed into pooled values: they were not computed by the
//! regions' agents and cannot be checked against them.
//!
//! The file is a CSV (comma or semicolon separated, UTF-8, first line the column names):
//!
//! | column | required | what |
//! |---|---|---|
//! | `indicator` | yes | the recipe's id, e.g. `stroke_reperfusion` |
//! | `period` | yes | as Norrsken writes it: `2024`, `2021..2025` |
//! | `group` | yes | who the value is for: `Riket`, `Region Skåne`, `Målnivå (NPO)` |
//! | `value` | yes | on the indicator's scale: a share as `0.653`, `0,653` or `65,3 %`; a rate per its base |
//! | `lower`, `upper` | no | the 95 % interval, same scale |
//! | `source` | yes | who publishes it, e.g. `Socialstyrelsen, Vården i siffror` |
//! | `date` | no | when it was published or read, `YYYY-MM-DD` |

use serde::{Deserialize, Serialize};

use super::ReportError;

/// One published value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalValue {
    pub indicator: String,
    pub period: String,
    pub group: String,
    pub value: f64,
    #[serde(default)]
    pub lower: Option<f64>,
    #[serde(default)]
    pub upper: Option<f64>,
    pub source: String,
    #[serde(default)]
    pub date: Option<String>,
}

/// The most rows one file may hold.
pub const MAX_NATIONAL_ROWS: usize = 5000;

/// A number as Swedish and English files write it: `0.653`, `0,653`, `65,3 %`, `1 234,5`.
fn number(text: &str) -> Option<f64> {
    let t: String = text.trim().chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
    let (t, percent) = match t.strip_suffix('%') {
        Some(x) => (x.to_string(), true),
        None => (t, false),
    };
    let v: f64 = t.replace('−', "-").replace(',', ".").parse().ok().filter(|v: &f64| v.is_finite())?;
    Some(if percent { v / 100.0 } else { v })
}

/// Reads a comparator file, naming the file, line and column of anything wrong.
pub fn from_csv(name: &str, text: &str) -> Result<Vec<NationalValue>, ReportError> {
    let bad = |line: usize, reason: String| ReportError::National(format!("{name}, line {line}: {reason}"));
    let first = text.lines().next().unwrap_or("");
    let delimiter = if first.matches(';').count() > first.matches(',').count() { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(false).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = reader.headers().map_err(|e| bad(1, e.to_string()))?.iter().map(|h| h.trim().to_lowercase()).collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let required = ["indicator", "period", "group", "value", "source"];
    if let Some(missing) = required.iter().find(|c| col(c).is_none()) {
        return Err(bad(1, format!("no column '{missing}'; the columns are indicator, period, group, value, lower, upper, source, date")));
    }
    let known = ["indicator", "period", "group", "value", "lower", "upper", "source", "date"];
    if let Some(extra) = headers.iter().find(|h| !known.contains(&h.as_str())) {
        return Err(bad(1, format!("unknown column '{extra}'; the columns are {}", known.join(", "))));
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| bad(line, e.to_string()))?;
        let get = |c: &str| col(c).and_then(|i| record.get(i)).map(str::trim).unwrap_or("");
        let text_of = |c: &str| -> Result<String, ReportError> {
            let v = get(c);
            if v.is_empty() {
                Err(bad(line, format!("'{c}' is empty")))
            } else {
                Ok(v.to_string())
            }
        };
        let num = |c: &str| -> Result<Option<f64>, ReportError> {
            let v = get(c);
            if v.is_empty() {
                return Ok(None);
            }
            number(v).map(Some).ok_or_else(|| bad(line, format!("'{c}' = '{v}' is not a number")))
        };
        let period = text_of("period")?;
        norrsken_model::period::Period::parse(&period).map_err(|e| bad(line, format!("'period' = '{period}': {e}")))?;
        let value = num("value")?.ok_or_else(|| bad(line, "'value' is empty".into()))?;
        let (lower, upper) = (num("lower")?, num("upper")?);
        if let (Some(l), Some(u)) = (lower, upper) {
            if !(l <= value && value <= u) {
                return Err(bad(line, format!("the interval {l}–{u} does not hold the value {value}")));
            }
        }
        let date = Some(get("date").to_string()).filter(|d| !d.is_empty());
        if let Some(d) = &date {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| bad(line, format!("'date' = '{d}' is not YYYY-MM-DD")))?;
        }
        out.push(NationalValue { indicator: text_of("indicator")?, period, group: text_of("group")?, value, lower, upper, source: text_of("source")?, date });
        if out.len() > MAX_NATIONAL_ROWS {
            return Err(bad(line, format!("more than {MAX_NATIONAL_ROWS} rows")));
        }
    }
    Ok(out)
}

/// Checks values that arrive already read (in a report request).
pub fn check(values: &[NationalValue]) -> Result<(), ReportError> {
    if values.len() > MAX_NATIONAL_ROWS {
        return Err(ReportError::National(format!("{} values; at most {MAX_NATIONAL_ROWS}", values.len())));
    }
    for v in values {
        if !v.value.is_finite() || v.source.trim().is_empty() || v.group.trim().is_empty() {
            return Err(ReportError::National(format!("{} {} {}: a value, a group and a source are needed", v.indicator, v.period, v.group)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comparator_file_is_read_in_either_format_and_errors_name_line_and_column() {
        let sv = "indicator;period;group;value;lower;upper;source;date\nstroke_reperfusion;2024;Riket;65,3 %;63,0 %;67,5 %;Socialstyrelsen, Vården i siffror;2026-05-01\n";
        let v = from_csv("riket.csv", sv).unwrap();
        assert_eq!(v.len(), 1);
        assert!((v[0].value - 0.653).abs() < 1e-12 && (v[0].lower.unwrap() - 0.63).abs() < 1e-12);
        assert_eq!(v[0].source, "Socialstyrelsen, Vården i siffror");
        let en = "indicator,period,group,value,source\nhf_hospitalisation_rate,2021..2025,Region Skåne,2.31,Socialstyrelsen\n";
        assert_eq!(from_csv("f.csv", en).unwrap()[0].lower, None);
        let e = from_csv("f.csv", "indicator,period,group,value,source\nx,2024,Riket,mycket,S\n").unwrap_err().to_string();
        assert!(e.contains("f.csv, line 2") && e.contains("'value' = 'mycket'"), "{e}");
        let e = from_csv("f.csv", "indicator,period,group,value\nx,2024,Riket,1\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("source"), "{e}");
        let e = from_csv("f.csv", "indicator,period,group,value,source\nx,tjugo,Riket,1,S\n").unwrap_err().to_string();
        assert!(e.contains("'period' = 'tjugo'"), "{e}");
        let e = from_csv("f.csv", "indicator,period,group,value,lower,upper,source\nx,2024,Riket,0.5,0.6,0.7,S\n").unwrap_err().to_string();
        assert!(e.contains("does not hold"), "{e}");
        let e = from_csv("f.csv", "indicator,period,group,value,source,colour\nx,2024,Riket,0.5,S,red\n").unwrap_err().to_string();
        assert!(e.contains("unknown column 'colour'"), "{e}");
    }
}
