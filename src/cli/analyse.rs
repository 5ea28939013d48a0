//! `norrsken compare | trend | equity | funnel | evaluate`: an analysis of a cross-region comparison,
//! computed by the coordinator, printed as a readable table with its flags in words.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use clap::Args;
use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::answer::kind_of;
use norrsken_model::catalog::Kind;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator};
use norrsken_model::vocabulary;

use super::query::{write_batches, QueryArgs};
use super::render::{fmt_interval, fmt_value, grid, Lang};

#[derive(Args)]
pub struct AnalysisArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// What each region is compared with: pooled (all regions asked, default), others (the
    /// other regions pooled) or target (the recipe's published target level).
    #[arg(long, default_value = "pooled")]
    against: String,
    /// equity: the breakdown whose groups are compared (sex, age_band, education,
    /// income_quintile, birth_country).
    #[arg(long)]
    dimension: Option<String>,
    /// funnel: the units plotted, region (default) or kommun.
    #[arg(long)]
    units: Option<String>,
}

pub fn run(kind: AnalysisKind, args: AnalysisArgs) -> anyhow::Result<()> {
    let against = Comparator::parse(&args.against).with_context(|| format!("--against '{}' must be pooled, others or target", args.against))?;
    if kind == AnalysisKind::Equity && args.dimension.is_none() {
        anyhow::bail!("equity needs --dimension (sex, age_band, education, income_quintile or birth_country)");
    }
    let spec = AnalysisSpec { kind, against, dimension: args.dimension.clone(), units: args.units.clone() };
    let mut query = args.query.to_query()?;
    query.options.analysis = Some(spec);
    let connection = args.query.connection()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (schema, batches) = runtime.block_on(connection.fetch(query.encode_ticket(None)))?;
    match args.query.format() {
        "table" => args.query.emit(&analysis_text(&schema, &batches, args.query.lang()))?,
        f => write_batches(f, &schema, &batches, args.query.out(), args.query.lang().words())?,
    }
    Ok(())
}

/// A readable analysis (or why it is not one).
pub fn analysis_text(schema: &Schema, batches: &[RecordBatch], lang: Lang) -> String {
    match AnalysisTable::from_batches(schema, batches) {
        Ok(t) => render(&t, lang),
        Err(e) => format!("(the answer is not an analysis: {e})\n"),
    }
}

/// Flags in words, from the one vocabulary.
fn words(flag: &str, lang: Lang) -> &str {
    vocabulary::verdict(flag, lang.words()).unwrap_or(flag)
}

pub fn render(t: &AnalysisTable, lang: Lang) -> String {
    let kind = t.meta("kind").and_then(kind_of).unwrap_or(Kind::Proportion);
    let text = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_text).map(str::to_string).unwrap_or_default();
    let num = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_float);
    let val = |x: Option<f64>| x.map(|v| fmt_value(kind, v, lang)).unwrap_or_else(|| "·".into());
    let ci = |r: &[Value], lo: &str, hi: &str| match (num(r, lo), num(r, hi)) {
        (Some(l), Some(h)) => fmt_interval(kind, l, h, lang),
        _ => String::new(),
    };
    let region = |r: &[Value]| {
        let name = text(r, "region_name");
        if text(r, "row") != "unit" && text(r, "region") == t.meta("pooled_label").unwrap_or("") { format!("{name} (pooled)") } else { name }
    };
    let keys: Vec<String> = t.keys.iter().map(|b| b.name().to_string()).collect();
    let key_values = |r: &[Value]| keys.iter().map(|k| text(r, k)).collect::<Vec<_>>();
    let mut out = String::new();
    let title = if lang == Lang::Sv { t.meta("title_sv").unwrap_or("") } else { t.meta("title").unwrap_or("") };
    let _ = writeln!(out, "{} ({}), period {}: {}", title, t.meta("recipe").unwrap_or(""), t.meta("period").unwrap_or(""), t.kind.name());
    let _ = writeln!(out, "value: {}", t.meta("value").unwrap_or(""));
    if let Some(s) = t.meta("standard") {
        let _ = writeln!(out, "age-standardised to {s} (95% Fay-Feuer gamma intervals)");
    }
    let rows_of = |what: &str| t.rows.iter().filter(|r| text(r, "row") == what).collect::<Vec<_>>();
    match t.kind {
        AnalysisKind::Compare => {
            let against = t.meta("against").unwrap_or("pooled");
            let target = t.meta("target").and_then(|v| v.parse::<f64>().ok());
            let _ = match (against, target) {
                ("target", Some(v)) => writeln!(out, "compared with the target level {} ({})", val(Some(v)), t.meta("target_source").unwrap_or("")),
                ("others", _) => writeln!(out, "each region compared with the other regions pooled"),
                _ => writeln!(out, "each region compared with the pooled value"),
            };
            let mut header = vec!["region".to_string()];
            header.extend(keys.iter().cloned());
            header.extend(["value", "95% CI", "comparator", "at 95 %", "at 99.8 %", "note"].map(String::from));
            let mut rows = Vec::new();
            for r in t.rows.iter() {
                let mut line = vec![region(r)];
                line.extend(key_values(r));
                line.extend([val(num(r, "value")), ci(r, "ci_lower", "ci_upper")]);
                let pooled = text(r, "row") == "pooled";
                line.push(if pooled { String::new() } else { val(num(r, "comparator_value")) });
                line.push(words(&text(r, "significance"), lang).to_string());
                line.push(words(&text(r, "significance_998"), lang).to_string());
                line.push(vocabulary::analysis_note(&text(r, "note"), lang.words()));
                rows.push(line);
            }
            let n = 1 + keys.len();
            out.push_str(&grid(&header, &rows, |i| i >= n && i < n + 3));
        }
        AnalysisKind::Trend => {
            let years: Vec<i64> = {
                let mut y: Vec<i64> = rows_of("year").iter().filter_map(|r| t.get(r, "year").and_then(Value::as_int)).collect();
                y.sort();
                y.dedup();
                y
            };
            let mut header = vec!["region".to_string()];
            header.extend(keys.iter().cloned());
            header.extend(years.iter().map(|y| y.to_string()));
            let sv = lang == Lang::Sv;
            header.extend(if sv { ["förändring per år", "95 % KI", "modellens kvot (95 % KI)", "trend"] } else { ["change per year", "95% CI", "model ratio (95% CI)", "trend"] }.map(String::from));
            let mut values: BTreeMap<(String, Vec<String>), BTreeMap<i64, String>> = BTreeMap::new();
            for r in rows_of("year") {
                let y = t.get(r, "year").and_then(Value::as_int).unwrap_or(0);
                values.entry((text(r, "region"), key_values(r))).or_default().insert(y, val(num(r, "value")));
            }
            let mut rows = Vec::new();
            let mut unit = String::new();
            for r in rows_of("trend") {
                let mut line = vec![region(r)];
                line.extend(key_values(r));
                let by_year = values.get(&(text(r, "region"), key_values(r)));
                line.extend(years.iter().map(|y| by_year.and_then(|m| m.get(y)).cloned().unwrap_or_else(|| "·".into())));
                // The change per year on the value's scale (procentenheter for a share),
                // the model's ratio beside it as a detail.
                let yearly = |x: Option<f64>| x.map_or_else(|| "·".into(), |v| vocabulary::yearly_change(kind, v, lang.words()));
                line.push(yearly(num(r, "yearly")));
                line.push(match (num(r, "yearly_lower"), num(r, "yearly_upper")) {
                    (Some(a), Some(b)) => format!("{} – {}", yearly(Some(a)), yearly(Some(b))),
                    _ => String::new(),
                });
                let ratio = text(r, "change_unit").contains("ratio");
                line.push(match (ratio, num(r, "change"), num(r, "change_lower"), num(r, "change_upper")) {
                    (true, Some(c), Some(a), Some(b)) => format!("{} ({} – {})", vocabulary::format_number(c, 3, lang.words()), vocabulary::format_number(a, 3, lang.words()), vocabulary::format_number(b, 3, lang.words())),
                    _ => String::new(),
                });
                let note = vocabulary::analysis_note(&text(r, "note"), lang.words());
                line.push(if note.is_empty() { words(&text(r, "flag"), lang).to_string() } else { format!("{} ({note})", words(&text(r, "flag"), lang)) });
                if unit.is_empty() {
                    unit = text(r, "change_unit");
                }
                rows.push(line);
            }
            if !unit.is_empty() {
                let unit = vocabulary::change_unit(&unit, lang.words());
                if lang == Lang::Sv {
                    let _ = writeln!(out, "kvot: {unit}; modell: {}", t.meta("method").unwrap_or(""));
                } else {
                    let _ = writeln!(out, "ratio: {unit}; model: {}", t.meta("method").unwrap_or(""));
                }
            }
            let n = 1 + keys.len();
            out.push_str(&grid(&header, &rows, |i| i >= n && i < header.len() - 1));
        }
        AnalysisKind::Equity => {
            let dimension = t.meta("dimension").unwrap_or("group");
            let mut groups: Vec<(i64, String)> = rows_of("group").iter().map(|r| (t.get(r, "rank").and_then(Value::as_int).unwrap_or(0), text(r, "group"))).collect();
            groups.sort();
            groups.dedup();
            let _ = writeln!(out, "groups by {dimension}; method: {}", t.meta("method").unwrap_or(""));
            let mut header = vec!["region".to_string()];
            header.extend(keys.iter().cloned());
            header.extend(groups.iter().map(|g| g.1.clone()));
            header.extend(["gap", "abs. gap (95% CI)", "rel. gap (95% CI)", "SII (95% CI)", "RII (95% CI)"].map(String::from));
            let mut values: BTreeMap<(String, Vec<String>), BTreeMap<String, String>> = BTreeMap::new();
            for r in rows_of("group") {
                values.entry((text(r, "region"), key_values(r))).or_default().insert(text(r, "group"), val(num(r, "value")));
            }
            let with_ci = |r: &[Value], v: &str, fmt: &dyn Fn(f64) -> String| match (num(r, v), num(r, &format!("{v}_lower")), num(r, &format!("{v}_upper"))) {
                (Some(x), Some(l), Some(h)) => format!("{} ({} – {})", fmt(x), fmt(l), fmt(h)),
                (Some(x), _, _) => fmt(x),
                _ => "·".into(),
            };
            let abs = |x: f64| fmt_value(kind, x, lang);
            let ratio = |x: f64| format!("{x:.2}");
            let mut rows = Vec::new();
            let mut notes = Vec::new();
            for r in rows_of("gap") {
                let mut line = vec![region(r)];
                line.extend(key_values(r));
                let v = values.get(&(text(r, "region"), key_values(r)));
                line.extend(groups.iter().map(|g| v.and_then(|m| m.get(&g.1)).cloned().unwrap_or_else(|| "·".into())));
                let (from, to) = (text(r, "from_group"), text(r, "to_group"));
                line.push(if from.is_empty() { String::new() } else { format!("{to} vs {from}") });
                line.push(with_ci(r, "abs_gap", &abs));
                line.push(with_ci(r, "rel_gap", &ratio));
                line.push(with_ci(r, "sii", &abs));
                line.push(with_ci(r, "rii", &ratio));
                let note = text(r, "note");
                if !note.is_empty() {
                    notes.push(format!("  {}: {note}", region(r)));
                }
                rows.push(line);
            }
            let n = 1 + keys.len();
            out.push_str(&grid(&header, &rows, |i| i >= n && i < n + groups.len()));
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
        AnalysisKind::Funnel => {
            let _ = writeln!(out, "{}", t.meta("method").unwrap_or(""));
            let _ = writeln!(out, "{}", t.meta("overdispersion").unwrap_or(""));
            let mut header = vec!["unit".to_string()];
            header.extend(keys.iter().cloned());
            header.extend(["precision", "value", "centre", "95% limits", "99.8% limits", "position", "significance"].map(String::from));
            let mut rows = Vec::new();
            for r in rows_of("unit") {
                let mut line = vec![text(r, "unit_name")];
                line.extend(key_values(r));
                line.push(num(r, "precision").map(|n| format!("{n:.0}")).unwrap_or_else(|| "·".into()));
                line.extend([val(num(r, "value")), val(num(r, "centre")), ci(r, "lower_95", "upper_95"), ci(r, "lower_998", "upper_998")]);
                line.push(words(&text(r, "position"), lang).to_string());
                line.push(words(&text(r, "significance"), lang).to_string());
                rows.push(line);
            }
            let n = 1 + keys.len();
            out.push_str(&grid(&header, &rows, |i| i >= n && i < n + 5));
        }
        AnalysisKind::Evaluate => render_evaluation(t, lang, &mut out),
    }
    if let Some(p) = t.meta("partial_note") {
        let _ = writeln!(out, "PARTIAL RESULT: {p}");
    }
    if let Some(m) = t.meta("method").filter(|_| t.kind == AnalysisKind::Compare) {
        let _ = writeln!(out, "test: {m}");
    }
    let _ = writeln!(out, "query {} · catalog {}", t.meta("query_id").unwrap_or(""), t.meta("catalog_hash").unwrap_or("").chars().take(16).collect::<String>());
    out
}

/// An evaluation: each region's change and effect, the pooled row, the meta-analysis and its
/// verdict in words. Outcomes are written with their own decimals (a mean's).
fn render_evaluation(t: &AnalysisTable, lang: Lang, out: &mut String) {
    fn word(key: &str, lang: Lang) -> String {
        vocabulary::evaluation_word(key, lang.words()).to_string()
    }
    let w = |key: &str| word(key, lang);
    let text = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_text).map(str::to_string).unwrap_or_default();
    let num = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_float);
    // Outcomes with their own decimals: a tenth of a stay shows, kronor are whole.
    let outcome = t.meta("outcome").unwrap_or("").to_string();
    let fv = |v: f64| vocabulary::format_outcome(&outcome, v, lang.words());
    let val = |x: Option<f64>| x.map(fv).unwrap_or_else(|| "·".into());
    let ci = |r: &[Value], c: &str| match (num(r, &format!("{c}_lower")), num(r, &format!("{c}_upper"))) {
        (Some(l), Some(h)) if l.is_finite() && h.is_finite() => format!("{} – {}", fv(l), fv(h)),
        _ => String::new(),
    };
    let ratio = |r: &[Value]| match (num(r, "ratio"), num(r, "ratio_lower"), num(r, "ratio_upper")) {
        (Some(v), Some(l), Some(h)) => format!("{} ({} – {})", vocabulary::format_number(v, 2, lang.words()), vocabulary::format_number(l, 2, lang.words()), vocabulary::format_number(h, 2, lang.words())),
        _ => "·".into(),
    };
    let design = t.meta("design").unwrap_or("");
    let _ = writeln!(
        out,
        "{}: {} · {} {} {}, {} {} {}",
        w("outcome"),
        vocabulary::evaluation_word(&format!("outcome.{}", t.meta("outcome").unwrap_or("")), lang.words()),
        w("before"),
        t.meta("before_days").unwrap_or(""),
        w("days"),
        w("after"),
        t.meta("after_days").unwrap_or(""),
        w("days")
    );
    let _ = writeln!(out, "{}", w(&format!("design.{design}")));
    let keys: Vec<String> = t.keys.iter().map(|b| b.name().to_string()).collect();
    let mut header = vec![w("region").to_string()];
    header.extend(t.keys.iter().map(|b| vocabulary::names::breakdown(*b, lang.words()).to_string()));
    header.extend(["n", "before", "after", "change", "ratio"].map(|k| w(k).to_string()));
    if design == "did" {
        header.extend(["comparison_n", "comparison_change"].map(|k| w(k).to_string()));
    }
    header.extend(["effect", "weight", "note"].map(|k| w(k).to_string()));
    let mut rows = Vec::new();
    for r in &t.rows {
        let what = text(r, "row");
        let name = match what.as_str() {
            "region" => text(r, "region_name"),
            "pooled" => format!("{} ({})", text(r, "region_name"), w("pooled")),
            other => w(other).to_string(),
        };
        let mut line = vec![name];
        // Key values by their names (Kvinnor, not female).
        line.extend(t.keys.iter().map(|b| {
            let v = text(r, b.name());
            if v.is_empty() { v } else { vocabulary::names::value_text(*b, &v, lang.words()) }
        }));
        let n = t.get(r, "n").and_then(Value::as_int).map(|n| n.to_string()).unwrap_or_else(|| "·".into());
        let change = if num(r, "change").is_some() { format!("{} ({})", val(num(r, "change")), ci(r, "change")) } else { "·".into() };
        line.extend([n, val(num(r, "before")), val(num(r, "after")), change, ratio(r)]);
        if design == "did" {
            let cn = t.get(r, "comparison_n").and_then(Value::as_int).map(|n| n.to_string()).unwrap_or_else(|| "·".into());
            let cc = if num(r, "comparison_change").is_some() { format!("{} ({})", val(num(r, "comparison_change")), ci(r, "comparison_change")) } else { "·".into() };
            line.extend([cn, cc]);
        }
        let effect = if num(r, "effect").is_some() { format!("{} ({})", val(num(r, "effect")), ci(r, "effect")) } else { "·".into() };
        line.push(effect);
        line.push(num(r, "weight").map(|p| format!("{} %", vocabulary::format_number(p, 0, lang.words()))).unwrap_or_default());
        line.push(vocabulary::analysis_note(&text(r, "note"), lang.words()));
        rows.push(line);
    }
    let n = 1 + keys.len();
    out.push_str(&grid(&header, &rows, |i| i >= n && i + 1 < header.len()));
    // One verdict per group of the question's other breakdowns (one line without them).
    for r in t.rows.iter().filter(|r| text(r, "row") == "random") {
        let group: Vec<String> = t.keys.iter().map(|b| (b, text(r, b.name()))).filter(|(_, v)| !v.is_empty()).map(|(b, v)| vocabulary::names::value_text(*b, &v, lang.words())).collect();
        if !group.is_empty() {
            let _ = write!(out, "{}: ", group.join(", "));
        }
        let pct = |x: Option<f64>| x.map(|v| format!("{} %", vocabulary::format_number(100.0 * v, 0, lang.words()))).unwrap_or_else(|| "·".into());
        if num(r, "i2").is_some() {
            let _ = write!(
                out,
                "I² {} ({}–{}), τ² {}, Q {} (p {}), {} {}. ",
                pct(num(r, "i2")),
                pct(num(r, "i2_lower")),
                pct(num(r, "i2_upper")),
                vocabulary::format_number(num(r, "tau2").unwrap_or(f64::NAN), 3, lang.words()),
                vocabulary::format_number(num(r, "q").unwrap_or(f64::NAN), 2, lang.words()),
                vocabulary::format_number(num(r, "q_p").unwrap_or(f64::NAN), 3, lang.words()),
                t.get(r, "k").and_then(Value::as_int).unwrap_or(0),
                w("regions")
            );
        }
        let _ = writeln!(out, "{}", vocabulary::consistency_statement(&text(r, "consistency"), lang.words()));
    }
}
