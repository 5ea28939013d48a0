//! A regional report as an A4 PDF: a first page with the summary and an overview of every
//! indicator, then one page per indicator (the comparison of the regions with 95 %
//! intervals, the pooled value and the target; the yearly trend; the region's flags and the
//! provenance), then the analyst's own table. The same content and order as the web app's
//! printable report page.

use norrsken_model::catalog::Kind;
use norrsken_model::vocabulary;
use super::pdf::{text_width, wrap, Document, Font, Page, PAGE_HEIGHT, PAGE_WIDTH};
use crate::report::summary::{fmt_value, title};
use crate::report::{Lang, Report, ReportIndicator, TargetVerdict};

const MARGIN: f64 = 48.0;
const WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN;
const BOTTOM: f64 = PAGE_HEIGHT - 60.0;
/// The focus region's colour (dark blue) and the others' (grey); the target's (green).
const FOCUS: (f64, f64, f64) = (0.05, 0.28, 0.55);
const OTHER: (f64, f64, f64) = (0.45, 0.45, 0.45);
const TARGET: (f64, f64, f64) = (0.0, 0.45, 0.2);
const ALERT: (f64, f64, f64) = (0.7, 0.05, 0.05);
/// Colours of the trend lines, the focus region first (dark enough on white, WCAG AA).
const SERIES: [(f64, f64, f64); 5] = [FOCUS, (0.75, 0.35, 0.0), (0.45, 0.2, 0.55), (0.0, 0.45, 0.45), (0.35, 0.35, 0.35)];

fn t<'a>(lang: Lang, sv: &'a str, en: &'a str) -> &'a str {
    if lang == Lang::Sv { sv } else { en }
}

/// Words for an analysis verdict.
pub fn words(lang: Lang, code: &str) -> String {
    let (sv, en) = match code {
        "better" => ("bättre", "better"),
        "worse" => ("sämre", "worse"),
        "higher" => ("högre", "higher"),
        "lower" => ("lägre", "lower"),
        "similar" => ("ingen signifikant skillnad", "no significant difference"),
        "not_compared" => ("ej jämförd", "not compared"),
        "improving" => ("förbättras", "improving"),
        "worsening" => ("försämras", "worsening"),
        "increasing" => ("ökar", "increasing"),
        "decreasing" => ("minskar", "decreasing"),
        "no_significant_change" => ("ingen signifikant förändring", "no significant change"),
        "not_computed" => ("ej beräknad", "not computed"),
        "meets" => ("når målnivån", "meets the target"),
        "misses" => ("under målnivån", "short of the target"),
        "uncertain" => ("osäkert mot målnivån", "uncertain against the target"),
        other => {
            // Cell statuses and reason codes: the shared vocabulary.
            if let Some(s) = norrsken_model::answer::CellStatus::parse(other) {
                return vocabulary::status(s, lang).to_string();
            }
            if let Some(r) = norrsken_model::answer::Reason::parse(other) {
                return vocabulary::reason(r, lang).to_string();
            }
            return other.to_string();
        }
    };
    t(lang, sv, en).to_string()
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
    w.para(Font::Regular, 11.0, &format!("{} · {} {period} · {} {}", t(lang, "Norra sjukvårdsregionen", "Norra sjukvårdsregionen"), t(lang, "period", "period"), t(lang, "skapad", "generated"), vocabulary::format_timestamp(&r.generated, lang)), (0.2, 0.2, 0.2));
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
    w.gap(8.0);
    overview(&mut w, r);
    for ind in &r.indicators {
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
        let cw = WIDTH / cols as f64;
        let header: Vec<String> = own.columns.clone();
        table_row(&mut w, &header, cw, Font::Bold);
        for row in &own.rows {
            table_row(&mut w, row, cw, Font::Regular);
        }
    }
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

fn clip(font: Font, size: f64, s: &str, width: f64) -> String {
    if text_width(font, size, s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if text_width(font, size, &format!("{out}{c}…")) > width {
            break;
        }
        out.push(c);
    }
    format!("{out}…")
}

fn table_row(w: &mut Writer, cells: &[String], cw: f64, font: Font) {
    if w.y > BOTTOM {
        w.new_page();
    }
    let y = w.y;
    let p = w.page();
    p.fill_colour(0.0, 0.0, 0.0);
    for (i, c) in cells.iter().enumerate() {
        p.text(MARGIN + i as f64 * cw, y, font, 8.5, &clip(font, 8.5, c, cw - 4.0));
    }
    w.y += 12.0;
}

fn overview(w: &mut Writer, r: &Report) {
    let lang = w.lang;
    w.para(Font::Bold, 14.0, t(lang, "Indikatorer", "Indicators"), (0.0, 0.0, 0.0));
    w.gap(2.0);
    let cols = [
        (t(lang, "Indikator", "Indicator"), 190.0),
        (&*r.region_name, 60.0),
        (t(lang, "Övriga", "Others"), 55.0),
        (t(lang, "Mot övriga", "Against others"), 70.0),
        (t(lang, "Målnivå", "Target"), 55.0),
        (t(lang, "Trend", "Trend"), 69.0),
    ];
    let mut x = MARGIN;
    let y = w.y;
    for (h, cw) in cols {
        w.page().fill_colour(0.0, 0.0, 0.0).text(x, y, Font::Bold, 8.5, &clip(Font::Bold, 8.5, h, cw - 4.0));
        x += cw;
    }
    w.y += 12.0;
    for ind in &r.indicators {
        let f = ind.focus.as_ref();
        let v = |x: Option<f64>| x.map(|x| fmt_value(ind.kind, x, lang)).unwrap_or_else(|| "–".into());
        let cells = [
            title(ind, lang).to_string(),
            v(f.and_then(|f| f.value)),
            v(f.and_then(|f| f.others_value)),
            f.and_then(|f| f.significance.as_deref()).map(|s| words(lang, s)).unwrap_or_else(|| "–".into()),
            match (ind.target, ind.target_verdict) {
                (Some(tv), TargetVerdict::NotAssessed) => v(Some(tv)),
                (Some(tv), verdict) => format!("{} ({})", v(Some(tv)), words(lang, verdict_code(verdict))),
                (None, _) => "–".into(),
            },
            ind.change.as_ref().map(|c| words(lang, &c.flag)).unwrap_or_else(|| "–".into()),
        ];
        if w.y > BOTTOM {
            w.new_page();
        }
        let y = w.y;
        let mut x = MARGIN;
        for (i, ((_, cw), c)) in cols.iter().zip(cells.iter()).enumerate() {
            let colour = match c.as_str() {
                s if i >= 3 && (s.starts_with(&words(lang, "worse")) || s.contains(&words(lang, "misses")) || s == words(lang, "worsening")) => ALERT,
                s if i >= 3 && (s.starts_with(&words(lang, "better")) || s == words(lang, "improving")) => TARGET,
                _ => (0.0, 0.0, 0.0),
            };
            w.page().fill_colour(colour.0, colour.1, colour.2).text(x, y, Font::Regular, 8.5, &clip(Font::Regular, 8.5, c, cw - 4.0));
            x += cw;
        }
        w.y += 12.0;
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
    w.para(Font::Bold, 15.0, title(ind, lang), (0.0, 0.0, 0.0));
    w.para(Font::Regular, 8.5, &format!("{} · {}", ind.recipe, ind.value), (0.3, 0.3, 0.3));
    if let Some(d) = &ind.followup_through {
        w.para(Font::Regular, 8.5, &vocabulary::note_with(vocabulary::Note::FollowupThrough, d, lang), (0.3, 0.3, 0.3));
    }
    if let Some(e) = &ind.error {
        w.gap(4.0);
        w.para(Font::Bold, 10.0, &format!("{}: {e}", t(lang, "Kunde inte besvaras helt", "Could not be answered in full")), ALERT);
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
    comparison_chart(w, r, ind);
    w.gap(10.0);
    trend_chart(w, r, ind);
    w.gap(8.0);
    if let Some(target) = ind.target {
        w.para(Font::Regular, 8.0, &format!("{} {}: {}", t(lang, "Målnivå", "Target"), fmt_value(ind.kind, target, lang), ind.target_source.as_deref().unwrap_or("")), (0.3, 0.3, 0.3));
    }
    let sources: Vec<String> = ind
        .sources
        .iter()
        .map(|s| format!("{} {} ({} {}, {} {})", s.name, words(lang, s.status.name()), t(lang, "data", "data"), s.data_version.as_deref().unwrap_or("–"), t(lang, "policy", "policy"), s.policy_version.as_deref().unwrap_or("–")))
        .collect();
    w.para(Font::Regular, 8.0, &format!("{}: {}", t(lang, "Källor", "Sources"), sources.join("; ")), (0.3, 0.3, 0.3));
    w.para(Font::Regular, 8.0, &format!("{}: {}", t(lang, "Fråge-id", "Query ids"), ind.query_ids.join(", ")), (0.3, 0.3, 0.3));
}

fn comparison_chart(w: &mut Writer, r: &Report, ind: &ReportIndicator) {
    let lang = w.lang;
    w.para(Font::Bold, 11.0, &format!("{} ({})", t(lang, "Jämförelse mellan regionerna, 95 % konfidensintervall", "Comparison of the regions, 95% confidence intervals"), r.period.replace("..", "–")), (0.0, 0.0, 0.0));
    let rows: Vec<_> = ind.regions.iter().collect();
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
            (Some(val), Some(l), Some(u)) => format!("{} {} ({}–{})", v.region_name, fmt_value(ind.kind, val, lang), fmt_value(ind.kind, l, lang), fmt_value(ind.kind, u, lang)),
            (Some(val), _, _) => format!("{} {}", v.region_name, fmt_value(ind.kind, val, lang)),
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
        let colour = if focus { FOCUS } else { OTHER };
        let name = if v.row == "pooled" { format!("{} ({})", v.region_name, t(lang, "sammanvägt", "pooled")) } else { v.region_name.clone() };
        p.fill_colour(0.0, 0.0, 0.0).text(MARGIN, y + 3.0, if focus { Font::Bold } else { Font::Regular }, 9.0, &clip(Font::Regular, 9.0, &name, label_w - 6.0));
        match (v.value, v.lower, v.upper) {
            (Some(val), lower, upper) => {
                if let (Some(l), Some(u)) = (lower, upper) {
                    p.stroke_colour(colour.0, colour.1, colour.2).line_width(1.5).solid().line(sx(l), y, sx(u), y);
                    p.line(sx(l), y - 3.0, sx(l), y + 3.0).line(sx(u), y - 3.0, sx(u), y + 3.0);
                }
                if v.row == "pooled" {
                    p.fill_colour(1.0, 1.0, 1.0).stroke_colour(0.0, 0.0, 0.0).line_width(1.0).rect(sx(val) - 3.5, y - 3.5, 7.0, 7.0, true, true);
                } else {
                    p.fill_colour(colour.0, colour.1, colour.2).circle(sx(val), y, 3.5, true, false);
                }
                let text = match (lower, upper) {
                    (Some(l), Some(u)) => format!("{} ({}–{})", fmt_value(ind.kind, val, lang), fmt_value(ind.kind, l, lang), fmt_value(ind.kind, u, lang)),
                    _ => fmt_value(ind.kind, val, lang),
                };
                p.fill_colour(0.0, 0.0, 0.0).text(x0 + plot_w + 6.0, y + 3.0, Font::Regular, 8.0, &text);
            }
            (None, _, _) => {
                p.fill_colour(ALERT.0, ALERT.1, ALERT.2).text(x0 + 4.0, y + 3.0, Font::Regular, 8.0, &format!("{}: {}", words(lang, &v.status), v.note.as_deref().unwrap_or("")));
            }
        }
    }
    if let Some(target) = ind.target.filter(|t| *t >= lo && *t <= hi) {
        p.stroke_colour(TARGET.0, TARGET.1, TARGET.2).line_width(1.2).dash(4.0, 2.0).line(sx(target), top - 4.0, sx(target), top - 4.0 + height).solid();
        p.fill_colour(TARGET.0, TARGET.1, TARGET.2).text_centre(sx(target), top + height + 6.0, Font::Regular, 7.5, &format!("{} {}", t(lang, "målnivå", "target"), fmt_value(ind.kind, target, lang)));
    }
    p.fill_colour(0.3, 0.3, 0.3).text(x0, top + height + 6.0, Font::Regular, 7.5, &fmt_value(ind.kind, lo, lang)).text_right(x0 + plot_w, top + height + 6.0, Font::Regular, 7.5, &fmt_value(ind.kind, hi, lang));
    p.body();
    w.y = top + height + 18.0;
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
        p.fill_colour(0.0, 0.0, 0.0).text(x0 + plot_w + 28.0, ly, if focus { Font::Bold } else { Font::Regular }, 8.0, &clip(Font::Regular, 8.0, name, legend_w - 30.0));
    }
    p.body();
    w.y = top + height + 24.0;
    if let Some(c) = &ind.change {
        let change = match (c.change, c.lower, c.upper) {
            (Some(x), Some(l), Some(u)) => format!(" — {} {x:.3} ({l:.3}–{u:.3}) {}", t(lang, "förändring per år", "change per year"), c.unit.as_deref().unwrap_or("")),
            _ => String::new(),
        };
        w.para(Font::Regular, 9.0, &format!("{}: {}{change}", r.region_name, words(lang, &c.flag)), (0.0, 0.0, 0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Change, RegionValue, TrendPoint};

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
            change: Some(Change { change: Some(1.1), lower: Some(1.0), upper: Some(1.2), unit: Some("odds ratio per year".into()), flag: "improving".into(), note: None }),
            focus: Some(region("24", "Västerbotten", 0.3)),
            target_verdict: TargetVerdict::Meets,
            missing: vec![],
            sources: vec![],
            query_ids: vec!["q1".into()],
            error: None,
            followup_through: None,
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
        };
        r.summary = crate::report::summarise(&r);
        r
    }

    #[test]
    fn a_report_has_a_summary_page_and_one_page_per_indicator() {
        assert_eq!(layout(&report(3, false)).page_count(), 4, "1 summary page + 3 indicators");
        let doc = layout(&report(2, true));
        assert_eq!(doc.page_count(), 4, "1 + 2 + the own table");
        // The region's name is in the text, as written.
        assert!(doc.pages().iter().flat_map(|p| p.texts()).any(|t| t.contains("Västerbotten")));
        let pdf = render(&report(2, true)).unwrap();
        assert!(pdf.starts_with(b"%PDF-") && pdf.windows(15).any(|w| w == b"/StructTreeRoot"));
    }
}
