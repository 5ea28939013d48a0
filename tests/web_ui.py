"""The web app in a real browser: Playwright (PyPI) driving Debian's Chromium with the
analyst's client certificate. Called by tests/web.rs, which starts the federation, checks
what this script reports against the Flight answers, and stops an agent between phases.

    python3 tests/web_ui.py PHASE BASE_URL CERTS_DIR OTHER_CA_DIR OUT_DIR

PHASE is `main` (catalog, indicator view, report, strangers) or `partial` (one agent
stopped). Prints one JSON object of what the pages showed; screenshots and PDFs go to OUT_DIR.
"""
import json
import os
import sys
import time

import openpyxl
from playwright.sync_api import sync_playwright
from pypdf import PdfReader

phase, base, certs, other, out = sys.argv[1:6]
os.makedirs(out, exist_ok=True)
result = {}


AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules", "axe-core", "axe.min.js")
if not os.path.isfile(AXE):
    sys.exit(f"{AXE} is missing: run `npm ci --prefix tests` (axe-core checks the pages against WCAG 2 AA)")


def accessibility(page):
    """WCAG 2 A and AA violations axe-core finds on the page as drawn (contrast included)."""
    page.add_script_tag(path=AXE)
    return page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}))
            .violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                                   targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )


def context(browser, cert_dir=None, name="analyst"):
    # bypass_csp only lets the test inject axe-core; the app itself runs under its CSP.
    kwargs = {"ignore_https_errors": True, "viewport": {"width": 1360, "height": 900}, "locale": "sv-SE", "bypass_csp": True}
    if cert_dir:
        kwargs["client_certificates"] = [
            {"origin": base, "certPath": f"{cert_dir}/{name}.pem", "keyPath": f"{cert_dir}/{name}.key"}
        ]
    return browser.new_context(**kwargs)


def ready(page, timeout=60000):
    page.wait_for_selector("main[data-ready='true']", timeout=timeout)


def visit(page, url):
    """Goes to a view and waits until it is drawn (the flag is cleared first, so a hash
    change within the app cannot be mistaken for the previous view being ready)."""
    if page.url.startswith(base):
        page.evaluate("() => { const m = document.getElementById('main'); if (m) delete m.dataset.ready; }")
    page.goto(url)
    ready(page)


# Codes that must never show where a name exists, and English that must not show in the
# Swedish app (whole words).
CODES = ["female", "male", "primary", "secondary", "tertiary", "inpatient", "primary_care",
         "specialist_outpatient", "outside_europe", "nordic", "unknown", "suppressed", "perturbed"]
ENGLISH = ["withheld", "released", "pooled", "not checked", "that cell", "odds ratio", "per year",
           "events per", "inhabitant", "the", "this cell", "change per", "share", "Comparison",
           "drop", "breakdown", "ask", "region instead"]


def swedish_issues(page, where, issues):
    """Codes and English words on the page as a reader sees it (text and chart labels), the
    provenance footer and appendix (ids and versions) aside."""
    text = page.evaluate(
        """() => {
            const hidden = [...document.querySelectorAll('#provenance, .appendix, .national, #report-link, .report-link')];
            const was = hidden.map(e => e.style.display);
            hidden.forEach(e => e.style.display = 'none');
            const svg = [...document.querySelectorAll('#main svg text, #main svg title')].map(t => t.textContent).join(' | ');
            const out = document.getElementById('main').innerText + ' | ' + svg;
            hidden.forEach((e, i) => e.style.display = was[i]);
            return out;
        }"""
    )
    import re
    found = set()
    for w in CODES + ENGLISH:
        if re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text):
            found.add(w)
    # A bare kommun code: a cell, label or chart text that is only the code.
    found.update(m.strip() for m in re.findall(r"(?:^|(?<=[\n\t|·(]))\s*2[2-5][0-9][0-9]\s*(?=$|[\n\t|·)])", text))
    if found:
        issues[where] = sorted(found)


def overflow(page, where, result):
    """Whether the page is wider than the screen at 1280 and 390 px."""
    for width in [1280, 390]:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        extra = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if extra > 1:
            culprits = page.evaluate(
                """(w) => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1
                      && !e.closest('.table-wrap, figure.chart')).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)""",
                width,
            )
            result[f"{where}@{width}"] = {"extra_px": extra, "elements": culprits}
    page.set_viewport_size({"width": 1360, "height": 900})


def rows_of(page, selector):
    return page.eval_on_selector_all(
        f"{selector} tbody tr",
        """trs => trs.map(tr => ({
            cls: tr.className,
            cells: [...tr.children].map(c => c.textContent.replace(/\\u00a0|\\u202f/g, ' ')),
            data: Object.assign({}, tr.dataset),
        }))""",
    )


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    ctx = context(browser, certs)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    swedish = {}
    wide = {}
    if phase == "main":
        # Catalog: every recipe, then a search.
        visit(page, f"{base}/#/katalog")
        result["catalog_cards"] = page.locator("#recipes > li").count()
        page.fill("#search", "stroke")
        result["catalog_stroke"] = page.locator("#recipes > li").count()
        page.fill("#search", "Endokrina")
        result["catalog_area"] = page.locator("#recipes > li").count()
        page.fill("#search", "")
        page.screenshot(path=f"{out}/catalog.png", full_page=False)
        result["axe_catalog"] = accessibility(page)
        result["who"] = page.text_content("#who")
        swedish_issues(page, "catalog", swedish)
        overflow(page, "catalog", wide)

        # Indicator view without a breakdown: one mark per region and the intervals.
        visit(page, f"{base}/#/indikator/hip_fracture_surgery_24h?from=2021&to=2023")
        result["compare_dots"] = page.locator("#compare svg g[aria-description='region'] circle").count()
        result["compare_pooled"] = page.locator("#compare svg g[aria-description='pooled'] path").count()
        result["compare_intervals"] = page.locator("#compare svg g[aria-description='interval'] line").count()
        result["compare_target"] = page.locator("#compare svg g[aria-description='target'] line").count()
        result["trend_rows"] = rows_of(page, "#trend .chart-and-table table")
        # Circles, triangles or diamonds (the mark's shape says within, better or worse).
        result["funnel_dots"] = page.locator("#funnel svg g[aria-description='unit'] circle, #funnel svg g[aria-description='unit'] path").count()
        result["equity_rows"] = rows_of(page, "#equity .chart-and-table table")
        result["cells_plain"] = rows_of(page, "#cells-table")
        result["partial_banners"] = page.locator("[data-partial='true']").count()
        result["provenance"] = page.text_content("#provenance")
        page.screenshot(path=f"{out}/indicator.png", full_page=True)
        result["axe_indicator"] = accessibility(page)
        swedish_issues(page, "indicator", swedish)
        overflow(page, "indicator", wide)
        for by, indicator in [("sex", "stroke_reperfusion"), ("education", "diabetes_statin"), ("care_type", "kpp_cost")]:
            visit(page, f"{base}/#/indikator/{indicator}?by={by}&from=2021&to=2025")
            swedish_issues(page, f"indicator by {by}", swedish)
        # An evaluation across regions (a cohort recipe): the forest plot's intervals, the
        # verdict in words, the table; in Swedish, accessible, no sideways scroll.
        visit(page, f"{base}/#/indikator/mobile_team_inpatient?from=2023&to=2025")
        result["evaluation"] = {
            "intervals": page.locator("#evaluate svg g[aria-label] line, #evaluate svg line").count(),
            "effects": page.locator("#evaluate svg g[aria-description='effect'] path").count(),
            "rows": rows_of(page, "#evaluation-table"),
            "verdict": page.get_attribute("#evaluate .verdict", "data-consistency") if page.locator("#evaluate .verdict").count() else None,
            "verdict_text": page.text_content("#evaluate .verdict") if page.locator("#evaluate .verdict").count() else "",
            "errors": page.locator("#evaluate .error").count(),
        }
        page.screenshot(path=f"{out}/evaluation.png", full_page=True)
        result["axe_evaluation"] = accessibility(page)
        swedish_issues(page, "evaluation", swedish)
        overflow(page, "evaluation", wide)
        # Data quality: a recipe's checks per region and its findings, in Swedish.
        visit(page, f"{base}/#/datakvalitet?indicator=kpp_cost&from=2021&to=2025")
        result["quality"] = {
            "rows": rows_of(page, "#quality-table"),
            "findings": rows_of(page, "#findings-table") if page.locator("#findings-table").count() else [],
            "ok_text": page.text_content("#quality .ok") if page.locator("#quality .ok").count() else "",
            "errors": page.locator("#quality .error").count(),
            "nav": page.get_attribute("#nav a[href='#/datakvalitet']", "aria-current"),
        }
        page.screenshot(path=f"{out}/quality.png", full_page=True)
        result["axe_quality"] = accessibility(page)
        swedish_issues(page, "quality", swedish)
        overflow(page, "quality", wide)
        # Combined equity: education gaps within each sex.
        visit(page, f"{base}/#/indikator/diabetes_statin?from=2021&to=2025&dim=education&within=sex")
        result["equity_combined"] = rows_of(page, "#equity .chart-and-table table")
        swedish_issues(page, "equity education × sex", swedish)
        # The same view again: drawn from the page's memory.
        visit(page, f"{base}/#/katalog")
        t1 = time.monotonic()
        visit(page, f"{base}/#/indikator/hip_fracture_surgery_24h?from=2021&to=2023")
        result["cached_view_ms"] = round((time.monotonic() - t1) * 1000)
        # A fresh page load: the coordinator answers the same questions from its cache.
        t2 = time.monotonic()
        page.goto(f"{base}/?reload=1#/indikator/hip_fracture_surgery_24h?from=2021&to=2023")
        ready(page)
        result["reload_view_ms"] = round((time.monotonic() - t2) * 1000)

        # Age-standardised: the chart draws the standardised values, the table has them.
        visit(page, f"{base}/#/indikator/stroke_reperfusion?from=2021&to=2025&std=esp2013")
        result["std_header"] = page.text_content("#cells-table thead")
        result["std_dots"] = page.locator("#compare svg g[aria-description='region'] circle").count()
        result["std_errors"] = page.locator("#compare .error").count()

        # A published comparison value (Riket) from a comparator file: its own row.
        national = f"{out}/riket.csv"
        with open(national, "w", encoding="utf-8") as f:
            f.write("indicator;period;group;value;lower;upper;source;date\n"
                    "hip_fracture_surgery_24h;2021..2023;Riket;72,5 %;71,9 %;73,1 %;Socialstyrelsen, Vården i siffror;2026-05-01\n")
        page.set_input_files("#national", national)
        page.wait_for_function("() => document.getElementById('national-info').textContent.includes('1')")
        visit(page, f"{base}/?n=1#/indikator/hip_fracture_surgery_24h?from=2021&to=2023")
        result["national"] = {"rows": page.locator("#compare tr.published").count(), "text": page.text_content("#compare table"),
                              "marks": page.locator("#compare svg g[aria-description='published'] path").count()}
        page.evaluate("() => localStorage.removeItem('norrsken.national')")

        # A breakdown with small cells: withheld cells show their reasons and suggestions,
        # marked in the chart with a count; one ranked chart per region, kommun names.
        visit(page, f"{base}/#/indikator/stroke_reperfusion?by=kommun&from=2024&to=2024")
        result["cells_kommun"] = rows_of(page, "#cells-table")
        result["kommun_view"] = {
            "charts": page.locator("#compare .ranked").count(),
            "pooled_rows": page.locator("#compare tr.pooled").count(),
            "withheld_marks": page.locator("#compare svg g[aria-description='withheld'] text").count(),
            "note": page.text_content("#compare .withheld-note") if page.locator("#compare .withheld-note").count() else "",
        }
        result["withheld_alternative"] = page.locator("#compare button[data-alternative]").count() > 0
        page.screenshot(path=f"{out}/indicator-withheld.png", full_page=False)
        page.screenshot(path=f"{out}/indicator-kommun.png", full_page=True)
        swedish_issues(page, "indicator by kommun", swedish)
        overflow(page, "indicator by kommun", wide)

        # CSV download of the comparison.
        with page.expect_download() as d:
            page.click("#compare button[data-format='csv']")
        path = f"{out}/comparison.csv"
        d.value.save_as(path)
        result["csv_head"] = open(path, encoding="utf-8").readline().strip()

        # English.
        page.evaluate("() => delete document.getElementById('main').dataset.ready")
        page.click("#lang")
        ready(page)
        result["lang_en"] = {"html": page.get_attribute("html", "lang"), "h2": page.text_content("#compare-h")}
        page.evaluate("() => delete document.getElementById('main').dataset.ready")
        page.click("#lang")
        ready(page)

        # Keyboard: the first Tab reaches the skip link, Enter moves to the content.
        page.goto(f"{base}/?fresh=1#/katalog")
        ready(page)
        page.keyboard.press("Tab")
        result["first_tab"] = page.evaluate("document.activeElement.className")

        # Regional report with an own table.
        own = f"{out}/egna.csv"
        with open(own, "w", encoding="utf-8") as f:
            f.write("Mått;Värde\nVäntetid till strokeenhet (min), egen mätning;42\nMARKER-OWN-7431;1\n")
        page.evaluate("() => delete document.getElementById('main').dataset.ready")
        page.goto(f"{base}/#/rapport")
        page.wait_for_selector("main[data-ready='form']")
        page.select_option("#region", "24")
        page.select_option("#from", "2021")
        page.select_option("#to", "2025")
        for ind in ["stroke_reperfusion", "diabetes_statin"]:
            page.check(f"input[name=indicator][value={ind}]")
        page.set_input_files("#own", own)
        page.fill("#comment", "Övergripande kommentar till ledningen")
        page.click("#make-report")
        page.wait_for_selector("main[data-ready='true'] #report", timeout=120000)
        result["report_sections"] = page.locator("#report .report-page").count()
        result["report_heading"] = page.text_content("#report h1")
        result["report_summary"] = page.locator("#report .summary li").all_text_contents()
        result["report_own"] = page.text_content("#own-source")
        page.screenshot(path=f"{out}/report-form.png", full_page=False)
        page.locator("#report .report-cover").screenshot(path=f"{out}/report.png")
        page.locator("#report .report-page").first.screenshot(path=f"{out}/report-indicator.png")
        result["axe_report"] = accessibility(page)
        swedish_issues(page, "report", swedish)
        overflow(page, "report", wide)
        page.fill("#comment-stroke_reperfusion", "MARKER-COMMENT-55")
        result["report_link"] = page.input_value("#report-link")
        page.emulate_media(media="print")
        page.pdf(path=f"{out}/report-print.pdf", format="A4", print_background=True)
        page.emulate_media(media="screen")
        with page.expect_download() as d:
            page.click("#report-pdf")
        d.value.save_as(f"{out}/report-download.pdf")
        with page.expect_download() as d:
            page.click("#report-xlsx")
        d.value.save_as(f"{out}/report-download.xlsx")
        for name in ["report-print", "report-download"]:
            pdf = PdfReader(f"{out}/{name}.pdf")
            result[name] = {"pages": len(pdf.pages), "first_page": pdf.pages[0].extract_text(), "text": "\n".join(pg.extract_text() for pg in pdf.pages)}
        book = openpyxl.load_workbook(f"{out}/report-download.xlsx")
        result["report_xlsx_sheets"] = book.sheetnames
        result["report_xlsx_filter"] = all(
            bool(ws.auto_filter.ref) and ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0 and bool(ws.sheet_properties.pageSetUpPr.fitToPage)
            for ws in book.worksheets if ws.title != book.sheetnames[-1]
        )

        # The saved definition: the link opens the same report with its comments.
        page.evaluate("() => delete document.getElementById('main').dataset.ready")
        page.goto(result["report_link"].replace("#/rapport", "?link=1#/rapport"))
        page.wait_for_selector("main[data-ready='true'] #report", timeout=120000)
        result["report_from_link"] = {"sections": page.locator("#report .report-page").count(),
                                      "comment": page.input_value("#comment-stroke_reperfusion")}

        # Strangers: no certificate, and a certificate from another CA, get no page.
        for label, c in [("no_certificate", None), ("other_ca", other)]:
            stranger = context(browser, c)
            sp = stranger.new_page()
            try:
                sp.goto(f"{base}/", timeout=15000)
                # Playwright's own TLS layer reports the server's refusal as an error page.
                result[label] = {"app": sp.locator("#main").count() > 0, "page": sp.content()[:300]}
            except Exception as e:  # the TLS handshake fails: no page at all
                result[label] = {"app": False, "error": str(e).splitlines()[0]}
            stranger.close()
    else:
        visit(page, f"{base}/#/indikator/hip_fracture_surgery_24h?from=2021&to=2023")
        result["partial_banners"] = page.locator("[data-partial='true']").count()
        result["partial_text"] = page.text_content("#partial")
        page.screenshot(path=f"{out}/indicator-partial.png", full_page=False)

    result["swedish"] = swedish
    result["overflow"] = wide
    result["page_errors"] = errors
    browser.close()

json.dump(result, sys.stdout)
