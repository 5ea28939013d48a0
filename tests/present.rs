//! Presentation: the PDF prints what was written, whatever the letters, and a reader gets
//! the text back (pypdf extracts it as a screen reader or a search would).

use std::process::Command;

use norrsken_present::export::pdf::{Document, Font};

fn extract(pdf: &std::path::Path) -> Vec<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys, json; from pypdf import PdfReader; r = PdfReader(sys.argv[1]); print(json.dumps([p.extract_text() for p in r.pages]))"])
        .arg(pdf)
        .output()
        .expect("python3 with pypdf (installed by .ci/run)");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("pypdf: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_pdf_prints_swedish_and_sami_letters_and_comparison_signs_as_written() {
    let lines = [
        "Åsa Öberg, Umeå – räknat på år 2025",
        "Sámi: Ŋ ŋ Đ đ Ŧ ŧ Š š Ž ž Č č Á á",
        "andel ≤ 5 % och ≥ 10 % · −3,5 × 2",
    ];
    let mut doc = Document::new("Västerbotten – ŋ đ ŧ");
    doc.set_language("sv");
    let page = doc.add_page();
    page.furniture().text(40.0, 30.0, Font::Regular, 8.0, "Norrsken");
    page.heading(1).text(40.0, 70.0, Font::Bold, 16.0, "Regionrapport: Västerbotten");
    page.body();
    for (i, line) in lines.iter().enumerate() {
        page.text(40.0, 110.0 + 20.0 * i as f64, if i == 1 { Font::Bold } else { Font::Regular }, 11.0, line);
    }
    let dir = std::env::temp_dir().join(format!("norrsken-pdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("letters.pdf");
    let bytes = doc.to_bytes().unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let pages = extract(&path);
    assert_eq!(pages.len(), 1);
    for line in lines.iter().chain(["Regionrapport: Västerbotten"].iter()) {
        assert!(pages[0].contains(line), "{line:?} not extracted from {:?}", pages[0]);
    }
    assert!(!pages[0].contains('?'), "no replacement characters: {:?}", pages[0]);
    // Tagged, with its language and an embedded font.
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/StructTreeRoot") && has(b"/Lang") && has(b"/FontFile2"));
    std::fs::remove_dir_all(&dir).ok();
}
