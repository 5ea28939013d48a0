//! A regional report as an A4 PDF: a first page for management (the summary, a scorecard of
//! every indicator in words and symbols, what could not be assessed and why), then one page
//! per indicator (the comparison of the regions with 95 % intervals, the pooled value and
//! the target; the yearly trend; the analyst's comment), then the analyst's own table, then
//! a provenance appendix (recipes, data and policy versions, query ids): no id or hash
//! before it. Table cells wrap, never cut. The same content and order as the web app's
//! printable report page.

use std::collections::BTreeSet;

use norrsken_model::catalog::Kind;
use norrsken_model::vocabulary;
use super::pdf::{wrap, Document, Font, Page, PAGE_HEIGHT, PAGE_WIDTH};
use crate::report::summary::{fmt_value, title};
use crate::report::{Lang, RegionValue, Report, ReportIndicator, TargetVerdict, Unassessed};

const MARGIN: f64 = 48.0;
const WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN;
const BOTTOM: f64 = PAGE_HEIGHT - 60.0;
/// The focus region's colour (dark blue) and the others' (grey); the target's (green).
const FOCUS: (f64, f64, f64) = (0.05, 0.28, 0.55);
const OTHER: (f64, f64, f64) = (0.45, 0.45, 0.45);
const TARGET: (f64, f64, f64) = (0.0, 0.45, 0.2);
const ALERT: (f64, f64, f64) = (0.7, 0.05, 0.05);
/// Published comparison values (purple, a diamond).
const PUBLISHED: (f64, f64, f64) = (0.42, 0.18, 0.54);
/// Colours of the trend lines, the focus region first (dark enough on white, WCAG AA).
const SERIES: [(f64, f64, f64); 5] = [FOCUS, (0.75, 0.35, 0.0), (0.45, 0.2, 0.55), (0.0, 0.45, 0.45), (0.35, 0.35, 0.35)];

fn t<'a>(lang: Lang, sv: &'a str, en: &'a str) -> &'a str {
    lang.pick(sv, en)
}

/// Words for an analysis verdict: short forms where the report's table says it (bättre,
/// sämre, når målnivån), otherwise the vocabulary's verdicts, statuses and reasons.
pub fn words(lang: Lang, code: &str) -> String {
    let short = match code {
        "better" => Some(("bättre", "better")),
        "worse" => Some(("sämre", "worse")),
        "higher" => Some(("högre", "higher")),
        "lower" => Some(("lägre", "lower")),
        "meets" => Some(("når målnivån", "meets the target")),
        "misses" => Some(("under målnivån", "short of the target")),
        "uncertain" => Some(("osäkert mot målnivån", "uncertain against the target")),
        _ => None,
    };
    if let Some((sv, en)) = short {
        return t(lang, sv, en).to_string();
    }
    if let Some(w) = vocabulary::verdict(code, lang) {
        return w.to_string();
    }
    if let Some(s) = norrsken_model::answer::CellStatus::parse(code) {
        return vocabulary::status(s, lang).to_string();
    }
    norrsken_model::answer::Reason::parse(code).map_or_else(|| code.to_string(), |r| vocabulary::reason(r, lang).to_string())
}

fn verdict_code(v: TargetVerdict) -> &'static str {
    match v {
        TargetVerdict::Meets => "meets",
        TargetVerdict::Misses => "misses",
        TargetVerdict::Uncertain => "uncertain",
        TargetVerdict::NotAssessed => "",
    }
}

struct Writer {
    doc: Document,
    lang: Lang,
    /// The current page's next baseline.
    y: f64,
    header: String,
}

impl Writer {
    fn page(&mut self) -> &mut Page {
        self.doc.last_page()
    }

    fn new_page(&mut self) {
        let header = self.header.clone();
        let p = self.doc.add_page();
        p.furniture().fill_colour(0.3, 0.3, 0.3).text(MARGIN, 30.0, Font::Regular, 8.0, &header);
        p.stroke_colour(0.8, 0.8, 0.8).line_width(0.5).solid().line(MARGIN, 36.0, PAGE_WIDTH - MARGIN, 36.0);
        p.body();
        self.y = 62.0;
    }

    /// Wrapped text; a new page when it does not fit.
    fn para(&mut self, font: Font, size: f64, s: &str, colour: (f64, f64, f64)) {
        for line in wrap(font, size, s, WIDTH) {
            if self.y > BOTTOM {
                self.new_page();
            }
            let y = self.y;
            self.page().fill_colour(colour.0, colour.1, colour.2).text(MARGIN, y, font, size, &line);
            self.y += size * 1.35;
        }
    }

    /// A heading of `level` (1 for the report's title, 2 for a section).
    fn heading(&mut self, level: u16, size: f64, s: &str) {
        if self.y > BOTTOM {
            self.new_page();
        }
        self.page().heading(level);
        self.para(Font::Bold, size, s, (0.0, 0.0, 0.0));
        self.page().body();
    }

    fn gap(&mut self, h: f64) {
        self.y += h;
    }
}

/// Renders the report as a tagged PDF.
pub fn render(r: &Report) -> Result<Vec<u8>, super::pdf::PdfError> {
    layout(r).to_bytes()
}

/// Lays the report out on pages.
pub fn layout(r: &Report) -> Document {
    let lang = r.lang;
    let period = r.period.replace("..", "–");
    let mut w = Writer {
        doc: Document::new(&format!("{} {} – {period}", t(lang, "Regionrapport", "Regional report"), r.region_name)),
        lang,
        y: 0.0,
        header: format!("Norrsken · {} · {} ({}) · {period}", t(lang, "Regionrapport", "Regional report"), r.region_name, r.region),
    };
    w.doc.set_author("Norrsken");
    w.doc.set_language(t(lang, "sv", "en"));
    w.new_page();
    w.heading(1, 20.0, &format!("{}: {}", t(lang, "Regionrapport", "Regional report"), r.region_name));
    let through = r.data_through.map(|y| format!(" · {} {y}", t(lang, "data t.o.m.", "data through"))).unwrap_or_default();
    w.para(Font::Regular, 11.0, &format!("Norra sjukvårdsregionen · {} {period}{through} · {} {}", t(lang, "period", "period"), t(lang, "skapad", "made"), vocabulary::format_timestamp(&r.generated, lang)), (0.2, 0.2, 0.2));
    w.gap(6.0);
    if r.partial {
        let y = w.y - 12.0;
        w.page().fill_colour(1.0, 0.92, 0.92).stroke_colour(ALERT.0, ALERT.1, ALERT.2).line_width(1.5).rect(MARGIN - 4.0, y, WIDTH + 8.0, 22.0, true, true);
        w.y += 2.0;
        w.para(Font::Bold, 11.0, t(lang, "OFULLSTÄNDIGT SVAR: minst en region svarade inte. Se sammanfattningen.", "PARTIAL ANSWER: at least one region did not answer. See the summary."), ALERT);
        w.gap(8.0);
    }
    w.heading(2, 14.0, t(lang, "Sammanfattning", "Summary"));
    w.gap(2.0);
    for s in &r.summary {
        w.para(Font::Regular, 10.0, &format!("• {s}"), (0.0, 0.0, 0.0));
        w.gap(2.0);
    }
    if let Some(c) = &r.comment {
        w.gap(4.0);
        w.para(Font::Bold, 10.0, t(lang, "Kommentar", "Comment"), (0.0, 0.0, 0.0));
        w.para(Font::Regular, 10.0, c, (0.0, 0.0, 0.0));
    }
    w.gap(8.0);
    overview(&mut w, r);
    unassessed_list(&mut w, r);
    for ind in r.indicators.iter().filter(|i| i.unassessed != Some(Unassessed::Distribution)) {
        w.new_page();
        indicator_page(&mut w, r, ind);
    }
    if let Some(own) = &r.own {
        w.new_page();
        w.heading(2, 14.0, &format!("{}: {}", t(lang, "Egen källa", "Own source"), own.title));
        w.para(
            Font::Regular,
            9.0,
            t(lang, "Analytikerns egna aggregat, uppladdade till rapporten. De kommer inte från regionernas agenter och har inte skickats till dem.", "The analyst's own aggregates, uploaded to the report. They do not come from the regions' agents and were not sent to them."),
            (0.3, 0.3, 0.3),
        );
        w.gap(6.0);
        let cols = own.columns.len().max(1);
        let cw = vec![WIDTH / cols as f64; cols];
        table_row(&mut w, &own.columns.iter().map(|c| (c.clone(), BLACK)).collect::<Vec<_>>(), &cw, Font::Bold);
        for row in &own.rows {
            table_row(&mut w, &row.iter().map(|c| (c.clone(), BLACK)).collect::<Vec<_>>(), &cw, Font::Regular);
        }
    }
    w.new_page();
    appendix(&mut w, r);
    // Page numbers.
    let n = w.doc.page_count();
    for i in 0..n {
        let label = format!("{} {} {} {n}", t(lang, "Sida", "Page"), i + 1, t(lang, "av", "of"));
        if let Some(p) = w.doc.page_mut(i) {
            p.furniture().fill_colour(0.3, 0.3, 0.3).text_right(PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 28.0, Font::Regular, 8.0, &label);
            p.body();
        }
    }
    w.doc
}

const BLACK: (f64, f64, f64) = (0.0, 0.0, 0.0);

/// One table row whose cells wrap within their column (never cut); the row is as tall as its
/// tallest cell, and starts a new page when it does not fit.
fn table_row(w: &mut Writer, cells: &[(String, (f64, f64, f64))], widths: &[f64], font: Font) {
    const SIZE: f64 = 8.5;
    const LINE: f64 = 10.5;
    let lines: Vec<Vec<String>> = cells.iter().zip(widths).map(|((c, _), cw)| wrap(font, SIZE, c, cw - 6.0)).collect();
    let height = lines.iter().map(Vec::len).max().unwrap_or(1).max(1) as f64 * LINE + 2.0;
    if w.y + height > BOTTOM + 12.0 {
        w.new_page();
    }
    let y = w.y;
    let mut x = MARGIN;
    for ((cell_lines, (_, colour)), cw) in lines.iter().zip(cells).zip(widths) {
        for (n, line) in cell_lines.iter().enumerate() {
            w.page().fill_colour(colour.0, colour.1, colour.2).text(x, y + n as f64 * LINE, font, SIZE, line);
        }
        x += cw;
    }
    w.y += height;
    let rule = w.y - LINE + 1.0;
    w.page().stroke_colour(0.88, 0.88, 0.88).line_width(0.4).solid().line(MARGIN, rule, MARGIN + widths.iter().sum::<f64>(), rule);
}

/// A verdict's symbol and colour: the colour never carries the meaning alone.
fn marked(lang: Lang, code: &str) -> (String, (f64, f64, f64)) {
    let (symbol, colour) = match code {
        "better" | "improving" | "meets" => ("▲", TARGET),
        "worse" | "worsening" | "misses" => ("▼", ALERT),
        "higher" | "increasing" => ("↑", BLACK),
        "lower" | "decreasing" => ("↓", BLACK),
        "" => return ("–".into(), BLACK),
        _ => ("●", (0.3, 0.3, 0.3)),
    };
    (format!("{symbol} {}", words(lang, code)), colour)
}

/// Page one's scorecard: each indicator's value, against the others, against its target and
/// its trend, in words with a symbol.
fn overview(w: &mut Writer, r: &Report) {
    let lang = w.lang;
    w.heading(2, 14.0, t(lang, "Indikatorer", "Indicators"));
    w.gap(2.0);
    let widths = [165.0, 60.0, 55.0, 80.0, 70.0, 69.0];
    let header = [t(lang, "Indikator", "Indicator"), &*r.region_name, t(lang, "Övriga", "Others"), t(lang, "Mot övriga", "Against others"), t(lang, "Mot målnivå", "Against target"), t(lang, "Trend", "Trend")];
    table_row(w, &header.map(|h| (h.to_string(), BLACK)), &widths, Font::Bold);
    for ind in &r.indicators {
        let f = ind.focus.as_ref();
        let v = |x: Option<f64>| x.map(|x| fmt_value(ind.kind, x, lang)).unwrap_or_else(|| "–".into());
        let value = match (f.and_then(|f| f.value), ind.unassessed) {
            (Some(x), _) => fmt_value(ind.kind, x, lang),
            (None, Some(u)) => u.words(lang).to_string(),
            (None, None) => "–".into(),
        };
        let target = match (ind.target, ind.target_verdict) {
            (None, _) => ("–".to_string(), BLACK),
            (Some(tv), TargetVerdict::NotAssessed) => (format!("{} ({})", v(Some(tv)), t(lang, "ej bedömd", "not assessed")), BLACK),
            (Some(tv), verdict) => {
                let (text, colour) = marked(lang, verdict_code(verdict));
                (format!("{text} ({})", v(Some(tv))), colour)
            }
        };
        let cells = [
            (title(ind, lang).to_string(), BLACK),
            (value, BLACK),
            (v(f.and_then(|f| f.others_value)), BLACK),
            marked(lang, f.filter(|f| f.value.is_some()).and_then(|f| f.significance.as_deref()).unwrap_or("")),
            target,
            marked(lang, ind.change.as_ref().map(|c| c.flag.as_str()).filter(|f| *f != "not_computed").unwrap_or("")),
        ];
        table_row(w, &cells, &widths, Font::Regular);
    }
    w.para(Font::Regular, 7.5, t(lang, "▲ bättre än övriga / når målnivån / förbättras · ▼ sämre / under målnivån / försämras · ● ingen signifikant skillnad · – ej bedömd", "▲ better than the others / meets the target / improving · ▼ worse / short of the target / worsening · ● no significant difference · – not assessed"), (0.3, 0.3, 0.3));
}

/// What could not be assessed, and why, by name.
fn unassessed_list(w: &mut Writer, r: &Report) {
    let lang = w.lang;
    let groups = r.unassessed();
    if groups.is_empty() {
        return;
    }
    let n: usize = groups.iter().map(|(_, v)| v.len()).sum();
    w.gap(8.0);
    w.heading(2, 12.0, &format!("{} ({n} {} {})", t(lang, "Kunde inte bedömas", "Could not be assessed"), t(lang, "av", "of"), r.indicators.len()));
    for (why, inds) in groups {
        let names: Vec<&str> = inds.iter().map(|i| title(i, lang)).collect();
        w.para(Font::Regular, 9.0, &format!("• {}: {}", why.words(lang), names.join("; ")), BLACK);
    }
}

/// The provenance appendix: per indicator its recipe, each region's data and policy version
/// and the query ids; the only place ids and hashes are printed.
fn appendix(w: &mut Writer, r: &Report) {
    let lang = w.lang;
    w.heading(2, 14.0, t(lang, "Bilaga: ursprung", "Appendix: provenance"));
    w.para(Font::Regular, 8.5, t(lang, "Varje värde i rapporten kommer från en vanlig, skyddad och loggad fråga till regionernas agenter. Här står receptversion, varje regions data- och policyversion och frågornas id, för den som vill granska eller upprepa en fråga.", "Every value in the report comes from an ordinary, protected and logged question to the regions' agents. Here are the recipe version, each region's data and policy version and the questions' ids, for anyone who wants to review or repeat a question."), (0.3, 0.3, 0.3));
    w.gap(4.0);
    for ind in &r.indicators {
        w.para(Font::Bold, 9.0, &format!("{} ({})", title(ind, lang), if ind.recipe.is_empty() { &ind.id } else { &ind.recipe }), BLACK);
        let sources: Vec<String> = ind
            .sources
            .iter()
            .map(|s| format!("{} {} ({} {}, {} {})", s.name, words(lang, s.status.name()), t(lang, "data", "data"), s.data_version.as_deref().unwrap_or("–"), t(lang, "policy", "policy"), s.policy_version.as_deref().unwrap_or("–")))
            .collect();
        if !sources.is_empty() {
            w.para(Font::Regular, 8.0, &format!("{}: {}", t(lang, "Källor", "Sources"), sources.join("; ")), (0.3, 0.3, 0.3));
        }
        if !ind.query_ids.is_empty() {
            w.para(Font::Regular, 8.0, &format!("{}: {}", t(lang, "Fråge-id", "Query ids"), ind.query_ids.join(", ")), (0.3, 0.3, 0.3));
        }
        if let Some(e) = &ind.error {
            w.para(Font::Regular, 8.0, &format!("{}: {e}", t(lang, "Fel", "Error")), (0.3, 0.3, 0.3));
        }
        w.gap(3.0);
    }
}

/// The value axis of a chart: a range covering every interval and the target, with ticks.
fn axis(kind: Option<Kind>, values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-9);
    let (mut lo, mut hi) = (lo - pad, hi + pad);
    if kind == Some(Kind::Proportion) {
        lo = lo.max(0.0);
        hi = hi.min(1.0);
    } else if lo < 0.0 && lo + pad >= 0.0 {
        lo = 0.0;
    }
    (lo, hi)
}

fn indicator_page(w: &mut Writer, r: &Report, ind: &ReportIndicator) {
    let lang = w.lang;
    w.heading(2, 15.0, title(ind, lang));
    if !ind.axis.is_empty() {
        w.para(Font::Regular, 8.5, &ind.axis, (0.3, 0.3, 0.3));
    }
    if let Some(d) = &ind.followup_through {
        w.para(Font::Regular, 8.5, &vocabulary::note_with(vocabulary::Note::FollowupThrough, d, lang), (0.3, 0.3, 0.3));
    }
    if ind.error.is_some() {
        w.gap(4.0);
        w.para(Font::Bold, 10.0, t(lang, "Frågan kunde inte besvaras helt; felet står i bilagan.", "The question could not be answered in full; the error is in the appendix."), ALERT);
    }
    if !ind.missing.is_empty() {
        w.gap(4.0);
        w.para(Font::Bold, 10.0, &format!("{}: {}", t(lang, "OFULLSTÄNDIGT – svarade inte", "PARTIAL – did not answer"), ind.missing.join(", ")), ALERT);
    }
    w.gap(6.0);
    // Flags of the report's region.
    let f = ind.focus.as_ref();
    let mut flags = Vec::new();
    if let Some(s) = f.and_then(|f| f.significance.as_deref()) {
        flags.push(format!("{}: {}", t(lang, "mot övriga regioner", "against the other regions"), words(lang, s)));
    }
    if ind.target_verdict != TargetVerdict::NotAssessed {
        flags.push(words(lang, verdict_code(ind.target_verdict)));
    }
    if let Some(c) = &ind.change {
        flags.push(format!("{}: {}", t(lang, "trend", "trend"), words(lang, &c.flag)));
    }
    if !flags.is_empty() {
        w.para(Font::Bold, 10.0, &format!("{}: {}", r.region_name, flags.join(" · ")), FOCUS);
        w.gap(4.0);
    }
    if let Some(c) = &ind.comment {
        w.para(Font::Bold, 9.5, t(lang, "Kommentar", "Comment"), BLACK);
        w.para(Font::Regular, 9.5, c, BLACK);
        w.gap(4.0);
    }
    if let Some(e) = &ind.evaluation {
        // An evaluation: the design, the verdict in words, the heterogeneity; the chart is
        // a forest plot (each region's effect, the random-effects estimate); no trend.
        w.para(Font::Regular, 9.0, vocabulary::evaluation_word(&format!("design.{}", e.design), lang), BLACK);
        w.gap(3.0);
        w.para(Font::Bold, 10.0, vocabulary::consistency_statement(&e.consistency, lang), BLACK);
        if let (Some(i2), Some(lo), Some(hi)) = (e.i2, e.i2_lower, e.i2_upper) {
            let pct = |x: f64| format!("{} %", vocabulary::format_number(100.0 * x, 0, lang));
            let mut line = format!("I² {} ({}–{}), {} {}", pct(i2), pct(lo), pct(hi), e.k, vocabulary::evaluation_word("regions", lang));
            if let Some((a, b)) = e.prediction {
                line.push_str(&format!("; {}: {} – {}", vocabulary::evaluation_word("prediction", lang), vocabulary::format_outcome(&e.outcome, a, lang), vocabulary::format_outcome(&e.outcome, b, lang)));
            }
            w.para(Font::Regular, 8.5, &line, (0.3, 0.3, 0.3));
        }
        w.gap(6.0);
        comparison_chart(w, r, ind);
        w.gap(8.0);
    } else {
        comparison_chart(w, r, ind);
        w.gap(10.0);
        trend_chart(w, r, ind);
        w.gap(8.0);
    }
    if let Some(target) = ind.target {
        w.para(Font::Regular, 8.0, &format!("{} {}: {}", t(lang, "Målnivå", "Target"), fmt_value(ind.kind, target, lang), ind.target_source.as_deref().unwrap_or("")), (0.3, 0.3, 0.3));
    }
    if let Some(d) = &ind.declaration {
        w.para(Font::Regular, 8.0, d, (0.3, 0.3, 0.3));
    }
    let sources: Vec<String> = ind.sources.iter().map(|s| format!("{} {}", s.name, words(lang, s.status.name()))).collect();
    if !sources.is_empty() {
        w.para(Font::Regular, 8.0, &format!("{}: {} ({})", t(lang, "Källor", "Sources"), sources.join(", "), t(lang, "versioner i bilagan", "versions in the appendix")), (0.3, 0.3, 0.3));
    }
}

fn comparison_chart(w: &mut Writer, r: &Report, ind: &ReportIndicator) {
    let lang = w.lang;
    // An evaluation's effects with their outcome's decimals (a tenth of a stay shows).
    let fv = |v: f64| match &ind.evaluation {
        Some(e) => vocabulary::format_outcome(&e.outcome, v, lang),
        None => fmt_value(ind.kind, v, lang),
    };
    let heading = if ind.evaluation.is_some() {
        t(lang, "Effekt per region och sammanvägd effekt, 95 % konfidensintervall", "Effect by region and pooled effect, 95% confidence intervals")
    } else {
        t(lang, "Jämförelse mellan regionerna, 95 % konfidensintervall", "Comparison of the regions, 95% confidence intervals")
    };
    w.para(Font::Bold, 11.0, &format!("{} ({})", heading, r.period.replace("..", "–")), (0.0, 0.0, 0.0));
    // Published values (Riket, other regions) as their own rows after the regions, marked.
    let published: Vec<RegionValue> = ind
        .national
        .iter()
        .map(|n| RegionValue {
            region: String::new(),
            region_name: format!("{} ({})", n.group, n.source),
            row: "published".into(),
            numerator: None,
            denominator: None,
            value: Some(n.value),
            lower: n.lower,
            upper: n.upper,
            significance: None,
            others_value: None,
            status: "published".into(),
            note: None,
        })
        .collect();
    let rows: Vec<&RegionValue> = ind.regions.iter().chain(published.iter()).collect();
    let withheld = rows.iter().filter(|v| v.value.is_none()).count();
    if rows.is_empty() || withheld == rows.len() {
        w.para(Font::Regular, 9.0, &format!("{} ({} {} {} {})", t(lang, "Inga värden att visa", "No values to show"), withheld, t(lang, "av", "of"), rows.len(), t(lang, "ej redovisade", "not released")), (0.3, 0.3, 0.3));
        return;
    }
    let (lo, hi) = axis(ind.kind, rows.iter().flat_map(|v| [v.lower, v.upper, v.value]).flatten().chain(ind.target));
    let label_w = 150.0;
    let value_w = 120.0;
    let x0 = MARGIN + label_w;
    let plot_w = WIDTH - label_w - value_w;
    let sx = |v: f64| x0 + (v - lo) / (hi - lo) * plot_w;
    let row_h = 16.0;
    let top = w.y;
    let height = rows.len() as f64 * row_h + 6.0;
    if top + height + 20.0 > BOTTOM {
        w.new_page();
    }
    let top = w.y;
    let alt: Vec<String> = rows
        .iter()
        .map(|v| match (v.value, v.lower, v.upper) {
            (Some(val), Some(l), Some(u)) => format!("{} {} ({}–{})", v.region_name, fv(val), fv(l), fv(u)),
            (Some(val), _, _) => format!("{} {}", v.region_name, fv(val)),
            (None, _, _) => format!("{}: {}", v.region_name, words(lang, &v.status)),
        })
        .collect();
    let alt = format!("{}: {}", t(lang, "Diagram, värde och 95 % konfidensintervall per region", "Chart, value and 95% confidence interval by region"), alt.join("; "));
    let p = w.page();
    p.figure(&alt);
    p.stroke_colour(0.75, 0.75, 0.75).line_width(0.5).solid().rect(x0, top - 4.0, plot_w, height, false, true);
    for (i, v) in rows.iter().enumerate() {
        let y = top + 8.0 + i as f64 * row_h;
        let focus = v.row == "region" && v.region == r.region;
        let colour = if focus { FOCUS } else if v.row == "published" { PUBLISHED } else { OTHER };
        let name = if v.row == "pooled" && ind.evaluation.is_none() { format!("{} ({})", v.region_name, t(lang, "sammanvägt", "pooled")) } else { v.region_name.clone() };
        p.fill_colour(0.0, 0.0, 0.0).text(MARGIN, y + 3.0, if focus { Font::Bold } else { Font::Regular }, 9.0, &name);
        match (v.value, v.lower, v.upper) {
            (Some(val), lower, upper) => {
                if let (Some(l), Some(u)) = (lower, upper) {
                    p.stroke_colour(colour.0, colour.1, colour.2).line_width(1.5).solid().line(sx(l), y, sx(u), y);
                    p.line(sx(l), y - 3.0, sx(l), y + 3.0).line(sx(u), y - 3.0, sx(u), y + 3.0);
                }
                if v.row == "pooled" {
                    p.fill_colour(1.0, 1.0, 1.0).stroke_colour(0.0, 0.0, 0.0).line_width(1.0).rect(sx(val) - 3.5, y - 3.5, 7.0, 7.0, true, true);
                } else if v.row == "published" {
                    p.fill_colour(PUBLISHED.0, PUBLISHED.1, PUBLISHED.2).stroke_colour(PUBLISHED.0, PUBLISHED.1, PUBLISHED.2).polyline(&[(sx(val), y - 4.5), (sx(val) + 4.5, y), (sx(val), y + 4.5), (sx(val) - 4.5, y), (sx(val), y - 4.5)]);
                } else {
                    p.fill_colour(colour.0, colour.1, colour.2).circle(sx(val), y, 3.5, true, false);
                }
                let text = match (lower, upper) {
                    (Some(l), Some(u)) => format!("{} ({}–{})", fv(val), fv(l), fv(u)),
                    _ => fv(val),
                };
                p.fill_colour(0.0, 0.0, 0.0).text(x0 + plot_w + 6.0, y + 3.0, Font::Regular, 8.0, &text);
            }
            (None, _, _) => {
                // Marked where the value is missing, the reason as a footnote below.
                p.fill_colour(ALERT.0, ALERT.1, ALERT.2).text(x0 + 4.0, y + 3.0, Font::Regular, 8.0, &format!("× {} ¹", t(lang, "ej redovisad", "not released")));
            }
        }
    }
    if let Some(target) = ind.target.filter(|t| *t >= lo && *t <= hi) {
        p.stroke_colour(TARGET.0, TARGET.1, TARGET.2).line_width(1.2).dash(4.0, 2.0).line(sx(target), top - 4.0, sx(target), top - 4.0 + height).solid();
        p.fill_colour(TARGET.0, TARGET.1, TARGET.2).text_centre(sx(target), top + height + 6.0, Font::Regular, 7.5, &format!("{} {}", t(lang, "målnivå", "target"), fmt_value(ind.kind, target, lang)));
    }
    p.fill_colour(0.3, 0.3, 0.3).text(x0, top + height + 6.0, Font::Regular, 7.5, &fv(lo)).text_right(x0 + plot_w, top + height + 6.0, Font::Regular, 7.5, &fv(hi));
    p.body();
    w.y = top + height + 18.0;
    if withheld > 0 {
        let reasons: BTreeSet<String> = rows.iter().filter(|v| v.value.is_none()).filter_map(|v| v.note.as_deref()).map(|n| vocabulary::analysis_note(n, lang)).collect();
        let reasons: Vec<String> = reasons.into_iter().collect();
        w.para(Font::Regular, 8.0, &format!("¹ {withheld} {} {} {}: {}", t(lang, "av", "of"), rows.len(), t(lang, "värden ej redovisade", "values not released"), reasons.join("; ")), (0.3, 0.3, 0.3));
    }
}

fn trend_chart(w: &mut Writer, r: &Report, ind: &ReportIndicator) {
    let lang = w.lang;
    w.para(Font::Bold, 11.0, t(lang, "Utveckling per år", "Yearly trend"), (0.0, 0.0, 0.0));
    let years: Vec<i64> = {
        let mut y: Vec<i64> = ind.trend.iter().map(|p| p.year).collect();
        y.sort();
        y.dedup();
        y
    };
    if years.is_empty() {
        w.para(Font::Regular, 9.0, t(lang, "Ingen trend (inga årsvärden).", "No trend (no yearly values)."), (0.3, 0.3, 0.3));
        return;
    }
    // The focus region first, then the others, then the pooled value.
    let mut series: Vec<(String, String, bool)> = Vec::new();
    for p in &ind.trend {
        if !series.iter().any(|(code, _, _)| *code == p.region) {
            series.push((p.region.clone(), p.region_name.clone(), p.row == "pooled"));
        }
    }
    series.sort_by_key(|(code, _, pooled)| (*code != r.region, *pooled));
    let (lo, hi) = axis(ind.kind, ind.trend.iter().flat_map(|p| [p.value]).flatten().chain(ind.target));
    let height = 150.0;
    let legend_w = 130.0;
    let plot_w = WIDTH - legend_w - 40.0;
    let x0 = MARGIN + 40.0;
    if w.y + height + 30.0 > BOTTOM {
        w.new_page();
    }
    let top = w.y;
    let sx = |year: i64| if years.len() == 1 { x0 + plot_w / 2.0 } else { x0 + (year - years[0]) as f64 / (years[years.len() - 1] - years[0]) as f64 * plot_w };
    let sy = |v: f64| top + height - (v - lo) / (hi - lo) * height;
    let alt: Vec<String> = series
        .iter()
        .map(|(code, name, _)| {
            let points: Vec<String> = ind.trend.iter().filter(|p| &p.region == code).filter_map(|p| p.value.map(|v| format!("{} {}", p.year, fmt_value(ind.kind, v, lang)))).collect();
            format!("{name}: {}", points.join(", "))
        })
        .collect();
    let alt = format!("{}: {}", t(lang, "Linjediagram, värde per år", "Line chart, value by year"), alt.join("; "));
    let p = w.page();
    p.figure(&alt);
    p.stroke_colour(0.75, 0.75, 0.75).line_width(0.5).solid().rect(x0, top, plot_w, height, false, true);
    for year in &years {
        p.fill_colour(0.3, 0.3, 0.3).text_centre(sx(*year), top + height + 10.0, Font::Regular, 7.5, &year.to_string());
    }
    p.text_right(x0 - 4.0, top + 6.0, Font::Regular, 7.5, &fmt_value(ind.kind, hi, lang)).text_right(x0 - 4.0, top + height, Font::Regular, 7.5, &fmt_value(ind.kind, lo, lang));
    if let Some(target) = ind.target.filter(|t| *t >= lo && *t <= hi) {
        p.stroke_colour(TARGET.0, TARGET.1, TARGET.2).line_width(1.0).dash(4.0, 2.0).line(x0, sy(target), x0 + plot_w, sy(target)).solid();
    }
    for (i, (code, name, pooled)) in series.iter().enumerate() {
        let colour = SERIES[i.min(SERIES.len() - 1)];
        let points: Vec<(f64, f64)> = ind.trend.iter().filter(|p| &p.region == code).filter_map(|p| p.value.map(|v| (sx(p.year), sy(v)))).collect();
        let focus = code == &r.region;
        p.stroke_colour(colour.0, colour.1, colour.2).line_width(if focus { 2.2 } else { 1.0 });
        if *pooled {
            p.dash(2.0, 2.0);
        }
        p.polyline(&points).solid();
        p.fill_colour(colour.0, colour.1, colour.2);
        for (x, y) in &points {
            p.circle(*x, *y, if focus { 2.8 } else { 1.8 }, true, false);
        }
        let ly = top + 8.0 + i as f64 * 12.0;
        p.stroke_colour(colour.0, colour.1, colour.2).line_width(if focus { 2.2 } else { 1.0 }).line(x0 + plot_w + 10.0, ly - 3.0, x0 + plot_w + 24.0, ly - 3.0);
        p.fill_colour(0.0, 0.0, 0.0).text(x0 + plot_w + 28.0, ly, if focus { Font::Bold } else { Font::Regular }, 8.0, name);
    }
    p.body();
    w.y = top + height + 24.0;
    if let Some(c) = &ind.change {
        let change = crate::report::summary::change_text(ind.kind, c, lang).map(|s| format!(" — {s}")).unwrap_or_default();
        w.para(Font::Regular, 9.0, &format!("{}: {}{change}", r.region_name, words(lang, &c.flag)), (0.0, 0.0, 0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Change, TrendPoint};

    fn region(code: &str, name: &str, v: f64) -> RegionValue {
        RegionValue {
            region: code.into(),
            region_name: name.into(),
            row: "region".into(),
            numerator: Some(10),
            denominator: Some(100),
            value: Some(v),
            lower: Some(v - 0.05),
            upper: Some(v + 0.05),
            significance: Some("better".into()),
            others_value: Some(0.1),
            status: "released".into(),
            note: None,
        }
    }

    fn report(indicators: usize, own: bool) -> Report {
        let ind = |i: usize| ReportIndicator {
            id: format!("ind{i}"),
            recipe: format!("ind{i}@1"),
            title: format!("Indicator {i}"),
            title_sv: format!("Indikator {i} – åäö"),
            kind: Some(Kind::Proportion),
            value: "share".into(),
            better: Some("higher".into()),
            target: Some(0.2),
            target_source: Some("source".into()),
            regions: vec![region("24", "Västerbotten", 0.3), region("25", "Norrbotten", 0.1)],
            trend: (2021..=2025).map(|y| TrendPoint { region: "24".into(), region_name: "Västerbotten".into(), row: "region".into(), year: y, value: Some(0.2 + 0.01 * (y - 2021) as f64), lower: None, upper: None, status: "released".into() }).collect(),
            change: Some(Change { change: Some(1.1), lower: Some(1.0), upper: Some(1.2), unit: Some("odds ratio per year".into()), yearly: Some(1.25), yearly_lower: Some(0.1), yearly_upper: Some(2.4), flag: "improving".into(), note: None }),
            focus: Some(region("24", "Västerbotten", 0.3)),
            target_verdict: TargetVerdict::Meets,
            missing: vec![],
            sources: vec![],
            query_ids: vec!["q1".into()],
            error: None,
            followup_through: None,
            unassessed: None,
            comment: None,
            national: Vec::new(),
            declaration: None,
            evaluation: None,
            axis: "Andel (%)".into(),
        };
        let mut r = Report {
            region: "24".into(),
            region_name: "Västerbotten".into(),
            period: "2021..2025".into(),
            lang: Lang::Sv,
            generated: "2026-12-06T00:00:00Z".into(),
            summary: vec![],
            indicators: (0..indicators).map(ind).collect(),
            own: own.then(|| crate::report::OwnTable { title: "egna.csv".into(), columns: vec!["a".into()], rows: vec![vec!["1".into()]] }),
            partial: false,
            comment: None,
            data_through: Some(2025),
        };
        r.summary = crate::report::summarise(&r);
        r
    }

    #[test]
    fn a_report_has_a_summary_page_and_one_page_per_indicator() {
        assert_eq!(layout(&report(3, false)).page_count(), 5, "1 summary page + 3 indicators + the appendix");
        let doc = layout(&report(2, true));
        assert_eq!(doc.page_count(), 5, "1 + 2 + the own table + the appendix");
        // Ids only in the appendix (the last page), the change per year in procentenheter.
        let pages = doc.pages();
        let before: Vec<&str> = pages[..pages.len() - 1].iter().flat_map(|p| p.texts()).collect();
        assert!(!before.iter().any(|t| t.contains("q1") || t.contains("ind0@1")), "{before:?}");
        assert!(pages[pages.len() - 1].texts().any(|t| t.contains("q1")));
        assert!(before.iter().any(|t| t.contains("procentenheter per år")), "{before:?}");
        assert!(!before.iter().any(|t| t.ends_with('…')), "no cell is cut");
        // The region's name is in the text, as written.
        assert!(doc.pages().iter().flat_map(|p| p.texts()).any(|t| t.contains("Västerbotten")));
        let pdf = render(&report(2, true)).unwrap();
        assert!(pdf.starts_with(b"%PDF-") && pdf.windows(15).any(|w| w == b"/StructTreeRoot"));
    }
}
