//! A minimal PDF 1.4 writer for printable A4 reports, with no dependencies beyond `std`.
//!
//! - Pages are A4 portrait ([`PAGE_WIDTH`] x [`PAGE_HEIGHT`] points). Every coordinate in the
//!   API is in points with the origin at the TOP-LEFT corner of the page and y growing
//!   downwards; the writer converts to PDF's bottom-left origin.
//! - Text uses the standard Type1 fonts Helvetica and Helvetica-Bold ([`Font`]) with
//!   WinAnsiEncoding. Strings are encoded from Unicode to WinAnsi (ASCII, Latin-1 and the
//!   0x80-0x9F specials such as – — ‘ ’ “ ” • … €); other characters get a readable
//!   fallback (≤ → `<=`, ≥ → `>=`, − → `-`) or `?`. [`text_width`] and [`wrap`] measure
//!   with the Adobe AFM glyph widths (no kerning).
//! - Colours are RGB components in 0..1; the fill colour is also the text colour.
//!
//! Limits: standard fonts only (nothing embedded), WinAnsi only, no images, no compression,
//! no links or outlines. Bad numbers never panic: NaN or infinite values are written as 0.

use std::fmt::Write as _;

/// A4 width in points.
pub const PAGE_WIDTH: f64 = 595.28;
/// A4 height in points.
pub const PAGE_HEIGHT: f64 = 841.89;

/// Bézier control-point factor for a quarter circle.
const KAPPA: f64 = 0.552_284_749_8;

/// One of the two standard fonts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "/F1",
            Font::Bold => "/F2",
        }
    }

    fn widths(self) -> &'static [u16; 256] {
        match self {
            Font::Regular => &HELVETICA_WIDTHS,
            Font::Bold => &HELVETICA_BOLD_WIDTHS,
        }
    }
}

/// Helvetica advance widths (1/1000 em) by WinAnsi code, from Adobe's Helvetica.afm;
/// codes without a glyph get the default 556.
#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 256] = [
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0x00
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0x10
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 556, // 0x70
    556, 556, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 556, 611, 556, // 0x80
    556, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 556, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 0xF0
];

/// Helvetica-Bold advance widths (1/1000 em) by WinAnsi code, from Adobe's
/// Helvetica-Bold.afm; codes without a glyph get the default 556.
#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 256] = [
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0x00
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0x10
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0x30
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 0x50
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 0x60
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 556, // 0x70
    556, 556, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 556, 611, 556, // 0x80
    556, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 556, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 0xF0
];

/// Appends the WinAnsi encoding of one character (one byte, or a short ASCII fallback).
fn push_winansi(c: char, out: &mut Vec<u8>) {
    let byte = match c {
        '\t' | '\n' | '\r' => b' ',
        '\u{AD}' | '\u{200B}' | '\u{200D}' | '\u{FEFF}' => return,
        ' '..='~' | '\u{A0}'..='\u{FF}' => c as u8,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        // Spaces and dashes that WinAnsi lacks.
        '\u{2002}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => b' ',
        '\u{2010}' | '\u{2011}' | '\u{2212}' => b'-',
        '\u{2012}' => 0x96,
        '\u{2032}' => b'\'',
        '\u{2033}' => b'"',
        _ => {
            let fallback: &[u8] = match c {
                '≤' => b"<=",
                '≥' => b">=",
                '≠' => b"!=",
                '≈' => b"~",
                '→' => b"->",
                '←' => b"<-",
                _ => b"?",
            };
            out.extend_from_slice(fallback);
            return;
        }
    };
    out.push(byte);
}

/// Encodes `s` to WinAnsi bytes, replacing what WinAnsi cannot express (see the module doc).
pub fn to_winansi(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        push_winansi(c, &mut out);
    }
    out
}

fn bytes_width(font: Font, size: f64, bytes: &[u8]) -> f64 {
    let widths = font.widths();
    let units: u64 = bytes.iter().map(|&b| u64::from(widths[usize::from(b)])).sum();
    units as f64 / 1000.0 * finite(size)
}

/// Width in points of `s` set in `font` at `size` points, as it will be printed.
pub fn text_width(font: Font, size: f64, s: &str) -> f64 {
    bytes_width(font, size, &to_winansi(s))
}

fn char_width(font: Font, size: f64, c: char) -> f64 {
    let mut buf = Vec::with_capacity(2);
    push_winansi(c, &mut buf);
    bytes_width(font, size, &buf)
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
                let w = char_width(font, size, c);
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

/// A finite value, clamped to a range any PDF reader accepts; NaN and infinities become 0.
fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(-1.0e6, 1.0e6)
    } else {
        0.0
    }
}

/// A number with two decimals (coordinates, sizes).
fn num(v: f64) -> String {
    let s = format!("{:.2}", finite(v));
    if s == "-0.00" {
        "0.00".to_string()
    } else {
        s
    }
}

/// A colour component with three decimals, clamped to 0..1.
fn unit(v: f64) -> String {
    format!("{:.3}", finite(v).clamp(0.0, 1.0))
}

/// One page's content stream. Obtain it from [`Document::add_page`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    content: Vec<u8>,
}

impl Page {
    fn op(&mut self, s: &str) -> &mut Self {
        self.content.extend_from_slice(s.as_bytes());
        self.content.push(b'\n');
        self
    }

    /// A point in PDF space: `y` measured from the top becomes `y` from the bottom.
    fn pt(x: f64, y: f64) -> String {
        format!("{} {}", num(x), num(PAGE_HEIGHT - finite(y)))
    }

    fn paint(&mut self, fill: bool, stroke: bool) -> &mut Self {
        match (fill, stroke) {
            (true, true) => self.op("B"),
            (true, false) => self.op("f"),
            (false, true) => self.op("S"),
            (false, false) => self.op("n"),
        }
    }

    /// Writes `s` with its left end at `x` and its baseline at `y` (from the top), in the
    /// current fill colour.
    pub fn text(&mut self, x: f64, y: f64, font: Font, size: f64, s: &str) -> &mut Self {
        let mut bytes = format!("BT {} {} Tf {} Td (", font.resource(), num(size), Self::pt(x, y)).into_bytes();
        for b in to_winansi(s) {
            if matches!(b, b'(' | b')' | b'\\') {
                bytes.push(b'\\');
            }
            bytes.push(b);
        }
        bytes.extend_from_slice(b") Tj ET\n");
        self.content.extend_from_slice(&bytes);
        self
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
        let s = format!("{} {} {} rg", unit(r), unit(g), unit(b));
        self.op(&s)
    }

    /// Sets the stroke colour; components in 0..1.
    pub fn stroke_colour(&mut self, r: f64, g: f64, b: f64) -> &mut Self {
        let s = format!("{} {} {} RG", unit(r), unit(g), unit(b));
        self.op(&s)
    }

    /// Sets the line width in points (negative counts as 0, the thinnest line).
    pub fn line_width(&mut self, w: f64) -> &mut Self {
        let s = format!("{} w", num(finite(w).max(0.0)));
        self.op(&s)
    }

    /// Dashed lines: `on` points drawn, `off` points skipped. Non-positive both means solid.
    pub fn dash(&mut self, on: f64, off: f64) -> &mut Self {
        let (on, off) = (finite(on).max(0.0), finite(off).max(0.0));
        if on <= 0.0 && off <= 0.0 {
            return self.solid();
        }
        let s = format!("[{} {}] 0 d", num(on), num(off));
        self.op(&s)
    }

    /// Solid lines (the default).
    pub fn solid(&mut self) -> &mut Self {
        self.op("[] 0 d")
    }

    /// Strokes a straight line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) -> &mut Self {
        let s = format!("{} m {} l S", Self::pt(x1, y1), Self::pt(x2, y2));
        self.op(&s)
    }

    /// A rectangle with its top-left corner at (`x`, `y`), filled and/or stroked.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: bool, stroke: bool) -> &mut Self {
        let bottom = finite(y) + finite(h);
        let s = format!("{} {} {} re", Self::pt(x, bottom), num(w), num(h));
        self.op(&s).paint(fill, stroke)
    }

    /// A circle (four Bézier curves) centred on (`cx`, `cy`), filled and/or stroked.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: bool, stroke: bool) -> &mut Self {
        let (cx, cy, r) = (finite(cx), finite(cy), finite(r).abs());
        let k = r * KAPPA;
        let p = Self::pt;
        let mut s = format!("{} m\n", p(cx + r, cy));
        let _ = writeln!(s, "{} {} {} c", p(cx + r, cy + k), p(cx + k, cy + r), p(cx, cy + r));
        let _ = writeln!(s, "{} {} {} c", p(cx - k, cy + r), p(cx - r, cy + k), p(cx - r, cy));
        let _ = writeln!(s, "{} {} {} c", p(cx - r, cy - k), p(cx - k, cy - r), p(cx, cy - r));
        let _ = write!(s, "{} {} {} c h", p(cx + k, cy - r), p(cx + r, cy - k), p(cx + r, cy));
        self.op(&s).paint(fill, stroke)
    }

    /// Strokes an open path through `points`; fewer than two points draw nothing.
    pub fn polyline(&mut self, points: &[(f64, f64)]) -> &mut Self {
        let [first, rest @ ..] = points else { return self };
        if rest.is_empty() {
            return self;
        }
        let mut s = format!("{} m", Self::pt(first.0, first.1));
        for &(x, y) in rest {
            let _ = write!(s, " {} l", Self::pt(x, y));
        }
        s.push_str(" S");
        self.op(&s)
    }
}

/// A PDF document: metadata and pages, serialised by [`Document::to_bytes`].
#[derive(Debug, Clone)]
pub struct Document {
    title: String,
    author: String,
    pages: Vec<Page>,
}

/// A PDF text string: UTF-16BE with a byte order mark, as a hex string.
fn text_string(s: &str) -> String {
    let mut out = String::from("<FEFF");
    for unit in s.encode_utf16() {
        let _ = write!(out, "{unit:04X}");
    }
    out.push('>');
    out
}

impl Document {
    /// An empty document with the given title.
    pub fn new(title: &str) -> Document {
        Document {
            title: title.to_string(),
            author: String::new(),
            pages: Vec::new(),
        }
    }

    /// Sets the author in the document information.
    pub fn set_author(&mut self, author: &str) {
        self.author = author.to_string();
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

    /// The last page, adding one to an empty document.
    pub fn last_page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// The PDF file. A document without pages is written with one blank page, since
    /// readers reject an empty page tree.
    pub fn to_bytes(&self) -> Vec<u8> {
        let blank = [Page::default()];
        let pages: &[Page] = if self.pages.is_empty() { &blank } else { &self.pages };
        // Objects: 1 catalog, 2 page tree, 3-4 fonts, 5 info, then a page and its content.
        let page_id = |i: usize| 6 + 2 * i;
        let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", page_id(i))).collect();
        let font = |name: &str| format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>");
        let mut objects: Vec<Vec<u8>> = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).into_bytes(),
            font("Helvetica").into_bytes(),
            font("Helvetica-Bold").into_bytes(),
            format!(
                "<< /Title {} /Author {} /Producer {} >>",
                text_string(&self.title),
                text_string(&self.author),
                text_string("Norrsken")
            )
            .into_bytes(),
        ];
        for (i, page) in pages.iter().enumerate() {
            objects.push(
                format!(
                    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> \
                     /ProcSet [/PDF /Text] >> /Contents {} 0 R >>",
                    num(PAGE_WIDTH),
                    num(PAGE_HEIGHT),
                    page_id(i) + 1
                )
                .into_bytes(),
            );
            let mut stream = format!("<< /Length {} >>\nstream\n", page.content.len()).into_bytes();
            stream.extend_from_slice(&page.content);
            stream.extend_from_slice(b"\nendstream");
            objects.push(stream);
        }

        let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for offset in offsets {
            let _ = writeln!(tail, "{offset:010} 00000 n ");
        }
        let _ = write!(
            tail,
            "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        );
        out.extend_from_slice(tail.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn sample() -> Document {
        let mut doc = Document::new("Årsrapport – Norrsken");
        doc.set_author("Åsa Öberg");
        for n in 1..=3 {
            let page = doc.add_page();
            page.fill_colour(0.0, 0.0, 0.0)
                .text(50.0, 60.0, Font::Bold, 16.0, "Väntetider på akutmottagningar");
            page.text(50.0, 90.0, Font::Regular, 11.0, "Åsa Öberg – 25 % (åäö ÅÄÖ é) \\ klart ≥ 2");
            page.text_right(545.0, 820.0, Font::Regular, 9.0, &format!("Sida {n} av 3"));
            page.text_centre(PAGE_WIDTH / 2.0, 820.0, Font::Regular, 9.0, "Norrsken");
            page.stroke_colour(0.2, 0.4, 0.8).line_width(1.5).line(50.0, 100.0, 545.0, 100.0);
            page.fill_colour(0.9, 0.5, 0.1).rect(50.0, 120.0, 200.0, 80.0, true, true);
            page.dash(3.0, 2.0).circle(400.0, 160.0, 40.0, false, true).solid();
            page.polyline(&[(50.0, 300.0), (150.0, 250.0), (250.0, 320.0)]);
            let mut y = 360.0;
            page.fill_colour(0.0, 0.0, 0.0);
            let body = "Andelen patienter som fick träffa läkare inom fyra timmar ökade under året, \
                        särskilt i Västerbotten och Norrbotten – men skillnaderna mellan regionerna är stora.";
            for line in wrap(Font::Regular, 10.0, body, 300.0) {
                page.text(50.0, y, Font::Regular, 10.0, &line);
                y += 13.0;
            }
        }
        doc
    }

    #[test]
    fn structure_and_xref() {
        let doc = sample();
        assert_eq!(doc.page_count(), 3);
        let bytes = doc.to_bytes();
        assert!(bytes.starts_with(b"%PDF-1.4\n"));
        assert!(bytes.trim_ascii_end().ends_with(b"%%EOF"));
        assert!(find(&bytes, b"/Count 3 >>").is_some());
        let tail = String::from_utf8_lossy(&bytes[bytes.len() - 40..]).to_string();
        let xref: usize = tail
            .split("startxref\n")
            .nth(1)
            .and_then(|t| t.lines().next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        assert!(bytes[xref..].starts_with(b"xref\n0 12\n"));
        let table = String::from_utf8_lossy(&bytes[xref..]).to_string();
        let entries: Vec<&str> = table.lines().skip(3).take(11).collect();
        for (i, entry) in entries.iter().enumerate() {
            let offset: usize = entry[..10].parse().unwrap();
            assert!(bytes[offset..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()), "object {}", i + 1);
        }
        // Set PDF_TEST_OUT=/some/file.pdf to look at the sample document.
        if let Ok(path) = std::env::var("PDF_TEST_OUT") {
            std::fs::write(path, &bytes).unwrap();
        }
    }

    #[test]
    fn empty_document_has_one_page() {
        let bytes = Document::new("").to_bytes();
        assert!(find(&bytes, b"/Count 1 >>").is_some());
    }

    #[test]
    fn winansi_encoding() {
        assert_eq!(to_winansi("Åsa Öberg – 25 %"), b"\xC5sa \xD6berg \x96 25 %");
        assert_eq!(to_winansi("åäöÄé€…"), b"\xE5\xE4\xF6\xC4\xE9\x80\x85");
        assert_eq!(to_winansi("a ≥ b ≤ c − d × ±"), b"a >= b <= c - d \xD7 \xB1");
        assert_eq!(to_winansi("漢"), b"?");
    }

    #[test]
    fn text_is_escaped() {
        let mut doc = Document::new("t");
        doc.add_page().text(0.0, 0.0, Font::Regular, 10.0, "a (b) \\c ≥ Ö");
        let bytes = doc.to_bytes();
        assert!(find(&bytes, b"(a \\(b\\) \\\\c >= \xD6) Tj").is_some());
    }

    #[test]
    fn widths() {
        let expected = (722.0 + 556.0 + 222.0 + 222.0 + 556.0) / 1000.0 * 10.0;
        assert!((text_width(Font::Regular, 10.0, "Hello") - expected).abs() < 1e-9);
        assert!(text_width(Font::Bold, 10.0, "Hello") > expected);
        assert_eq!(text_width(Font::Regular, f64::NAN, "Hello"), 0.0);
    }

    #[test]
    fn wrapping() {
        let s = "Andelen patienter med väntetid under fyra timmar ökade i Västerbotten och Norrbotten, \
                 men ett ord som Donaudampfschiffahrtsgesellschaftskapitänsmütze är för långt.";
        for width in [40.0, 80.0, 150.0, 300.0] {
            let lines = wrap(Font::Regular, 10.0, s, width);
            for line in &lines {
                assert!(text_width(Font::Regular, 10.0, line) <= width, "{line:?} wider than {width}");
            }
            let joined: String = lines.concat();
            let original: String = s.split_whitespace().collect();
            assert_eq!(joined.replace(' ', ""), original);
        }
        assert!(wrap(Font::Bold, 10.0, "  ", 100.0).is_empty());
        assert_eq!(wrap(Font::Regular, 10.0, "a\n\nb", 100.0), vec!["a", "", "b"]);
        assert_eq!(wrap(Font::Regular, 10.0, "abc", 0.0), vec!["a", "b", "c"]);
        assert_eq!(wrap(Font::Regular, 10.0, "abc", f64::NAN), vec!["a", "b", "c"]);
    }

    #[test]
    fn bad_numbers_are_zero() {
        let mut doc = Document::new("n");
        doc.add_page()
            .line(f64::NAN, 0.0, f64::INFINITY, f64::NEG_INFINITY)
            .fill_colour(f64::NAN, 2.0, -1.0);
        let bytes = doc.to_bytes();
        assert!(find(&bytes, b"0.00 841.89 m 0.00 841.89 l S").is_some());
        assert!(find(&bytes, b"0.000 1.000 0.000 rg").is_some());
        assert!(find(&bytes, b"NaN").is_none() && find(&bytes, b"inf").is_none());
    }
}
