//! `--format xlsx`: a comparison as a spreadsheet an analyst can hand on. Sheet
//! `Comparison`: one row per region and cell with number formats (shares as percentages,
//! intervals beside the value), withheld cells shown with their reason; sheet `Provenance`:
//! the question, each region's data and policy versions, the recipe and catalog hashes, and
//! whether the answer is partial.

use std::path::Path;

use anyhow::Context;
use norrsken_common::catalog::Kind;
use norrsken_common::comparison::{Comparison, RowKind};
use rust_xlsxwriter::{Format, Workbook};

/// Writes `c` to `path`.
pub fn write(c: &Comparison, path: &Path) -> anyhow::Result<()> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let number = match c.meta.kind {
        Kind::Proportion => Format::new().set_num_format("0.0%"),
        Kind::Rate | Kind::Mean => Format::new().set_num_format("0.00"),
        Kind::Count | Kind::CostSum => Format::new().set_num_format("#,##0"),
    };
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
        let text = |sheet: &mut rust_xlsxwriter::Worksheet, col: &mut u16, s: &str| -> anyhow::Result<()> {
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
        text(sheet, &mut col, &row.reasons.join(", "))?;
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
    let start = pairs.len() as u32 + 1;
    for (i, h) in ["region", "name", "status", "data version", "policy version", "cells", "withheld", "message"].iter().enumerate() {
        info.write_string_with_format(start, i as u16, *h, &bold)?;
    }
    for (i, reg) in c.regions.iter().enumerate() {
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
    info.autofit();
    book.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
