//! Renders a coordinator comparison for people: one line per region and cell, the pooled
//! rows, regions that did not answer, and where the numbers came from.

use std::fmt::Write as _;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use norrsken_model::vocabulary;
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, RegionState, RowKind};

/// A value by the vocabulary's one number format (the report and the web app write it the
/// same way), in the language asked.
pub fn fmt_value(kind: Kind, v: f64, lang: Lang) -> String {
    vocabulary::format_value(kind, v, lang.words())
}

/// An interval as `lower – upper`.
pub fn fmt_interval(kind: Kind, lower: f64, upper: f64, lang: Lang) -> String {
    if lower.is_finite() && upper.is_finite() {
        format!("{} – {}", fmt_value(kind, lower, lang), fmt_value(kind, upper, lang))
    } else {
        String::new()
    }
}

/// Lays out a header and rows in aligned columns (`right` says which are right-aligned).
pub fn grid(header: &[String], rows: &[Vec<String>], right: impl Fn(usize) -> bool) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|x| x.chars().count()).chain(std::iter::once(header[c].chars().count())).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i].saturating_sub(c.chars().count()));
                if right(i) { format!("{pad}{c}") } else { format!("{c}{pad}") }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header).trim_end());
    let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for r in rows {
        let _ = writeln!(out, "{}", line(r).trim_end());
    }
    out
}

/// The language of titles, descriptions and category labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Sv,
    En,
}

impl Lang {
    /// Swedish when the locale says so (`LC_ALL`, `LC_MESSAGES` or `LANG` starting with
    /// `sv`), else English.
    pub fn from_locale() -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"].iter().filter_map(|k| std::env::var(k).ok()).find(|v| !v.is_empty()).unwrap_or_default();
        if locale.starts_with("sv") {
            Lang::Sv
        } else {
            Lang::En
        }
    }

    /// The language of the shared vocabulary (statuses and reasons).
    pub fn words(self) -> vocabulary::Lang {
        match self {
            Lang::Sv => vocabulary::Lang::Sv,
            Lang::En => vocabulary::Lang::En,
        }
    }

    /// The language asked for, else the locale's.
    pub fn or_locale(asked: Option<Lang>) -> Lang {
        asked.unwrap_or_else(Lang::from_locale)
    }
}

/// A plain-text table of a comparison (read with the shared wire contract).
pub fn comparison_table(schema: &Schema, batches: &[RecordBatch], lang: Lang) -> String {
    match Comparison::from_batches(schema, batches) {
        Ok(c) => render(&c, lang),
        Err(e) => format!("(the answer is not a comparison: {e})\n"),
    }
}

/// A plain-text table of a comparison.
pub fn render(c: &Comparison, lang: Lang) -> String {
    let m = &c.meta;
    let kind = m.kind;
    let sv = lang == Lang::Sv;
    let tr = |a: &'static str, b: &'static str| -> String { if sv { a.to_string() } else { b.to_string() } };
    let labels: Vec<String> = c.breakdowns.iter().map(|b| if sv { vocabulary::breakdown_name(*b, lang.words()).to_lowercase() } else { b.name().to_string() }).collect();
    let has_category = c.distribution;

    let mut header: Vec<String> = vec!["region".into()];
    header.extend(labels.iter().cloned());
    if has_category {
        header.push(tr("kategori", "category"));
    }
    let (num_name, den_name) = match (kind, sv) {
        (Kind::Proportion, true) => ("täljare", "nämnare"),
        (Kind::Proportion, false) => ("numerator", "denominator"),
        (Kind::Rate, true) => ("händelser", "invånarår"),
        (Kind::Rate, false) => ("events", "inhabitant-years"),
        (Kind::Count, true) => ("antal", ""),
        (Kind::Count, false) => ("count", ""),
        (Kind::Mean, _) => ("", "n"),
        (Kind::CostSum, true) => ("kontakter", "patienter"),
        (Kind::CostSum, false) => ("contacts", "patients"),
    };
    if !num_name.is_empty() {
        header.push(num_name.into());
    }
    if !den_name.is_empty() {
        header.push(den_name.into());
    }
    let cost = kind == Kind::CostSum;
    if cost {
        header.extend([tr("totalt", "total"), tr("per kontakt", "per contact")]);
    }
    header.extend([if cost { "per patient".to_string() } else { tr("värde", "value") }, tr("95 % KI", "95% CI")]);
    let standardised = m.standard.is_some();
    if standardised {
        header.extend([tr("åldersstd.", "age-std"), tr("åldersstd. 95 % KI", "age-std 95% CI")]);
    }
    header.push("status".to_string());

    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in &c.rows {
        let int = |x: Option<i64>| x.map(|v| v.to_string()).unwrap_or_else(|| "·".into());
        let mut line = vec![if r.kind == RowKind::Pooled { format!("{} ({})", r.region_name, tr("sammanvägd", "pooled")) } else { r.region_name.clone() }];
        for (b, l) in c.breakdowns.iter().zip(&r.labels) {
            // Names for codes in Swedish (Kvinnor, Umeå); codes as they are in English, as
            // scripts parse them.
            line.push(l.as_deref().map(|l| if sv { vocabulary::value_text(*b, l, lang.words()) } else { l.to_string() }).unwrap_or_default());
        }
        if has_category {
            // The category's label in the language asked.
            let code = r.category.clone().unwrap_or_default();
            let label = c.meta.categories.iter().find(|x| x.code == code).map(|x| if lang == Lang::Sv { x.sv.clone() } else { x.en.clone() });
            line.push(label.unwrap_or(code));
        }
        if !num_name.is_empty() {
            line.push(int(r.numerator));
        }
        if !den_name.is_empty() {
            line.push(int(r.denominator));
        }
        if cost {
            line.push(r.value_sum.map(|v| fmt_value(kind, v, lang)).unwrap_or_else(|| "·".into()));
            let per_contact = match (r.value_sum, r.numerator) {
                (Some(v), Some(n)) if n > 0 => fmt_value(kind, v / n as f64, lang),
                _ => "·".into(),
            };
            line.push(per_contact);
        }
        line.push(r.estimate.map(|e| fmt_value(kind, e.value, lang)).unwrap_or_else(|| "·".into()));
        line.push(r.estimate.map(|e| fmt_interval(kind, e.lower, e.upper, lang)).unwrap_or_default());
        if standardised {
            line.push(r.standardised.map(|e| fmt_value(kind, e.value, lang)).unwrap_or_else(|| "·".into()));
            line.push(r.standardised.map(|e| fmt_interval(kind, e.lower, e.upper, lang)).unwrap_or_default());
        }
        // The status and its reasons in words, from the one vocabulary.
        let words = lang.words();
        let mut st = norrsken_model::answer::CellStatus::parse(&r.status).map_or_else(|| r.status.clone(), |s| vocabulary::status(s, words).to_string());
        let codes: Vec<&String> = r.reasons.iter().filter(|x| !x.is_empty() && **x != r.status && x.as_str() != "perturbed").collect();
        if !codes.is_empty() {
            st = format!("{st}: {}", vocabulary::reasons_text(&codes, words));
        }
        if r.partial && r.kind == RowKind::Pooled {
            st.push_str(if sv { " OFULLSTÄNDIG" } else { " PARTIAL" });
        }
        line.push(st);
        rows.push(line);
    }
    let mut out = String::new();
    let title = if lang == Lang::Sv && !m.title_sv.is_empty() { &m.title_sv } else { &m.title };
    if sv {
        let perspective = if m.perspective == "population" { "befolkningsperspektiv" } else { "vårdgivarperspektiv" };
        let _ = writeln!(out, "{} ({}), {perspective}, period {}", title, m.recipe, vocabulary::period_text(&m.period));
    } else {
        let _ = writeln!(out, "{} ({}), {} perspective, period {}", title, m.recipe, m.perspective, m.period);
        let _ = writeln!(out, "counted: {}", m.semantics);
    }
    if let Some(d) = &m.followup_through {
        let _ = writeln!(out, "{}", vocabulary::note_with(vocabulary::Note::FollowupThrough, d, lang.words()));
    }
    if m.counted_per_region {
        let _ = writeln!(out, "{}", vocabulary::note(vocabulary::Note::CountedPerRegion, lang.words()));
    }
    if m.secure_sum {
        let _ = writeln!(out, "{}", vocabulary::note(vocabulary::Note::SecureSum, lang.words()));
    }
    if sv {
        let _ = writeln!(out, "värde: {}; KI: {}", m.axis_sv, m.ci.replace("95%", "95 %"));
    } else {
        let _ = writeln!(out, "value: {}; CI: {}", m.value, m.ci);
    }
    if let Some(id) = &m.standard {
        let title = norrsken_model::standard::standard(id).map_or(id.clone(), |s| format!("{} ({id})", s.title));
        let _ = writeln!(out, "age-standardised (direct) to the {title}, computed by each region's agent; 95% Fay-Feuer gamma interval");
    }
    let numeric_from = 1 + labels.len() + usize::from(has_category);
    out.push_str(&grid(&header, &rows, |i| i >= numeric_from && i + 1 < header.len()));
    let _ = writeln!(out, "{}", c.quality_declaration(lang.words()));
    let _ = writeln!(out);
    for r in &c.regions {
        let detail = match r.status {
            RegionState::Ok if sv => format!(
                "{} celler ({} ej redovisade, {} brusade), data {}, policy {}, {} ms",
                r.cells,
                r.cells_withheld,
                r.cells_perturbed,
                r.data_version.as_deref().unwrap_or("?"),
                r.policy_version.as_deref().unwrap_or("?"),
                r.duration_ms
            ),
            RegionState::Ok => format!(
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
        let state = match (r.status, sv) {
            (RegionState::Ok, true) => "svarade".to_string(),
            (_, true) => format!("svarade inte ({})", r.status.name()),
            (s, false) => s.name().to_string(),
        };
        let _ = writeln!(out, "  {:<20} {:<11} {}", r.name, state, detail);
    }
    if m.partial {
        let _ = writeln!(out, "{}", tr("OFULLSTÄNDIGT RESULTAT: alla regioner svarade inte; sammanvägda rader saknar deras del.", "PARTIAL RESULT: not every region answered; pooled rows lack their part."));
    }
    let _ = writeln!(out, "{} {} · {} {}", tr("fråga", "query"), m.query_id, tr("katalog", "catalog"), &m.catalog_hash.chars().take(16).collect::<String>());
    out
}
