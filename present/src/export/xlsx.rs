//! Spreadsheets an analyst can hand on (`norrsken query --format xlsx`, the web app's
//! downloads, the regional report).
//!
//! In the reader's language (Swedish first): sheet names, headers, codes as names (regions,
//! breakdown values, statuses, reasons, suggestions), with a filter on every table's header
//! row, the header repeated on every printed page and printing fitted to the page width.
//!
//! A comparison: sheet `Jämförelse`, one row per region and cell with number formats
//! (shares as percentages, intervals beside the value), withheld cells shown with their
//! reason; sheet `Ursprung`: the question, each region's data and policy versions, the
//! recipe and catalog hashes, and whether the answer is partial. An analysis: sheet
//! `Analys` with its columns as they are, and `Ursprung` with its metadata. A report:
//! `Sammanfattning`, `Jämförelse`, `Trend`, the analyst's own table (`Egen källa`) and
//! `Ursprung`.

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, RegionReport, RowKind};
use norrsken_model::vocabulary::{self, Lang};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::report::Report;

fn t<'a>(lang: Lang, sv: &'a str, en: &'a str) -> &'a str {
    lang.pick(sv, en)
}

/// A table sheet for reading and printing: a filter on the header row `header_row` over
/// `columns` columns and `rows` data rows, the header frozen and repeated on every printed
/// page, landscape and fitted to the page width.
fn finish_table(sheet: &mut Worksheet, header_row: u32, columns: u16, rows: u32) -> Result<(), XlsxError> {
    if columns > 0 {
        sheet.autofilter(header_row, 0, header_row + rows.max(1), columns - 1)?;
    }
    sheet.set_freeze_panes(header_row + 1, 0)?;
    sheet.set_repeat_rows(header_row, header_row)?;
    sheet.set_landscape();
    sheet.set_paper_size(9);
    sheet.set_print_fit_to_pages(1, 0);
    sheet.autofit();
    Ok(())
}

/// A cell status in words.
fn status(code: &str, lang: Lang) -> String {
    norrsken_model::answer::CellStatus::parse(code).map_or_else(|| code.to_string(), |s| vocabulary::status(s, lang).to_string())
}

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

/// A comparison as an xlsx file in `lang`.
pub fn comparison(c: &Comparison, lang: Lang) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let number = Format::new().set_num_format(excel_format(c.meta.kind));
    let integer = Format::new().set_num_format("#,##0");
    let sheet = book.add_worksheet();
    sheet.set_name(t(lang, "Jämförelse", "Comparison"))?;
    let mut header: Vec<String> = vec![t(lang, "Rad", "Row").into(), "Region".into()];
    header.extend(c.breakdowns.iter().map(|b| vocabulary::breakdown_name(*b, lang).to_string()));
    if c.distribution {
        header.push(t(lang, "Kategori", "Category").into());
    }
    let axis = if lang == Lang::Sv { &c.meta.axis_sv } else { &c.meta.axis_en };
    let value_header = if axis.is_empty() { t(lang, "Värde", "Value").to_string() } else { axis.clone() };
    header.extend([t(lang, "Täljare", "Numerator").to_string(), t(lang, "Nämnare", "Denominator").to_string(), value_header, t(lang, "95 % KI, nedre", "95% CI lower").into(), t(lang, "95 % KI, övre", "95% CI upper").into()]);
    let standardised = c.meta.standard.is_some();
    if standardised {
        header.extend([t(lang, "Åldersstandardiserat", "Age-standardised"), t(lang, "Standardiserat KI, nedre", "Age-std CI lower"), t(lang, "Standardiserat KI, övre", "Age-std CI upper")].map(String::from));
    }
    header.extend([t(lang, "Status", "Status"), t(lang, "Skäl", "Reason"), t(lang, "Förslag", "Suggestion"), t(lang, "Ofullständig", "Partial")].map(String::from));
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
        let kind = match row.kind {
            RowKind::Region => "Region",
            RowKind::Pooled => t(lang, "Sammanvägd", "Pooled"),
            RowKind::Missing => t(lang, "Svarade inte", "Did not answer"),
        };
        text(sheet, &mut col, kind)?;
        text(sheet, &mut col, &if row.kind == RowKind::Pooled { format!("{} ({})", row.region_name, t(lang, "sammanvägd", "pooled")) } else { row.region_name.clone() })?;
        for (b, l) in c.breakdowns.iter().zip(&row.labels) {
            text(sheet, &mut col, &l.as_deref().map(|l| vocabulary::value_text(*b, l, lang)).unwrap_or_default())?;
        }
        if c.distribution {
            let category = row.category.as_deref().map(|code| c.meta.categories.iter().find(|x| x.code == code).map_or(code, |x| if lang == Lang::Sv { &x.sv } else { &x.en }));
            text(sheet, &mut col, category.unwrap_or(""))?;
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
                    sheet.write_string(r, col, t(lang, "ej redovisad", "not released"))?;
                }
                None => {}
            }
            col += 1;
        }
        text(sheet, &mut col, &status(&row.status, lang))?;
        // Reasons and suggestions in words, from the shared vocabulary.
        text(sheet, &mut col, &vocabulary::reasons_text(&row.reasons, lang))?;
        text(sheet, &mut col, &row.suggestion.as_deref().map(|s| vocabulary::suggestion_text(s, lang)).unwrap_or_default())?;
        text(sheet, &mut col, if row.partial { t(lang, "ja", "yes") } else { t(lang, "nej", "no") })?;
    }
    finish_table(sheet, 0, header.len() as u16, c.rows.len() as u32)?;

    let m = &c.meta;
    let info = book.add_worksheet();
    info.set_name(t(lang, "Ursprung", "Provenance"))?;
    let pairs: Vec<(&str, String)> = vec![
        (t(lang, "Indikator", "Indicator"), format!("{} ({})", if lang == Lang::Sv { &m.title_sv } else { &m.title }, m.recipe)),
        (t(lang, "Värde", "Value"), m.value.clone()),
        (t(lang, "Intervall", "Interval"), m.ci.clone()),
        (t(lang, "Räknas", "Counted"), m.semantics.clone()),
        (t(lang, "Perspektiv", "Perspective"), m.perspective.clone()),
        (t(lang, "Period", "Period"), m.period.clone()),
        (t(lang, "Receptets hash", "Recipe hash"), m.recipe_hash.clone()),
        (t(lang, "Katalogens hash", "Catalog hash"), m.catalog_hash.clone()),
        (t(lang, "Fråge-id", "Query id"), m.query_id.clone()),
        (t(lang, "Standardbefolkning", "Standard population"), m.standard.clone().unwrap_or_default()),
        (
            t(lang, "Ofullständig", "Partial"),
            match (m.partial, lang) {
                (true, Lang::Sv) => "OFULLSTÄNDIG: alla regioner svarade inte; sammanvägda rader saknar deras del".into(),
                (true, Lang::En) => "PARTIAL: not every region answered; pooled rows lack their part".into(),
                (false, Lang::Sv) => "nej: alla regioner svarade".into(),
                (false, Lang::En) => "no: every region answered".into(),
            },
        ),
        (t(lang, "Provkörning", "Dry run"), m.dry_run.to_string()),
    ];
    for (i, (k, v)) in pairs.iter().enumerate() {
        info.write_string_with_format(i as u32, 0, *k, &bold)?;
        info.write_string(i as u32, 1, v)?;
    }
    sources(info, pairs.len() as u32 + 1, &c.regions, &bold, lang)?;
    info.autofit();
    book.save_to_buffer()
}

/// The regions' states and versions, from row `start` of a provenance sheet.
fn sources(info: &mut Worksheet, start: u32, regions: &[RegionReport], bold: &Format, lang: Lang) -> Result<(), XlsxError> {
    header(
        info,
        start,
        &[t(lang, "Länskod", "County code"), t(lang, "Region", "Region"), t(lang, "Svar", "Answer"), t(lang, "Dataversion", "Data version"), t(lang, "Policyversion", "Policy version"), t(lang, "Celler", "Cells"), t(lang, "Ej redovisade", "Withheld"), t(lang, "Meddelande", "Message")],
        bold,
    )?;
    for (i, reg) in regions.iter().enumerate() {
        let r = start + 1 + i as u32;
        info.write_string(r, 0, &reg.region)?;
        info.write_string(r, 1, &reg.name)?;
        info.write_string(r, 2, region_state(reg.status.name(), lang))?;
        info.write_string(r, 3, reg.data_version.as_deref().unwrap_or(""))?;
        info.write_string(r, 4, reg.policy_version.as_deref().unwrap_or(""))?;
        info.write_number(r, 5, reg.cells as f64)?;
        info.write_number(r, 6, reg.cells_withheld as f64)?;
        info.write_string(r, 7, &reg.message)?;
    }
    Ok(())
}

/// A region's answer state in words.
fn region_state(code: &str, lang: Lang) -> &str {
    match code {
        "ok" => t(lang, "svarade", "answered"),
        "timeout" => t(lang, "svarade inte i tid", "timed out"),
        "unavailable" => t(lang, "inte nåbar", "unavailable"),
        "refused" => t(lang, "vägrade", "refused"),
        other => other,
    }
}

/// A bold header row at row `row`.
fn header(sheet: &mut Worksheet, row: u32, names: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (i, h) in names.iter().enumerate() {
        sheet.write_string_with_format(row, i as u16, *h, bold)?;
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

/// An analysis table (compare, trend, equity, funnel) as an xlsx file: its columns as the
/// table names them (for tools), notes in words.
pub fn analysis(table: &AnalysisTable, lang: Lang) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    sheet.set_name(t(lang, "Analys", "Analysis"))?;
    let columns = table.columns();
    for (i, (name, _)) in columns.iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, name, &bold)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            match (columns.get(c).map(|(n, _)| n.as_str()), v) {
                (Some("note"), Value::Text(Some(n))) => {
                    sheet.write_string(r as u32 + 1, c as u16, vocabulary::analysis_note(n, lang))?;
                }
                _ => value(sheet, r as u32 + 1, c as u16, v)?,
            }
        }
    }
    finish_table(sheet, 0, columns.len() as u16, table.rows.len() as u32)?;
    let info = book.add_worksheet();
    info.set_name(t(lang, "Ursprung", "Provenance"))?;
    let mut r = 0;
    for (k, v) in table.meta.iter().filter(|(k, _)| k != "regions") {
        info.write_string_with_format(r, 0, k, &bold)?;
        info.write_string(r, 1, v)?;
        r += 1;
    }
    let regions: Vec<RegionReport> = table.meta("regions").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    sources(info, r + 1, &regions, &bold, lang)?;
    info.autofit();
    book.save_to_buffer()
}

/// A regional report as an xlsx file, in the report's language.
pub fn report(rep: &Report) -> Result<Vec<u8>, XlsxError> {
    use crate::export::report_pdf::words;
    use crate::report::summary::{change_text, title};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let lang = rep.lang;
    let format_of = |kind: Option<Kind>| Format::new().set_num_format(kind.map_or_else(|| "0.00".to_string(), excel_format));
    let sheet = book.add_worksheet();
    sheet.set_name(t(lang, "Sammanfattning", "Summary"))?;
    sheet.write_string_with_format(0, 0, format!("{} ({}), {}", rep.region_name, rep.region, vocabulary::period_text(&rep.period)), &bold)?;
    let mut lines: Vec<String> = rep.summary.clone();
    if let Some(c) = &rep.comment {
        lines.push(format!("{}: {c}", t(lang, "Kommentar", "Comment")));
    }
    for (i, s) in lines.iter().enumerate() {
        sheet.write_string(i as u32 + 2, 0, s)?;
    }
    let start = lines.len() as u32 + 3;
    let columns = [
        t(lang, "Indikator", "Indicator"),
        t(lang, "Värde", "Value"),
        t(lang, "95 % KI, nedre", "95% CI lower"),
        t(lang, "95 % KI, övre", "95% CI upper"),
        t(lang, "Övriga regioner", "Other regions"),
        t(lang, "Mot övriga", "Against the others"),
        t(lang, "Målnivå", "Target"),
        t(lang, "Mot målnivån", "Against the target"),
        t(lang, "Trend", "Trend"),
        t(lang, "Förändring per år", "Change per year"),
        t(lang, "Kunde inte bedömas", "Could not be assessed"),
        t(lang, "Kommentar", "Comment"),
    ];
    header(sheet, start, &columns, &bold)?;
    for (i, ind) in rep.indicators.iter().enumerate() {
        let r = start + 1 + i as u32;
        let number = format_of(ind.kind);
        sheet.write_string(r, 0, title(ind, lang))?;
        let f = ind.focus.as_ref();
        for (c, v) in [(1, f.and_then(|f| f.value)), (2, f.and_then(|f| f.lower)), (3, f.and_then(|f| f.upper)), (4, f.and_then(|f| f.others_value)), (6, ind.target)] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                sheet.write_number_with_format(r, c, v, &number)?;
            }
        }
        sheet.write_string(r, 5, f.filter(|f| f.value.is_some()).and_then(|f| f.significance.as_deref()).map(|s| words(lang, s)).unwrap_or_default())?;
        let verdict = serde_json::to_value(ind.target_verdict).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        sheet.write_string(r, 7, if ind.target.is_some() && verdict != "not_assessed" { words(lang, &verdict) } else { String::new() })?;
        sheet.write_string(r, 8, ind.change.as_ref().map(|c| words(lang, &c.flag)).unwrap_or_default())?;
        sheet.write_string(r, 9, ind.change.as_ref().and_then(|c| change_text(ind.kind, c, lang)).unwrap_or_default())?;
        sheet.write_string(r, 10, ind.unassessed.map(|u| u.words(lang)).unwrap_or(""))?;
        sheet.write_string(r, 11, ind.comment.as_deref().unwrap_or(""))?;
    }
    finish_table(sheet, start, columns.len() as u16, rep.indicators.len() as u32)?;
    sheet.set_column_width(0, 60)?;

    let sheet = book.add_worksheet();
    sheet.set_name(t(lang, "Jämförelse", "Comparison"))?;
    let columns = [
        t(lang, "Indikator", "Indicator"),
        "Region",
        t(lang, "Täljare", "Numerator"),
        t(lang, "Nämnare", "Denominator"),
        t(lang, "Värde", "Value"),
        t(lang, "95 % KI, nedre", "95% CI lower"),
        t(lang, "95 % KI, övre", "95% CI upper"),
        t(lang, "Mot övriga", "Against the others"),
        t(lang, "Övriga regioner", "Other regions"),
        t(lang, "Status", "Status"),
        t(lang, "Anmärkning", "Note"),
    ];
    header(sheet, 0, &columns, &bold)?;
    let integer = Format::new().set_num_format("#,##0");
    let mut r = 1;
    for ind in &rep.indicators {
        let number = format_of(ind.kind);
        for v in &ind.regions {
            sheet.write_string(r, 0, title(ind, lang))?;
            sheet.write_string(r, 1, if v.row == "pooled" { format!("{} ({})", v.region_name, t(lang, "sammanvägd", "pooled")) } else { v.region_name.clone() })?;
            for (c, x) in [(2, v.numerator), (3, v.denominator)] {
                if let Some(x) = x {
                    sheet.write_number_with_format(r, c, x as f64, &integer)?;
                }
            }
            for (c, x) in [(4, v.value), (5, v.lower), (6, v.upper), (8, v.others_value)] {
                if let Some(x) = x.filter(|x| x.is_finite()) {
                    sheet.write_number_with_format(r, c, x, &number)?;
                }
            }
            sheet.write_string(r, 7, v.significance.as_deref().map(|s| words(lang, s)).unwrap_or_default())?;
            sheet.write_string(r, 9, status(&v.status, lang))?;
            sheet.write_string(r, 10, v.note.as_deref().map(|n| vocabulary::analysis_note(n, lang)).unwrap_or_default())?;
            r += 1;
        }
    }
    finish_table(sheet, 0, columns.len() as u16, r - 1)?;

    let sheet = book.add_worksheet();
    sheet.set_name("Trend")?;
    let columns = [t(lang, "Indikator", "Indicator"), "Region", t(lang, "År", "Year"), t(lang, "Värde", "Value"), t(lang, "95 % KI, nedre", "95% CI lower"), t(lang, "95 % KI, övre", "95% CI upper"), t(lang, "Status", "Status")];
    header(sheet, 0, &columns, &bold)?;
    let mut r = 1;
    for ind in &rep.indicators {
        let number = format_of(ind.kind);
        for p in &ind.trend {
            sheet.write_string(r, 0, title(ind, lang))?;
            sheet.write_string(r, 1, if p.row == "pooled" { format!("{} ({})", p.region_name, t(lang, "sammanvägd", "pooled")) } else { p.region_name.clone() })?;
            sheet.write_number(r, 2, p.year as f64)?;
            for (c, x) in [(3, p.value), (4, p.lower), (5, p.upper)] {
                if let Some(x) = x.filter(|x| x.is_finite()) {
                    sheet.write_number_with_format(r, c, x, &number)?;
                }
            }
            sheet.write_string(r, 6, status(&p.status, lang))?;
            r += 1;
        }
    }
    finish_table(sheet, 0, columns.len() as u16, r - 1)?;

    if let Some(own) = &rep.own {
        let sheet = book.add_worksheet();
        sheet.set_name(t(lang, "Egen källa", "Own source"))?;
        sheet.write_string_with_format(0, 0, format!("{} ({})", own.title, t(lang, "analytikerns egen tabell; kommer inte från regionernas agenter", "the analyst's own table; not from the regions' agents")), &bold)?;
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
        finish_table(sheet, 2, own.columns.len() as u16, own.rows.len() as u32)?;
    }

    let info = book.add_worksheet();
    info.set_name(t(lang, "Ursprung", "Provenance"))?;
    info.write_string_with_format(0, 0, t(lang, "Skapad", "Made"), &bold)?;
    info.write_string(0, 1, vocabulary::format_timestamp(&rep.generated, lang))?;
    info.write_string_with_format(1, 0, t(lang, "Ofullständig", "Partial"), &bold)?;
    info.write_string(1, 1, match (rep.partial, lang) {
        (true, Lang::Sv) => "OFULLSTÄNDIG: en region svarade inte på några frågor",
        (true, Lang::En) => "PARTIAL: a region did not answer some questions",
        (false, Lang::Sv) => "nej: alla regioner svarade",
        (false, Lang::En) => "no: every region answered",
    })?;
    let columns = [t(lang, "Indikator", "Indicator"), t(lang, "Recept", "Recipe"), t(lang, "Fråge-id", "Query ids"), "Region", t(lang, "Svar", "Answer"), t(lang, "Dataversion", "Data version"), t(lang, "Policyversion", "Policy version")];
    header(info, 3, &columns, &bold)?;
    let mut r = 4;
    for ind in &rep.indicators {
        for s in &ind.sources {
            info.write_string(r, 0, title(ind, lang))?;
            info.write_string(r, 1, &ind.recipe)?;
            info.write_string(r, 2, ind.query_ids.join(" "))?;
            info.write_string(r, 3, &s.name)?;
            info.write_string(r, 4, region_state(s.status.name(), lang))?;
            info.write_string(r, 5, s.data_version.as_deref().unwrap_or(""))?;
            info.write_string(r, 6, s.policy_version.as_deref().unwrap_or(""))?;
            r += 1;
        }
    }
    finish_table(info, 3, columns.len() as u16, r - 4)?;
    book.save_to_buffer()
}
