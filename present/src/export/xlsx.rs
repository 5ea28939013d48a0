//! Spreadsheets an analyst can hand on (`norrsken query --format xlsx`, the web app's
//! downloads, the regional report).
//!
//! A comparison: sheet `Comparison`, one row per region and cell with number formats
//! (shares as percentages, intervals beside the value), withheld cells shown with their
//! reason; sheet `Provenance`: the question, each region's data and policy versions, the
//! recipe and catalog hashes, and whether the answer is partial. An analysis: sheet
//! `Analysis` with its columns as they are, and `Provenance` with its metadata. A report:
//! `Summary`, `Comparison`, `Trend`, the analyst's own table and `Provenance`.

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, RegionReport, RowKind};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::report::Report;

/// The spreadsheet number format of a kind's values, from the vocabulary's one rule
/// (`0.0%`, `#,##0.00`, `#,##0`): Excel shows it in the reader's own locale.
pub fn excel_format(kind: Kind) -> String {
    let f = norrsken_model::vocabulary::number_format(kind);
    let decimals = if f.decimals > 0 { format!(".{}", "0".repeat(usize::from(f.decimals))) } else { String::new() };
    if f.percent {
        format!("0{decimals}%")
    } else {
        format!("#,##0{decimals}")
    }
}

/// A comparison as an xlsx file.
pub fn comparison(c: &Comparison) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let number = Format::new().set_num_format(excel_format(c.meta.kind));
    let integer = Format::new().set_num_format("#,##0");
    let sheet = book.add_worksheet();
    sheet.set_name("Comparison")?;
    let mut header: Vec<String> = vec!["row".into(), "region".into()];
    header.extend(c.breakdowns.iter().map(|b| b.name().to_string()));
    if c.distribution {
        header.push("category".into());
    }
    header.extend(["numerator", "denominator", "value", "95% CI lower", "95% CI upper"].map(String::from));
    let standardised = c.meta.standard.is_some();
    if standardised {
        header.extend(["age-standardised", "age-std CI lower", "age-std CI upper"].map(String::from));
    }
    header.extend(["status", "reason", "suggestion", "partial"].map(String::from));
    for (i, h) in header.iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, h, &bold)?;
    }
    for (r, row) in c.rows.iter().enumerate() {
        let r = r as u32 + 1;
        let mut col: u16 = 0;
        let text = |sheet: &mut Worksheet, col: &mut u16, s: &str| -> Result<(), XlsxError> {
            sheet.write_string(r, *col, s)?;
            *col += 1;
            Ok(())
        };
        text(sheet, &mut col, row.kind.name())?;
        text(sheet, &mut col, &if row.kind == RowKind::Pooled { format!("{} (pooled)", row.region_name) } else { row.region_name.clone() })?;
        for l in &row.labels {
            text(sheet, &mut col, l.as_deref().unwrap_or(""))?;
        }
        if c.distribution {
            text(sheet, &mut col, row.category.as_deref().unwrap_or(""))?;
        }
        for v in [row.numerator, row.denominator] {
            if let Some(v) = v {
                sheet.write_number_with_format(r, col, v as f64, &integer)?;
            }
            col += 1;
        }
        let mut values = vec![row.estimate.map(|e| e.value), row.estimate.map(|e| e.lower), row.estimate.map(|e| e.upper)];
        if standardised {
            values.extend([row.standardised.map(|e| e.value), row.standardised.map(|e| e.lower), row.standardised.map(|e| e.upper)]);
        }
        for v in values {
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    sheet.write_number_with_format(r, col, v, &number)?;
                }
                // A withheld cell: its reason in place of the value.
                None if row.status == "suppressed" => {
                    sheet.write_string(r, col, "withheld")?;
                }
                None => {}
            }
            col += 1;
        }
        text(sheet, &mut col, &row.status)?;
        // Reasons in words (Swedish first), from the shared vocabulary.
        text(sheet, &mut col, &norrsken_model::vocabulary::reasons_text(&row.reasons, norrsken_model::vocabulary::Lang::Sv))?;
        text(sheet, &mut col, row.suggestion.as_deref().unwrap_or(""))?;
        sheet.write_boolean(r, col, row.partial)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();

    let m = &c.meta;
    let info = book.add_worksheet();
    info.set_name("Provenance")?;
    let pairs: Vec<(&str, String)> = vec![
        ("indicator", format!("{} ({})", m.title, m.recipe)),
        ("value", m.value.clone()),
        ("interval", m.ci.clone()),
        ("counted", m.semantics.clone()),
        ("perspective", m.perspective.clone()),
        ("period", m.period.clone()),
        ("recipe hash", m.recipe_hash.clone()),
        ("catalog hash", m.catalog_hash.clone()),
        ("query id", m.query_id.clone()),
        ("standard population", m.standard.clone().unwrap_or_default()),
        ("partial", if m.partial { "PARTIAL: not every region answered; pooled rows lack their part".into() } else { "no: every region answered".into() }),
        ("dry run", m.dry_run.to_string()),
    ];
    for (i, (k, v)) in pairs.iter().enumerate() {
        info.write_string_with_format(i as u32, 0, *k, &bold)?;
        info.write_string(i as u32, 1, v)?;
    }
    sources(info, pairs.len() as u32 + 1, &c.regions, &bold)?;
    info.autofit();
    book.save_to_buffer()
}

/// The regions' states and versions, from row `start` of a provenance sheet.
fn sources(info: &mut Worksheet, start: u32, regions: &[RegionReport], bold: &Format) -> Result<(), XlsxError> {
    header(info, start, &["region", "name", "status", "data version", "policy version", "cells", "withheld", "message"], bold)?;
    for (i, reg) in regions.iter().enumerate() {
        let r = start + 1 + i as u32;
        info.write_string(r, 0, &reg.region)?;
        info.write_string(r, 1, &reg.name)?;
        info.write_string(r, 2, reg.status.name())?;
        info.write_string(r, 3, reg.data_version.as_deref().unwrap_or(""))?;
        info.write_string(r, 4, reg.policy_version.as_deref().unwrap_or(""))?;
        info.write_number(r, 5, reg.cells as f64)?;
        info.write_number(r, 6, reg.cells_withheld as f64)?;
        info.write_string(r, 7, &reg.message)?;
    }
    Ok(())
}

/// A bold header row at row `row`.
fn header(sheet: &mut Worksheet, row: u32, names: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (i, h) in names.iter().enumerate() {
        sheet.write_string_with_format(row, i as u16, *h, bold)?;
    }
    Ok(())
}

/// Numbers at their columns of row `r`; missing and non-finite ones left empty.
fn numbers(sheet: &mut Worksheet, r: u32, values: &[(u16, Option<f64>)]) -> Result<(), XlsxError> {
    for (c, x) in values {
        if let Some(x) = x.filter(|x| x.is_finite()) {
            sheet.write_number(r, *c, x)?;
        }
    }
    Ok(())
}

/// Writes one analysis value.
fn value(sheet: &mut Worksheet, r: u32, c: u16, v: &Value) -> Result<(), XlsxError> {
    match v {
        Value::Text(Some(s)) => {
            sheet.write_string(r, c, s)?;
        }
        Value::Float(Some(x)) if x.is_finite() => {
            sheet.write_number(r, c, *x)?;
        }
        Value::Int(Some(x)) => {
            sheet.write_number(r, c, *x as f64)?;
        }
        Value::Bool(Some(b)) => {
            sheet.write_boolean(r, c, *b)?;
        }
        _ => {}
    }
    Ok(())
}

/// An analysis table (compare, trend, equity, funnel) as an xlsx file.
pub fn analysis(t: &AnalysisTable) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    sheet.set_name("Analysis")?;
    for (i, (name, _)) in t.columns().iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, name, &bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            value(sheet, r as u32 + 1, c as u16, v)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    let info = book.add_worksheet();
    info.set_name("Provenance")?;
    let mut r = 0;
    for (k, v) in t.meta.iter().filter(|(k, _)| k != "regions") {
        info.write_string_with_format(r, 0, k, &bold)?;
        info.write_string(r, 1, v)?;
        r += 1;
    }
    let regions: Vec<RegionReport> = t.meta("regions").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    sources(info, r + 1, &regions, &bold)?;
    info.autofit();
    book.save_to_buffer()
}

/// A regional report as an xlsx file.
pub fn report(rep: &Report) -> Result<Vec<u8>, XlsxError> {
    use crate::report::summary::title;
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let lang = rep.lang;
    let sheet = book.add_worksheet();
    sheet.set_name("Summary")?;
    sheet.write_string_with_format(0, 0, format!("{} ({}), {}", rep.region_name, rep.region, rep.period.replace("..", "–")), &bold)?;
    for (i, s) in rep.summary.iter().enumerate() {
        sheet.write_string(i as u32 + 2, 0, s)?;
    }
    let start = rep.summary.len() as u32 + 3;
    header(sheet, start, &["indicator", "recipe", "value", "95% CI lower", "95% CI upper", "others", "against the others", "target", "target verdict", "trend", "status"], &bold)?;
    for (i, ind) in rep.indicators.iter().enumerate() {
        let r = start + 1 + i as u32;
        sheet.write_string(r, 0, title(ind, lang))?;
        sheet.write_string(r, 1, &ind.recipe)?;
        let f = ind.focus.as_ref();
        numbers(sheet, r, &[(2, f.and_then(|f| f.value)), (3, f.and_then(|f| f.lower)), (4, f.and_then(|f| f.upper)), (5, f.and_then(|f| f.others_value)), (7, ind.target)])?;
        sheet.write_string(r, 6, f.and_then(|f| f.significance.as_deref()).unwrap_or(""))?;
        sheet.write_string(r, 8, serde_json::to_value(ind.target_verdict).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default())?;
        sheet.write_string(r, 9, ind.change.as_ref().map(|c| c.flag.as_str()).unwrap_or(""))?;
        sheet.write_string(r, 10, ind.error.as_deref().or(f.map(|f| f.status.as_str())).unwrap_or("no value"))?;
    }
    sheet.autofit();

    let sheet = book.add_worksheet();
    sheet.set_name("Comparison")?;
    header(sheet, 0, &["indicator", "row", "region", "numerator", "denominator", "value", "95% CI lower", "95% CI upper", "significance", "others", "status", "note"], &bold)?;
    let mut r = 1;
    for ind in &rep.indicators {
        for v in &ind.regions {
            sheet.write_string(r, 0, &ind.id)?;
            sheet.write_string(r, 1, &v.row)?;
            sheet.write_string(r, 2, &v.region_name)?;
            numbers(sheet, r, &[(3, v.numerator.map(|n| n as f64)), (4, v.denominator.map(|n| n as f64)), (5, v.value), (6, v.lower), (7, v.upper), (9, v.others_value)])?;
            sheet.write_string(r, 8, v.significance.as_deref().unwrap_or(""))?;
            sheet.write_string(r, 10, &v.status)?;
            sheet.write_string(r, 11, v.note.as_deref().unwrap_or(""))?;
            r += 1;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();

    let sheet = book.add_worksheet();
    sheet.set_name("Trend")?;
    header(sheet, 0, &["indicator", "row", "region", "year", "value", "95% CI lower", "95% CI upper", "status"], &bold)?;
    let mut r = 1;
    for ind in &rep.indicators {
        for p in &ind.trend {
            sheet.write_string(r, 0, &ind.id)?;
            sheet.write_string(r, 1, &p.row)?;
            sheet.write_string(r, 2, &p.region_name)?;
            sheet.write_number(r, 3, p.year as f64)?;
            numbers(sheet, r, &[(4, p.value), (5, p.lower), (6, p.upper)])?;
            sheet.write_string(r, 7, &p.status)?;
            r += 1;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();

    if let Some(own) = &rep.own {
        let sheet = book.add_worksheet();
        sheet.set_name("Own source")?;
        sheet.write_string_with_format(0, 0, format!("{} (the analyst's own table; not from the regions' agents)", own.title), &bold)?;
        for (i, h) in own.columns.iter().enumerate() {
            sheet.write_string_with_format(2, i as u16, h, &bold)?;
        }
        for (r, row) in own.rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                match v.replace(',', ".").replace(' ', "").parse::<f64>() {
                    Ok(x) if x.is_finite() => sheet.write_number(r as u32 + 3, c as u16, x)?,
                    _ => sheet.write_string(r as u32 + 3, c as u16, v)?,
                };
            }
        }
        sheet.autofit();
    }

    let info = book.add_worksheet();
    info.set_name("Provenance")?;
    info.write_string_with_format(0, 0, "generated", &bold)?;
    info.write_string(0, 1, &rep.generated)?;
    info.write_string_with_format(1, 0, "partial", &bold)?;
    info.write_string(1, 1, if rep.partial { "PARTIAL: a region did not answer some questions" } else { "no: every region answered" })?;
    header(info, 3, &["indicator", "recipe", "query ids", "region", "status", "data version", "policy version"], &bold)?;
    let mut r = 4;
    for ind in &rep.indicators {
        for s in &ind.sources {
            info.write_string(r, 0, &ind.id)?;
            info.write_string(r, 1, &ind.recipe)?;
            info.write_string(r, 2, ind.query_ids.join(" "))?;
            info.write_string(r, 3, &s.name)?;
            info.write_string(r, 4, s.status.name())?;
            info.write_string(r, 5, s.data_version.as_deref().unwrap_or(""))?;
            info.write_string(r, 6, s.policy_version.as_deref().unwrap_or(""))?;
            r += 1;
        }
    }
    info.autofit();
    book.save_to_buffer()
}
