//! Printable A4 pages as a tagged PDF with an embedded Unicode font, on krilla.
//!
//! - Pages are A4 portrait ([`PAGE_WIDTH`] x [`PAGE_HEIGHT`] points). Every coordinate is in
//!   points with the origin at the TOP-LEFT corner of the page and y growing downwards.
//! - Text is set in DejaVu Sans (regular and bold, from the `dejavu` crate), embedded and
//!   subset, so every letter prints as written: Swedish and Sámi letters (å ä ö, ŋ đ ŧ š
//!   ž č), ≤ ≥ − ×, and text extracts back to the same characters (each font has its
//!   Unicode map). [`text_width`] and [`wrap`] measure with the font's own advance widths.
//! - The document is tagged for accessibility (PDF/UA's structure): a text is a paragraph
//!   (`P`) or a heading (`H1`, `H2`) in reading order, a chart is a `Figure` with its
//!   alternative text, page headers, page numbers and table rules are artifacts. The
//!   document carries its title and language.
//! - Colours are RGB components in 0..1; the fill colour is also the text colour.
//!
//! Bad numbers never panic: NaN or infinite values are drawn at 0.

use std::num::NonZeroU16;

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::tagging::{ArtifactType, ContentTag, SpanTag, Tag, TagGroup, TagTree};
use krilla::text::TextDirection;
use skrifa::instance::{LocationRef, Size};
use skrifa::MetadataProvider;

/// A4 width in points.
pub const PAGE_WIDTH: f64 = 595.28;
/// A4 height in points.
pub const PAGE_HEIGHT: f64 = 841.89;

/// Bézier control-point factor for a quarter circle.
const KAPPA: f64 = 0.552_284_749_8;

/// One of the document's two faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    /// DejaVu Sans.
    Regular,
    /// DejaVu Sans Bold.
    Bold,
}

impl Font {
    fn bytes(self) -> &'static [u8] {
        match self {
            Font::Regular => dejavu::sans::regular(),
            Font::Bold => dejavu::sans::bold(),
        }
    }
}

/// Why a PDF could not be written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the PDF could not be written: {0}")]
pub struct PdfError(String);

/// A finite value, clamped to a range any PDF reader accepts; NaN and infinities become 0.
fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(-1.0e6, 1.0e6)
    } else {
        0.0
    }
}

/// Width in points of `s` set in `font` at `size` points (the font's advance widths).
pub fn text_width(font: Font, size: f64, s: &str) -> f64 {
    let Ok(face) = skrifa::FontRef::new(font.bytes()) else { return 0.0 };
    let charmap = face.charmap();
    let metrics = face.glyph_metrics(Size::unscaled(), LocationRef::default());
    let per_em = f64::from(face.metrics(Size::unscaled(), LocationRef::default()).units_per_em.max(1));
    let units: f64 = s
        .chars()
        .map(|c| {
            let glyph = charmap.map(c).unwrap_or_default();
            f64::from(metrics.advance_width(glyph).unwrap_or(0.0))
        })
        .sum();
    units / per_em * finite(size)
}

/// Word-wraps `s` into lines no wider than `width` points. Breaks on whitespace (runs of
/// whitespace become one space); a word wider than `width` is broken between characters;
/// `\n` is a hard line break (an empty input line gives an empty output line). A line always
/// holds at least one character, so a too-narrow width still terminates. Empty or
/// whitespace-only input gives no lines.
pub fn wrap(font: Font, size: f64, s: &str, width: f64) -> Vec<String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return out;
    }
    let space = text_width(font, size, " ");
    for paragraph in s.lines() {
        let mut line = String::new();
        let mut line_w = 0.0;
        for word in paragraph.split_whitespace() {
            let word_w = text_width(font, size, word);
            if !line.is_empty() && line_w + space + word_w <= width {
                line.push(' ');
                line.push_str(word);
                line_w += space + word_w;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            if word_w <= width {
                line.push_str(word);
                line_w = word_w;
                continue;
            }
            line_w = 0.0;
            for c in word.chars() {
                let w = text_width(font, size, c.encode_utf8(&mut [0; 4]));
                let fits = line_w + w <= width;
                if !line.is_empty() && !fits {
                    out.push(std::mem::take(&mut line));
                    line_w = 0.0;
                }
                line.push(c);
                line_w += w;
            }
        }
        out.push(line);
    }
    out
}

/// What the content drawn next is, for the tag tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Running text: every text is a paragraph; shapes are decoration (artifacts).
    Text,
    /// A heading of the given level: its texts are headings.
    Heading(u16),
    /// Page furniture (headers, footers, page numbers): not read out.
    Artifact,
    /// Part of figure `n` of the page (texts and shapes alike).
    Figure(usize),
}

#[derive(Debug, Clone)]
enum Shape {
    Line(f64, f64, f64, f64),
    Rect { x: f64, y: f64, w: f64, h: f64 },
    Circle { cx: f64, cy: f64, r: f64 },
    Polyline(Vec<(f64, f64)>),
}

#[derive(Debug, Clone)]
enum Op {
    Text { x: f64, y: f64, font: Font, size: f64, text: String, colour: [f64; 3] },
    Path { shape: Shape, fill: Option<[f64; 3]>, stroke: Option<(Stroke_, [f64; 3])> },
}

/// Line width and dash of a stroke.
#[derive(Debug, Clone, Copy)]
struct Stroke_ {
    width: f64,
    dash: Option<(f64, f64)>,
}

/// One page's content, drawn when the document is written. Obtain it from
/// [`Document::add_page`].
#[derive(Debug, Clone)]
pub struct Page {
    ops: Vec<(Role, Op)>,
    /// Alternative text of each figure of the page.
    figures: Vec<String>,
    role: Role,
    fill: [f64; 3],
    stroke: [f64; 3],
    width: f64,
    dash: Option<(f64, f64)>,
}

impl Default for Page {
    fn default() -> Self {
        Page { ops: Vec::new(), figures: Vec::new(), role: Role::Text, fill: [0.0; 3], stroke: [0.0; 3], width: 1.0, dash: None }
    }
}

fn unit3(r: f64, g: f64, b: f64) -> [f64; 3] {
    [finite(r).clamp(0.0, 1.0), finite(g).clamp(0.0, 1.0), finite(b).clamp(0.0, 1.0)]
}

impl Page {
    /// What follows is a heading of `level` (1 or 2), until [`Page::body`].
    pub fn heading(&mut self, level: u16) -> &mut Self {
        self.role = Role::Heading(level.clamp(1, 6));
        self
    }

    /// What follows is page furniture (a running header, a page number), until
    /// [`Page::body`].
    pub fn furniture(&mut self) -> &mut Self {
        self.role = Role::Artifact;
        self
    }

    /// What follows, until [`Page::body`], is one figure (a chart) described by `alt`.
    pub fn figure(&mut self, alt: &str) -> &mut Self {
        self.figures.push(alt.to_string());
        self.role = Role::Figure(self.figures.len() - 1);
        self
    }

    /// Back to running text.
    pub fn body(&mut self) -> &mut Self {
        self.role = Role::Text;
        self
    }

    fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push((self.role, op));
        self
    }

    fn path(&mut self, shape: Shape, fill: bool, stroke: bool) -> &mut Self {
        let stroke = stroke.then_some((Stroke_ { width: self.width, dash: self.dash }, self.stroke));
        let fill = fill.then_some(self.fill);
        self.push(Op::Path { shape, fill, stroke })
    }

    /// Writes `s` with its left end at `x` and its baseline at `y` (from the top), in the
    /// current fill colour.
    pub fn text(&mut self, x: f64, y: f64, font: Font, size: f64, s: &str) -> &mut Self {
        if s.is_empty() {
            return self;
        }
        let colour = self.fill;
        self.push(Op::Text { x: finite(x), y: finite(y), font, size: finite(size).max(0.0), text: s.to_string(), colour })
    }

    /// Writes `s` so that it ends at `x_right`.
    pub fn text_right(&mut self, x_right: f64, y: f64, font: Font, size: f64, s: &str) -> &mut Self {
        let x = finite(x_right) - text_width(font, size, s);
        self.text(x, y, font, size, s)
    }

    /// Writes `s` centred on `x_centre`.
    pub fn text_centre(&mut self, x_centre: f64, y: f64, font: Font, size: f64, s: &str) -> &mut Self {
        let x = finite(x_centre) - text_width(font, size, s) / 2.0;
        self.text(x, y, font, size, s)
    }

    /// Sets the fill (and text) colour; components in 0..1.
    pub fn fill_colour(&mut self, r: f64, g: f64, b: f64) -> &mut Self {
        self.fill = unit3(r, g, b);
        self
    }

    /// Sets the stroke colour; components in 0..1.
    pub fn stroke_colour(&mut self, r: f64, g: f64, b: f64) -> &mut Self {
        self.stroke = unit3(r, g, b);
        self
    }

    /// Sets the line width in points (negative counts as 0, the thinnest line).
    pub fn line_width(&mut self, w: f64) -> &mut Self {
        self.width = finite(w).max(0.0);
        self
    }

    /// Dashed lines: `on` points drawn, `off` points skipped. Non-positive both means solid.
    pub fn dash(&mut self, on: f64, off: f64) -> &mut Self {
        let (on, off) = (finite(on).max(0.0), finite(off).max(0.0));
        self.dash = (on > 0.0 || off > 0.0).then_some((on, off));
        self
    }

    /// Solid lines (the default).
    pub fn solid(&mut self) -> &mut Self {
        self.dash = None;
        self
    }

    /// Strokes a straight line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) -> &mut Self {
        self.path(Shape::Line(finite(x1), finite(y1), finite(x2), finite(y2)), false, true)
    }

    /// A rectangle with its top-left corner at (`x`, `y`), filled and/or stroked.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: bool, stroke: bool) -> &mut Self {
        self.path(Shape::Rect { x: finite(x), y: finite(y), w: finite(w), h: finite(h) }, fill, stroke)
    }

    /// A circle centred on (`cx`, `cy`), filled and/or stroked.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: bool, stroke: bool) -> &mut Self {
        self.path(Shape::Circle { cx: finite(cx), cy: finite(cy), r: finite(r).abs() }, fill, stroke)
    }

    /// Strokes an open path through `points`; fewer than two points draw nothing.
    pub fn polyline(&mut self, points: &[(f64, f64)]) -> &mut Self {
        if points.len() < 2 {
            return self;
        }
        self.path(Shape::Polyline(points.iter().map(|&(x, y)| (finite(x), finite(y))).collect()), false, true)
    }

    /// The texts of the page in drawing order (for tests and searches).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().filter_map(|(_, op)| match op {
            Op::Text { text, .. } => Some(text.as_str()),
            Op::Path { .. } => None,
        })
    }
}

/// A PDF document: metadata and pages, written by [`Document::to_bytes`].
#[derive(Debug, Clone)]
pub struct Document {
    title: String,
    author: String,
    /// BCP 47 language of the text (`sv`, `en`).
    language: String,
    pages: Vec<Page>,
}

fn colour(c: [f64; 3]) -> rgb::Color {
    let byte = |v: f64| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    rgb::Color::new(byte(c[0]), byte(c[1]), byte(c[2]))
}

fn shape_path(shape: &Shape) -> Option<krilla::geom::Path> {
    let mut pb = PathBuilder::new();
    let f = |v: f64| v as f32;
    match shape {
        Shape::Line(x1, y1, x2, y2) => {
            pb.move_to(f(*x1), f(*y1));
            pb.line_to(f(*x2), f(*y2));
        }
        Shape::Rect { x, y, w, h } => {
            let (x0, x1) = if *w < 0.0 { (x + w, *x) } else { (*x, x + w) };
            let (y0, y1) = if *h < 0.0 { (y + h, *y) } else { (*y, y + h) };
            pb.push_rect(Rect::from_ltrb(f(x0), f(y0), f(x1.max(x0 + 0.01)), f(y1.max(y0 + 0.01)))?);
        }
        Shape::Circle { cx, cy, r } => {
            let k = r * KAPPA;
            pb.move_to(f(cx + r), f(*cy));
            pb.cubic_to(f(cx + r), f(cy + k), f(cx + k), f(cy + r), f(*cx), f(cy + r));
            pb.cubic_to(f(cx - k), f(cy + r), f(cx - r), f(cy + k), f(cx - r), f(*cy));
            pb.cubic_to(f(cx - r), f(cy - k), f(cx - k), f(cy - r), f(*cx), f(cy - r));
            pb.cubic_to(f(cx + k), f(cy - r), f(cx + r), f(cy - k), f(cx + r), f(*cy));
            pb.close();
        }
        Shape::Polyline(points) => {
            let (first, rest) = points.split_first()?;
            pb.move_to(f(first.0), f(first.1));
            for (x, y) in rest {
                pb.line_to(f(*x), f(*y));
            }
        }
    }
    pb.finish()
}

fn draw(surface: &mut Surface, op: &Op, fonts: &[krilla::text::Font; 2]) {
    match op {
        Op::Text { x, y, font, size, text, colour: c } => {
            surface.set_stroke(None);
            surface.set_fill(Some(Fill { paint: colour(*c).into(), ..Default::default() }));
            let face = match font {
                Font::Regular => fonts[0].clone(),
                Font::Bold => fonts[1].clone(),
            };
            surface.draw_text(Point::from_xy(*x as f32, *y as f32), face, *size as f32, text, false, TextDirection::Auto);
        }
        Op::Path { shape, fill, stroke } => {
            let Some(path) = shape_path(shape) else { return };
            surface.set_fill(fill.map(|c| Fill { paint: colour(c).into(), ..Default::default() }));
            surface.set_stroke(stroke.map(|(s, c)| Stroke {
                paint: colour(c).into(),
                width: s.width as f32,
                dash: s.dash.map(|(on, off)| StrokeDash { array: vec![on as f32, off as f32], offset: 0.0 }),
                ..Default::default()
            }));
            surface.draw_path(&path);
        }
    }
}

impl Document {
    /// An empty document with the given title.
    pub fn new(title: &str) -> Document {
        Document { title: title.to_string(), author: String::new(), language: "sv".into(), pages: Vec::new() }
    }

    /// Sets the author in the document information.
    pub fn set_author(&mut self, author: &str) {
        self.author = author.to_string();
    }

    /// Sets the language of the text (`sv`, `en`), for screen readers.
    pub fn set_language(&mut self, language: &str) {
        self.language = language.to_string();
    }

    /// Appends a blank page and returns it for drawing.
    pub fn add_page(&mut self) -> &mut Page {
        self.pages.push(Page::default());
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Pages added so far.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Page `i` (from 0), if there is one.
    pub fn page_mut(&mut self, i: usize) -> Option<&mut Page> {
        self.pages.get_mut(i)
    }

    /// The pages added so far.
    pub fn pages(&self) -> &[Page] {
        &self.pages
    }

    /// The last page, adding one to an empty document.
    pub fn last_page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// The PDF file, tagged. A document without pages is written with one blank page.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PdfError> {
        let load = |f: Font| krilla::text::Font::new(f.bytes().into(), 0).ok_or_else(|| PdfError(format!("the embedded font {f:?} could not be read")));
        let fonts = [load(Font::Regular)?, load(Font::Bold)?];
        let mut doc = krilla::Document::new();
        let mut tree = TagTree::new();
        let blank = [Page::default()];
        let pages: &[Page] = if self.pages.is_empty() { &blank } else { &self.pages };
        let settings = PageSettings::from_wh(PAGE_WIDTH as f32, PAGE_HEIGHT as f32).ok_or_else(|| PdfError("A4 page size".into()))?;
        for page in pages {
            let mut figures: Vec<TagGroup> = page.figures.iter().map(|alt| TagGroup::new(Tag::Figure(Some(alt.clone())))).collect();
            // Figures take their place in reading order where their first content is.
            let mut order: Vec<TagGroupSlot> = Vec::new();
            let mut p = doc.start_page_with(settings.clone());
            let mut surface = p.surface();
            for (role, op) in &page.ops {
                let is_text = matches!(op, Op::Text { .. });
                match (role, is_text) {
                    (Role::Artifact, _) | (Role::Text | Role::Heading(_), false) => {
                        let kind = if matches!(role, Role::Artifact) { ArtifactType::Header } else { ArtifactType::Other };
                        surface.start_tagged(ContentTag::Artifact(krilla::tagging::Artifact::new(kind, None)));
                        draw(&mut surface, op, &fonts);
                        surface.end_tagged();
                    }
                    (Role::Text | Role::Heading(_), true) => {
                        let id = surface.start_tagged(ContentTag::Span(SpanTag::empty()));
                        draw(&mut surface, op, &fonts);
                        surface.end_tagged();
                        let mut group = match role {
                            Role::Heading(level) => TagGroup::new(Tag::Hn(NonZeroU16::new(*level).unwrap_or(NonZeroU16::MIN), None)),
                            _ => TagGroup::new(Tag::P),
                        };
                        group.push(id);
                        order.push(TagGroupSlot::Group(group));
                    }
                    (Role::Figure(i), _) => {
                        let id = surface.start_tagged(if is_text { ContentTag::Span(SpanTag::empty()) } else { ContentTag::Other });
                        draw(&mut surface, op, &fonts);
                        surface.end_tagged();
                        if let Some(fig) = figures.get_mut(*i) {
                            if !order.iter().any(|s| matches!(s, TagGroupSlot::Figure(j) if j == i)) {
                                order.push(TagGroupSlot::Figure(*i));
                            }
                            fig.push(id);
                        }
                    }
                }
            }
            surface.finish();
            p.finish();
            let mut figures: Vec<Option<TagGroup>> = figures.into_iter().map(Some).collect();
            for slot in order {
                match slot {
                    TagGroupSlot::Group(g) => tree.push(g),
                    TagGroupSlot::Figure(i) => {
                        if let Some(g) = figures.get_mut(i).and_then(Option::take) {
                            tree.push(g);
                        }
                    }
                }
            }
        }
        doc.set_tag_tree(tree);
        let mut metadata = Metadata::new().title(self.title.clone()).language(self.language.clone()).producer("Norrsken".into());
        if !self.author.is_empty() {
            metadata = metadata.authors(vec![self.author.clone()]);
        }
        doc.set_metadata(metadata);
        doc.finish().map_err(|e| PdfError(format!("{e:?}")))
    }
}

/// A place in a page's reading order: a paragraph or heading, or figure `n`.
enum TagGroupSlot {
    Group(TagGroup),
    Figure(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        let mut doc = Document::new("Rapport – Västerbotten");
        doc.set_author("Norrsken");
        let p = doc.add_page();
        p.furniture().fill_colour(0.3, 0.3, 0.3).text(40.0, 30.0, Font::Regular, 8.0, "Norrsken · sida 1");
        p.heading(1).fill_colour(0.0, 0.0, 0.0).text(40.0, 60.0, Font::Bold, 16.0, "Höftfraktur");
        p.body().text(40.0, 90.0, Font::Regular, 10.0, "Ŋ đ ŧ š ž č å ä ö ≤ 5 ≥ 10");
        p.figure("Diagram: värden per region").stroke_colour(0.0, 0.0, 1.0).line_width(1.5).dash(4.0, 2.0).line(40.0, 120.0, 200.0, 120.0);
        p.solid().rect(40.0, 130.0, 50.0, 20.0, true, true).circle(100.0, 140.0, 5.0, true, false).polyline(&[(0.0, 0.0), (10.0, 10.0), (20.0, 0.0)]);
        p.text(40.0, 170.0, Font::Regular, 8.0, "Umeå");
        p.body();
        doc.add_page().text(40.0, 60.0, Font::Regular, 10.0, "Sida två");
        doc
    }

    #[test]
    fn writes_a_tagged_pdf_with_an_embedded_font() {
        let bytes = sample().to_bytes().unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"/StructTreeRoot"), "tagged");
        assert!(has(b"/MarkInfo"), "marked");
        assert!(has(b"/FontFile2"), "the font is embedded");
        assert!(has(b"/ToUnicode"), "text extracts back");
        assert!(has(b"DejaVuSans"), "DejaVu Sans");
        assert!(has(b"/Lang"), "language");
    }

    #[test]
    fn an_empty_document_has_one_page_and_bad_numbers_do_not_panic() {
        assert!(Document::new("tom").to_bytes().unwrap().starts_with(b"%PDF-"));
        let mut doc = Document::new("NaN");
        doc.add_page().line_width(f64::NAN).line(f64::NAN, f64::INFINITY, 0.0, 0.0).rect(0.0, 0.0, -5.0, f64::NAN, true, true).text(f64::NAN, 10.0, Font::Bold, f64::INFINITY, "x");
        assert!(doc.to_bytes().is_ok());
    }

    #[test]
    fn widths_come_from_the_font() {
        let w = text_width(Font::Regular, 10.0, "Hello");
        assert!(w > 20.0 && w < 35.0, "{w}");
        assert!(text_width(Font::Bold, 10.0, "Hello") > w);
        assert!((text_width(Font::Regular, 20.0, "Hello") - 2.0 * w).abs() < 1e-9);
        assert_eq!(text_width(Font::Regular, f64::NAN, "Hello"), 0.0);
        assert!(text_width(Font::Regular, 10.0, "ŋ") > 0.0, "Sámi letters have glyphs");
    }

    #[test]
    fn wrapping() {
        let text = "Andelen patienter med höftfraktur som opererades inom 24 timmar ≥ 80 %";
        for width in [40.0, 100.0, 200.0] {
            let lines = wrap(Font::Regular, 10.0, text, width);
            for line in &lines {
                assert!(text_width(Font::Regular, 10.0, line) <= width || line.chars().count() == 1, "{line:?} wider than {width}");
            }
            assert_eq!(lines.join("").replace(' ', ""), text.replace(' ', ""));
        }
        assert!(wrap(Font::Bold, 10.0, "  ", 100.0).is_empty());
        assert_eq!(wrap(Font::Regular, 10.0, "a\n\nb", 100.0), vec!["a", "", "b"]);
        assert_eq!(wrap(Font::Regular, 10.0, "abc", 0.0), vec!["a", "b", "c"]);
        assert_eq!(wrap(Font::Regular, 10.0, "abc", f64::NAN), vec!["a", "b", "c"]);
    }
}
