//! Renders a coordinator comparison for people: one line per region and cell, the pooled
//! rows, regions that did not answer, and where the numbers came from.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, Schema};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RegionReport {
    pub name: String,
    pub status: String,
    pub message: String,
    pub data_version: Option<String>,
    pub policy_version: Option<String>,
    pub cells: usize,
    pub cells_withheld: usize,
    pub cells_perturbed: usize,
    pub duration_ms: u64,
}

pub fn regions(schema: &Schema) -> Vec<RegionReport> {
    schema.metadata().get("norrsken.regions").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

fn fmt_value(kind: &str, v: f64) -> String {
    match kind {
        "proportion" => format!("{:.1} %", v * 100.0),
        "rate" => format!("{v:.2}"),
        "mean" => format!("{v:.1}"),
        "count" => format!("{v:.0}"),
        _ => format!("{v:.0}"),
    }
}

/// A plain-text table of a comparison.
pub fn comparison_table(schema: &Schema, batches: &[RecordBatch]) -> String {
    let md = schema.metadata();
    let get = |k: &str| md.get(&format!("norrsken.{k}")).cloned().unwrap_or_default();
    let kind = get("kind");
    let fixed = [
        "row_kind", "region", "region_name", "category", "numerator", "denominator", "value_sum", "value", "ci_lower", "ci_upper",
        "status", "reason", "suggestion", "partial",
    ];
    let labels: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).filter(|n| !fixed.contains(&n.as_str())).collect();
    let has_category = schema.field_with_name("category").is_ok();

    let mut header: Vec<String> = vec!["region".into()];
    header.extend(labels.iter().cloned());
    if has_category {
        header.push("category".into());
    }
    let (num_name, den_name) = match kind.as_str() {
        "proportion" => ("numerator", "denominator"),
        "rate" => ("events", "inhabitant-years"),
        "count" => ("count", ""),
        _ => ("", "n"),
    };
    if !num_name.is_empty() {
        header.push(num_name.into());
    }
    if !den_name.is_empty() {
        header.push(den_name.into());
    }
    header.extend(["value".to_string(), "95% CI".to_string(), "status".to_string()]);

    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let s = |n: &str| b.column_by_name(n).map(|c| c.as_string::<i32>().clone());
        let i = |n: &str| b.column_by_name(n).map(|c| c.as_primitive::<Int64Type>().clone());
        let f = |n: &str| b.column_by_name(n).map(|c| c.as_primitive::<Float64Type>().clone());
        let (kinds, names, status, reason) = (s("row_kind"), s("region_name"), s("status"), s("reason"));
        let label_cols: Vec<_> = labels.iter().map(|l| s(l)).collect();
        let category = s("category");
        let (num, den) = (i("numerator"), i("denominator"));
        let (value, lo, hi) = (f("value"), f("ci_lower"), f("ci_upper"));
        let partial = b.column_by_name("partial").map(|c| c.as_boolean().clone());
        for r in 0..b.num_rows() {
            let text = |a: &Option<arrow::array::StringArray>| a.as_ref().filter(|a| !a.is_null(r)).map(|a| a.value(r).to_string()).unwrap_or_default();
            let int = |a: &Option<arrow::array::Int64Array>| a.as_ref().filter(|a| !a.is_null(r)).map(|a| a.value(r).to_string()).unwrap_or_else(|| "·".into());
            let flt = |a: &Option<arrow::array::Float64Array>| a.as_ref().filter(|a| !a.is_null(r)).map(|a| a.value(r));
            let row_kind = text(&kinds);
            let mut line = vec![if row_kind == "pooled" { format!("{} (pooled)", text(&names)) } else { text(&names) }];
            for c in &label_cols {
                line.push(text(c));
            }
            if has_category {
                line.push(text(&category));
            }
            if !num_name.is_empty() {
                line.push(int(&num));
            }
            if !den_name.is_empty() {
                line.push(int(&den));
            }
            line.push(flt(&value).map(|v| fmt_value(&kind, v)).unwrap_or_else(|| "·".into()));
            line.push(match (flt(&lo), flt(&hi)) {
                (Some(a), Some(b)) => format!("{} – {}", fmt_value(&kind, a), fmt_value(&kind, b)),
                _ => String::new(),
            });
            let mut st = text(&status);
            let why: Vec<String> = text(&reason).split(',').filter(|r| !r.is_empty() && *r != st).map(str::to_string).collect();
            if !why.is_empty() {
                st = format!("{st} ({})", why.join(", "));
            }
            if partial.as_ref().is_some_and(|p| p.value(r)) && row_kind == "pooled" {
                st.push_str(" PARTIAL");
            }
            line.push(st);
            rows.push(line);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain(std::iter::once(header[c].chars().count())).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}), {} perspective, period {}", get("title"), get("recipe"), get("perspective"), get("period"));
    let _ = writeln!(out, "value: {}; CI: {}", get("value"), get("ci"));
    let pad = |s: &str, w: usize, right: bool| {
        let n = s.chars().count();
        if right {
            format!("{}{s}", " ".repeat(w.saturating_sub(n)))
        } else {
            format!("{s}{}", " ".repeat(w.saturating_sub(n)))
        }
    };
    let numeric_from = 1 + labels.len() + usize::from(has_category);
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i], i >= numeric_from && i < cells.len() - 1))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(&header));
    let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r).trim_end());
    }
    let reports = regions(schema);
    let _ = writeln!(out);
    for r in &reports {
        let detail = match r.status.as_str() {
            "ok" => format!(
                "{} cell{} ({} withheld, {} perturbed), data {}, policy {}, {} ms",
                r.cells,
                if r.cells == 1 { "" } else { "s" },
                r.cells_withheld,
                r.cells_perturbed,
                r.data_version.as_deref().unwrap_or("?"),
                r.policy_version.as_deref().unwrap_or("?"),
                r.duration_ms
            ),
            _ => r.message.clone(),
        };
        let _ = writeln!(out, "  {:<20} {:<11} {}", r.name, r.status, detail);
    }
    if get("partial") == "true" {
        let _ = writeln!(out, "PARTIAL RESULT: not every region answered; pooled rows lack their part.");
    }
    let _ = writeln!(out, "query {} · catalog {}", get("query_id"), &get("catalog_hash").chars().take(16).collect::<String>());
    out
}
