// Norrsken web app: catalog, indicator view and regional report over the coordinator's
// HTTPS API (same mutual TLS, roles and audit as the Flight API). Charts with Observable
// Plot (vendored, pinned); every chart has a data table beside it. No data is built into
// HTML strings: every text goes through textContent.
"use strict";
(() => {
  const FIRST_YEAR = 2015;
  const LAST_YEAR = new Date().getFullYear();
  const DEFAULT_PERIOD = ["2021", "2025"];
  const state = {
    lang: localStorage.getItem("norrsken.lang") === "en" ? "en" : "sv",
    catalog: null,
    regions: null,
    who: null,
    answers: new Map(),
    // The analyst's own region, drawn in one colour in every chart.
    focus: localStorage.getItem("norrsken.focus") || "",
    // Published comparison values (Riket, other regions) imported from a file.
    national: JSON.parse(localStorage.getItem("norrsken.national") || "null"),
  };
  const FOCUS_COLOUR = "#b35900";
  const OTHER_COLOUR = "#0b4f8a";

  // ---- words ------------------------------------------------------------------------------
  function T(key, ...args) {
    let s = (window.I18N[state.lang] || {})[key] ?? window.I18N.sv[key] ?? key;
    args.forEach((a, i) => { s = s.replace(`{${i}}`, a); });
    return s;
  }
  const words = (prefix, code) => (code == null || code === "" ? T("none") : (window.I18N[state.lang][`${prefix}.${code}`] ?? code));
  const titleOf = (r) => (state.lang === "sv" ? r.title.sv : r.title.en);
  const textOf = (t) => (t == null ? "" : state.lang === "sv" ? t.sv : t.en);

  // ---- DOM --------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const main = () => document.getElementById("main");

  // ---- numbers ----------------------------------------------------------------------------
  function fmt(kind, v) {
    if (v == null || !Number.isFinite(v)) return T("none");
    const loc = state.lang === "sv" ? "sv-SE" : "en-GB";
    // Decimals and percent per kind come from the one vocabulary (/api/vocabulary,
    // format.<kind>) that the command line, the report's PDF and the xlsx use too.
    const f = (window.I18N[state.lang] || {})["format." + kind] || { decimals: 2, percent: false };
    const digits = { minimumFractionDigits: f.decimals, maximumFractionDigits: f.decimals };
    return new Intl.NumberFormat(loc, f.percent ? { style: "percent", ...digits } : digits).format(v);
  }
  const fmtInt = (v) => (v == null ? T("none") : new Intl.NumberFormat(state.lang === "sv" ? "sv-SE" : "en-GB").format(v));
  const fmtCi = (kind, lo, hi) => (lo == null || hi == null ? T("none") : `${fmt(kind, lo)} – ${fmt(kind, hi)}`);
  // A timestamp as its date in words (7 december 2026), as the PDF and the CLI write it.
  const fmtDate = (ts) => {
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? ts : new Intl.DateTimeFormat(state.lang === "sv" ? "sv-SE" : "en-GB", { day: "numeric", month: "long", year: "numeric" }).format(d);
  };
  const fmtNum = (v, d = 3) => (v == null || !Number.isFinite(v) ? T("none") : new Intl.NumberFormat(state.lang === "sv" ? "sv-SE" : "en-GB", { maximumFractionDigits: d }).format(v));

  // ---- API --------------------------------------------------------------------------------
  async function api(path, body, format) {
    const url = format ? `${path}?format=${format}&lang=${state.lang}` : path;
    const init = body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const res = await fetch(url, init);
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      // The kind of refusal as a heading in the reader's language, the details after it.
      try { const j = await res.json(); message = j.kind ? `${words("error", j.kind)}: ${j.error}` : j.error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return format && format !== "json" ? res.blob() : res.json();
  }
  // Answers are kept for the page's life: going back to a view draws it from memory.
  async function ask(ticket) {
    const key = JSON.stringify(ticket);
    if (!state.answers.has(key)) {
      const p = api("/api/query", ticket);
      state.answers.set(key, p);
      p.catch(() => state.answers.delete(key));
    }
    return state.answers.get(key);
  }
  function save(blob, name) {
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  function downloads(what, ticket, base) {
    const button = (format, label) => el("button", {
      type: "button", class: "secondary", "data-format": format, "aria-label": T("dl.label", label, what),
      onclick: async (ev) => {
        ev.target.disabled = true;
        try { save(await api("/api/query", ticket, format), `${base}.${format}`); } catch (e) { alert(e.message); } finally { ev.target.disabled = false; }
      },
    }, label);
    return el("div", { class: "downloads no-print" }, button("csv", T("dl.csv")), button("xlsx", T("dl.xlsx")));
  }

  // ---- routing ----------------------------------------------------------------------------
  function parseHash() {
    const h = location.hash.replace(/^#\/?/, "");
    const [path, qs] = h.split("?");
    return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || "") };
  }
  function go(parts, params) {
    const qs = params && [...params.keys()].length ? `?${params}` : "";
    location.hash = `#/${parts.map(encodeURIComponent).join("/")}${qs}`;
  }
  async function route() {
    const { parts, params } = parseHash();
    const page = parts[0] || "katalog";
    for (const a of document.querySelectorAll("#nav a")) {
      a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${page === "indikator" ? "katalog" : page}`);
      if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
    }
    const m = main();
    delete m.dataset.ready;
    m.replaceChildren(el("p", { "aria-live": "polite" }, T("loading")));
    try {
      await load();
      if (page === "indikator" && parts[1]) await indicatorPage(parts[1], params);
      else if (page === "rapport") await reportPage(params);
      else if (page === "datakvalitet") await qualityPage(params);
      else catalogPage(params);
    } catch (e) {
      m.replaceChildren(el("h1", { text: T("error") }), el("p", { class: "error", role: "alert" }, e.message));
    }
  }
  async function load() {
    if (!state.catalog) {
      const [catalog, regions, who] = await Promise.all([api("/api/catalog"), api("/api/regions"), api("/api/whoami").catch((e) => ({ error: e.message }))]);
      state.catalog = catalog;
      state.regions = regions;
      state.who = who;
      showWho();
    }
  }
  function showWho() {
    const w = document.getElementById("who");
    if (!state.who) return;
    const who = state.who;
    w.textContent = who.error ? who.error : who.role ? T("who", who.cn, who.role) : T("who.none", `${who.cn} (${who.fingerprint})`);
    w.title = who.fingerprint || "";
  }
  function translateShell() {
    document.documentElement.lang = state.lang;
    for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = T(e.dataset.i18n);
    document.getElementById("nav").setAttribute("aria-label", T("nav.label"));
    const b = document.getElementById("lang");
    b.textContent = T("lang.switch");
    b.lang = state.lang === "sv" ? "en" : "sv";
    b.setAttribute("aria-label", T("lang.switch.label"));
    showWho();
  }

  // ---- catalog ----------------------------------------------------------------------------
  function catalogPage(params) {
    const recipes = state.catalog.recipes;
    const list = el("ul", { class: "cards", id: "recipes" });
    const count = el("p", { class: "muted", "aria-live": "polite" });
    const search = el("input", { type: "search", id: "search", value: params.get("q") || "", autocomplete: "off" });
    const haystack = (r) => [r.id, r.title.sv, r.title.en, r.source, T(`source.${r.source}`), r.area?.sv, r.area?.en].join(" ").toLowerCase();
    const draw = () => {
      const q = search.value.trim().toLowerCase();
      const shown = recipes.filter((r) => !q || q.split(/\s+/).every((w) => haystack(r).includes(w)));
      list.replaceChildren(...shown.map(card));
      count.textContent = T("catalog.count", shown.length, recipes.length);
    };
    search.addEventListener("input", draw);
    main().replaceChildren(
      el("h1", { text: T("catalog.title") }),
      el("p", { class: "desc", text: T("catalog.intro") }),
      el("label", { for: "search", text: T("catalog.search") }), search, count, list);
    draw();
    main().dataset.ready = "true";
  }
  function card(r) {
    const row = (k, v) => (v ? [el("dt", { text: k }), el("dd", { text: v })] : []);
    return el("li", { "data-recipe": r.id },
      el("h2", {}, el("a", { href: `#/indikator/${encodeURIComponent(r.id)}` }, titleOf(r))),
      el("div", {}, el("span", { class: "tag", text: T(`source.${r.source}`) }), r.area ? el("span", { class: "tag", text: textOf(r.area) }) : null, el("span", { class: "tag", text: words("kind", r.kind) })),
      el("p", { text: textOf(r.description) }),
      el("dl", {},
        row(T("catalog.population"), textOf(r.population)),
        row(T("catalog.numerator"), textOf(r.numerator)),
        row(T("catalog.breakdowns"), r.breakdowns.map((b) => words("breakdown", b)).join(", ")),
        row(T("catalog.version"), `${r.id}@${r.version}`)));
  }

  // ---- indicator view ---------------------------------------------------------------------
  function recipeOf(id) {
    const r = state.catalog.recipes.find((x) => x.id === id);
    if (!r) throw new Error(`${state.lang === "sv" ? "Okänd indikator" : "Unknown indicator"} '${id}'`);
    return r;
  }
  function select(id, label, options, value, onchange) {
    const s = el("select", { id, name: id, onchange }, options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)));
    return el("div", {}, el("label", { for: id, text: label }), s);
  }
  function questionOf(r, params) {
    const allowed = (b) => r.breakdowns.includes(b);
    const by = params.get("by") || "";
    const from = params.get("from") || DEFAULT_PERIOD[0];
    const to = params.get("to") || DEFAULT_PERIOD[1];
    const perspective = params.get("perspective") || "provider";
    const std = r.age_standardisation ? params.get("std") || "" : "";
    const dims = ["education", "income_quintile", "birth_country", "sex"].filter(allowed);
    const dim = dims.includes(params.get("dim")) ? params.get("dim") : dims[0] || "";
    // A second equity dimension: the gaps by `dim` within each group of `within` (sex ×
    // education, as the HFS reports ask).
    const within = dims.includes(params.get("within")) && params.get("within") !== dim ? params.get("within") : "";
    const units = params.get("units") === "kommun" && allowed("kommun") ? "kommun" : "region";
    // Part of a single year: a quarter (Q1..Q4) or a month (01..12); rates need whole years.
    const part = from === to && r.kind !== "rate" && /^(Q[1-4]|0[1-9]|1[0-2])$/.test(params.get("part") || "") ? params.get("part") : "";
    const period = from !== to ? `${from}..${to}` : !part ? from : part.startsWith("Q") ? `${from}${part}` : `${from}-${part}`;
    return { by: allowed(by) ? by : "", from, to, part, perspective, std, dim, dims, within, units, period };
  }
  function ticket(r, q, breakdowns, analysis) {
    const options = { perspective: q.perspective };
    if (q.std) options.standardise = q.std;
    if (analysis) options.analysis = analysis;
    return { indicator: r.id, breakdowns, period: q.period, options };
  }

  // The parts of a year a question may cover: the whole year, a quarter or a month.
  function partsOfYear() {
    const month = new Intl.DateTimeFormat(state.lang === "sv" ? "sv-SE" : "en-GB", { month: "long" });
    const months = Array.from({ length: 12 }, (_, i) => [String(i + 1).padStart(2, "0"), month.format(new Date(2000, i, 1))]);
    return [["", T("part.whole")], ...[1, 2, 3, 4].map((n) => [`Q${n}`, T("part.quarter", n)]), ...months];
  }

  async function indicatorPage(id, params) {
    const r = recipeOf(id);
    const q = questionOf(r, params);
    const update = (key) => (ev) => { const p = new URLSearchParams(params); p.set(key, ev.target.value); go(["indikator", id], p); };
    const years = [];
    for (let y = FIRST_YEAR; y <= LAST_YEAR; y++) years.push([String(y), String(y)]);
    // A cohort's arms and measures are always shown; no equity, standardisation or funnel.
    const breakdowns = r.breakdowns.filter((b) => !["year", "quarter", "month", "arm", "measure"].includes(b));
    const controls = el("fieldset", { class: "controls no-print" }, el("legend", { text: T("ind.controls") }),
      select("by", T("ind.by"), [["", T("b.none")], ...breakdowns.map((b) => [b, words("breakdown", b)])], q.by, update("by")),
      select("from", T("ind.from"), years, q.from, update("from")),
      select("to", T("ind.to"), years, q.to, update("to")),
      q.from === q.to && r.kind !== "rate" ? select("part", T("ind.part"), partsOfYear(), q.part, update("part")) : null,
      select("perspective", T("ind.perspective"), [["provider", T("persp.provider")], ["population", T("persp.population")]], q.perspective, update("perspective")),
      r.age_standardisation ? select("std", T("ind.standard"), [["", T("std.none")], ["esp2013", T("std.esp2013")], ["se2020", T("std.se2020")]], q.std, update("std")) : null,
      q.dims.length && !r.cohort ? select("dim", T("ind.dimension"), q.dims.map((d) => [d, words("breakdown", d)]), q.dim, update("dim")) : null,
      q.dims.length > 1 && !r.cohort ? select("within", T("ind.within"), [["", T("ind.within.none")], ...q.dims.filter((d) => d !== q.dim).map((d) => [d, words("breakdown", d)])], q.within, update("within")) : null,
      r.breakdowns.includes("kommun") && !r.cohort ? select("units", T("ind.units"), [["region", T("units.region")], ["kommun", T("units.kommun")]], q.units, update("units")) : null,
      select("focus", T("ind.focus"), [["", T("ind.focus.none")], ...(state.regions || []).map((x) => [x.region, x.name])], state.focus, (ev) => { state.focus = ev.target.value; localStorage.setItem("norrsken.focus", state.focus); route(); }));
    const partial = el("div", { id: "partial" });
    const views = el("div", {});
    const footer = el("section", { class: "view", id: "provenance", "aria-labelledby": "prov-h" });
    main().replaceChildren(el("h1", { text: titleOf(r) }), el("p", { class: "desc", text: textOf(r.description) }), controls, el("details", { class: "no-print" }, el("summary", { text: T("national.label") }), nationalImport()), partial, views, footer);
    const compareTicket = ticket(r, q, q.by ? [q.by] : [], null);
    const trendTicket = ticket(r, q, ["year"], { kind: "trend", against: "pooled" });
    // A count grows with the population: no funnel plot or equity gaps of counts.
    const counted = r.kind === "count";
    const funnelTicket = counted ? null : ticket(r, q, q.units === "kommun" ? ["kommun"] : [], { kind: "funnel", against: "pooled", units: q.units });
    const equityTicket = q.dim && !counted ? ticket(r, q, q.within ? [q.dim, q.within] : [q.dim], { kind: "equity", against: "pooled", dimension: q.dim }) : null;
    // A cohort recipe is evaluated: its effect per region and across regions, then its cells.
    const cohort = !!r.cohort;
    const sections = cohort ? {
      evaluate: el("section", { class: "view", id: "evaluate", "aria-labelledby": "evaluate-h" }),
      cells: el("section", { class: "view", id: "cells", "aria-labelledby": "cells-h" }),
    } : {
      compare: el("section", { class: "view", id: "compare", "aria-labelledby": "compare-h" }),
      trend: el("section", { class: "view", id: "trend", "aria-labelledby": "trend-h" }),
      funnel: funnelTicket ? el("section", { class: "view", id: "funnel", "aria-labelledby": "funnel-h" }) : null,
      equity: equityTicket ? el("section", { class: "view", id: "equity", "aria-labelledby": "equity-h" }) : null,
      cells: el("section", { class: "view", id: "cells", "aria-labelledby": "cells-h" }),
    };
    views.append(...Object.values(sections).filter(Boolean));
    const base = `${r.id}-${q.period.replace("..", "-")}`;
    const fill = async (section, heading, desc, t, draw, file) => {
      section.replaceChildren(el("h2", { id: `${section.id}-h`, text: heading }), el("p", { class: "desc", text: desc }), el("p", { text: T("loading") }));
      try {
        const answer = await ask(t);
        section.lastChild.remove();
        section.append(downloads(heading, t, file));
        draw(section, answer);
        return answer;
      } catch (e) {
        section.lastChild.replaceWith(el("p", { class: "error", role: "alert" }, e.message));
        return null;
      }
    };
    if (cohort) {
      const own = q.by && !["arm", "measure"].includes(q.by) ? [q.by] : [];
      const evaluateTicket = ticket(r, q, own, { kind: "evaluate", against: "pooled" });
      await Promise.all([
        fill(sections.evaluate, T("sec.evaluate"), T("sec.evaluate.desc"), evaluateTicket, (s, a) => drawEvaluation(s, r, a, own[0]), `${base}-utvardering`),
        ask(ticket(r, q, own, null)).then((a) => {
          showPartial(partial, a.metadata);
          drawCells(sections.cells, r, a, ticket(r, q, own, null), `${base}-celler`);
          drawProvenance(footer, a.metadata);
        }).catch((e) => sections.cells.replaceChildren(el("p", { class: "error", role: "alert" }, e.message))),
      ]);
      main().dataset.ready = "true";
      return;
    }
    const compared = fill(sections.compare, T("sec.compare"), T("sec.compare.desc"), compareTicket, (s, a) => drawCompare(s, r, a, q), `${base}-jamforelse`);
    const jobs = [
      compared.then((a) => {
        if (!a) return;
        showPartial(partial, a.metadata);
        drawCells(sections.cells, r, a, compareTicket, `${base}-celler`);
        drawProvenance(footer, a.metadata);
      }),
      fill(sections.trend, T("sec.trend"), T("sec.trend.desc"), trendTicket, (s, a) => drawTrend(s, r, a), `${base}-trend`),
      funnelTicket ? fill(sections.funnel, T("sec.funnel"), T("sec.funnel.desc"), funnelTicket, (s, a) => drawFunnel(s, r, a), `${base}-tratt`) : null,
      equityTicket ? fill(sections.equity, `${T("sec.equity")}: ${words("breakdown", q.dim)}${q.within ? ` × ${words("breakdown", q.within).toLowerCase()}` : ""}`, T("sec.equity.desc"), equityTicket, (s, a) => drawEquity(s, r, a, q.within), `${base}-jamlikhet`) : null,
    ];
    await Promise.all(jobs.filter(Boolean));
    main().dataset.ready = "true";
  }

  function showPartial(box, md) {
    if (md["norrsken.partial"] !== "true") { box.replaceChildren(); return; }
    const regions = JSON.parse(md["norrsken.regions"] || "[]");
    const missing = regions.filter((x) => x.status !== "ok").map((x) => `${x.name} (${words("status", x.status)})`);
    box.replaceChildren(el("p", { class: "partial", role: "alert", "data-partial": "true" }, T("partial.banner", missing.join(", "))));
  }

  // The columns of a comparison row that are its breakdown labels.
  const FIXED = new Set(["row_kind", "region", "region_name", "category", "numerator", "denominator", "value_sum", "value", "ci_lower", "ci_upper", "status", "reason", "suggestion", "partial", "std_value", "std_lower", "std_upper"]);
  const labelCols = (rows) => [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !FIXED.has(k));
  // A breakdown value's name from the one vocabulary (female → Kvinnor, 2480 → Umeå); values
  // that are their own names (years, age bands) as they are.
  const valueName = (b, code) => {
    if (code == null) return "";
    const named = (window.I18N[state.lang] || {})[`value.${b}.${code}`];
    if (named != null) return named;
    if (b === "age_band") return `${String(code).replace("-", "–")} ${T("age.years")}`;
    return String(code);
  };
  const labelOf = (row, cols) => cols.map((c) => valueName(c, row[c])).filter((x) => x !== "").join(" · ");
  const categoryName = (r, c) => { const k = r.categories?.find((x) => x.code === c); return k ? (state.lang === "sv" ? k.sv : k.en) : (c ?? ""); };
  const axisOf = (md) => md[`norrsken.axis_${state.lang}`] || md["norrsken.value"];
  // A suggestion as it travels (drop|kommun|2021..2025) in words, from the vocabulary's
  // templates (suggest.<key>), as the command line, the xlsx and Flight SQL write it.
  function suggestionText(code) {
    if (!code) return "";
    const [key, ...args] = code.split("|");
    const tpl = (k, a) => {
      let t = (window.I18N[state.lang] || {})[`suggest.${k}`];
      if (t == null) return code;
      a.forEach((x, i) => { t = t.replace(`{${i}}`, x); });
      return t;
    };
    const period = (p) => String(p || "").replace("..", "–");
    switch (key) {
      case "drop": {
        const b = args[0];
        if (b === "kommun") return tpl("drop.kommun", []);
        if (b === "age_band") return tpl("drop.age_band", []);
        const name = words("breakdown", b).toLowerCase();
        return ["year", "quarter", "month"].includes(b) ? tpl("drop.time", [period(args[1]), name]) : tpl("drop", [name]);
      }
      case "whole_too_few": return tpl("whole_too_few", [period(args[0])]);
      case "nothing_coarser": case "pooled_nothing_coarser": return tpl(key, []);
      case "followup": return tpl("followup", [args[0], fmtDate(args[1]), fmtDate(args[2]), args[3]]);
      default: return code;
    }
  }
  // Axis ticks written as the reader writes numbers (0,25; 1 000).
  const tick = (d) => fmtNum(d, 3);
  // A change per year on the value's scale: procentenheter for a share.
  const fmtYearly = (kind, v) => {
    if (v == null || !Number.isFinite(v)) return T("none");
    const sign = v > 0 ? "+" : "";
    return kind === "proportion" ? `${sign}${fmtNum(v, 1)} ${T("unit.pp")}` : `${sign}${fmt(kind, v)}`;
  };
  // A gap between groups on the value's scale: procentenheter for a share.
  const fmtGap = (kind, v) => (v == null || !Number.isFinite(v) ? T("none") : kind === "proportion" ? `${fmtNum(v * 100, 1)} ${T("unit.pp")}` : fmt(kind, v));
  const regionLabel = (row) => (row.row_kind === "pooled" || row.row === "pooled" ? `${row.region_name} (${T("pooled")})` : row.region_name);

  // A data table; `rowData(i)` gives a row's data-* attributes (raw values for tests and tools).
  function table(caption, headers, rows, rowClass, rowData, id) {
    const data = (i) => Object.fromEntries(Object.entries(rowData ? rowData(i) : {}).map(([k, v]) => [`data-${k}`, v == null ? null : String(v)]));
    // In a box that scrolls sideways on a narrow screen, so the page itself never does.
    return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, el("table", { class: "data", id },
      el("caption", { text: caption }),
      el("thead", {}, el("tr", {}, headers.map(([h, num]) => el("th", { scope: "col", class: num ? "num" : null, text: h })))),
      el("tbody", {}, rows.map((cells, i) => el("tr", { class: rowClass ? rowClass(i) : null, ...data(i) }, cells.map(([v, num, cls], j) => (j === 0 ? el("th", { scope: "row", text: v }) : el("td", { class: [num ? "num" : null, cls].filter(Boolean).join(" ") || null, text: v }))))))));
  }

  function figure(plot, description) {
    const f = el("figure", { class: "chart", role: "group", "aria-label": description });
    if (plot) {
      plot.setAttribute("role", "img");
      plot.setAttribute("aria-label", description);
      f.append(plot);
    } else {
      f.append(el("p", { class: "muted", text: T("no.values") }));
    }
    return f;
  }

  // Published values (Riket, other regions) for this indicator and period, from the
  // imported comparator file: their own rows, never mixed into pooled values.
  function nationalRows(r, period) {
    return (state.national?.values || []).filter((v) => v.indicator === r.id && v.period === period);
  }

  function drawCompare(section, r, answer, q) {
    const md = answer.metadata;
    const kind = md["norrsken.kind"];
    const standardised = !!md["norrsken.standard"];
    const cols = labelCols(answer.rows).filter((c) => !(standardised && c === "age_band"));
    const byKommun = cols.includes("kommun");
    let rows = answer.rows.filter((x) => x.row_kind !== "missing");
    if (standardised) rows = rows.filter((x) => x.age_band == null || x.age_band === "total");
    // A kommun belongs to one region: no pooled row per kommun.
    if (byKommun) rows = rows.filter((x) => x.row_kind !== "pooled");
    const val = (x) => (standardised ? x.std_value : x.value);
    const lo = (x) => (standardised ? x.std_lower : x.ci_lower);
    const hi = (x) => (standardised ? x.std_upper : x.ci_upper);
    const withheld = rows.filter((x) => val(x) == null);
    const national = cols.length === 0 ? nationalRows(r, md["norrsken.period"]) : [];
    const target = r.target ? r.target.value : null;
    const percent = kind === "proportion";
    const mark = (p) => (p.region === state.focus ? FOCUS_COLOUR : OTHER_COLOUR);
    const figures = [];
    if (window.Plot && rows.length) {
      if (byKommun) {
        // One ranked chart per region: its kommuner by value, withheld ones marked at the end.
        const regions = [...new Set(rows.map((x) => x.region))];
        for (const code of regions) {
          const own = rows.filter((x) => x.region === code && x.kommun !== "total");
          const shown = own.filter((x) => val(x) != null).sort((a, b) => val(b) - val(a));
          const hidden = own.filter((x) => val(x) == null);
          const name = own[0]?.region_name || code;
          const points = shown.map((x) => ({ name: valueName("kommun", x.kommun), value: val(x), lower: lo(x), upper: hi(x), region: x.region }));
          const missing = hidden.map((x) => ({ name: valueName("kommun", x.kommun) }));
          const domain = [...points.map((p) => p.name), ...missing.map((p) => p.name)];
          if (!domain.length) continue;
          const plot = Plot.plot({
            marginLeft: 150, marginRight: 20, marginTop: 28, width: 560, height: 50 + domain.length * 22,
            x: { label: axisOf(md), percent, grid: true, nice: true, tickFormat: tick }, y: { label: null, domain },
            style: { fontSize: "12px", color: "#1a1a1a" },
            marks: [
              Plot.ruleY(points.filter((p) => p.lower != null), { y: "name", x1: "lower", x2: "upper", stroke: mark, strokeWidth: 2, ariaHidden: true }),
              Plot.dot(points, { y: "name", x: "value", fill: mark, r: 4.5, ariaDescription: "kommun", ariaLabel: (p) => `${p.name}: ${fmt(kind, p.value)}`, title: (p) => `${p.name}: ${fmt(kind, p.value)} (${fmtCi(kind, p.lower, p.upper)})` }),
              Plot.text(missing, { y: "name", text: () => `× ${T("not.released")}`, frameAnchor: "left", dx: 4, fill: "#9b1c1c", ariaDescription: "withheld" }),
              target != null ? Plot.ruleX([target], { stroke: "#1d6b3a", strokeWidth: 2, strokeDasharray: "6,3", ariaHidden: true }) : null,
            ],
          });
          figures.push(el("div", { class: "ranked" }, el("h3", { text: name }), figure(plot, T("chart.ranked", name, titleOf(r)))));
        }
      } else {
        const points = rows.filter((x) => val(x) != null).map((x) => ({
          name: regionLabel(x), group: labelOf(x, cols) || categoryName(r, x.category), value: val(x), lower: lo(x), upper: hi(x), pooled: x.row_kind === "pooled", region: x.region,
        }));
        const missing = withheld.map((x) => ({ name: regionLabel(x), group: labelOf(x, cols) || categoryName(r, x.category) }));
        const published = national.map((v) => ({ name: `${v.group} (${v.source})`, group: "", value: v.value, lower: v.lower, upper: v.upper }));
        const facet = cols.length > 0 || r.categories?.length > 0;
        const regionsOnly = points.filter((p) => !p.pooled);
        const pooled = points.filter((p) => p.pooled);
        const names = [...new Set([...points, ...missing].map((p) => p.name)), ...published.map((p) => p.name)];
        const marks = [
          Plot.ruleY(points.filter((p) => p.lower != null), { y: "name", fy: facet ? "group" : undefined, x1: "lower", x2: "upper", stroke: (p) => (p.pooled ? "#1a1a1a" : mark(p)), strokeWidth: 2, ariaDescription: "interval", ariaHidden: true }),
          Plot.dot(regionsOnly, { y: "name", fy: facet ? "group" : undefined, x: "value", fill: mark, r: 5, ariaDescription: "region", ariaLabel: (p) => `${p.name}: ${fmt(kind, p.value)}`, title: (p) => `${p.name} ${p.group}: ${fmt(kind, p.value)} (${fmtCi(kind, p.lower, p.upper)})` }),
          Plot.dot(pooled, { y: "name", fy: facet ? "group" : undefined, x: "value", symbol: "square", fill: "#fff", stroke: "#1a1a1a", r: 5, ariaDescription: "pooled", ariaLabel: (p) => `${p.name}: ${fmt(kind, p.value)}`, title: (p) => `${p.name}: ${fmt(kind, p.value)}` }),
          // Withheld cells are marked where their value would be, not left out.
          Plot.text(missing, { y: "name", fy: facet ? "group" : undefined, text: () => `× ${T("not.released")}`, frameAnchor: "left", dx: 4, fill: "#9b1c1c", ariaDescription: "withheld" }),
        ];
        if (published.length) {
          marks.push(Plot.ruleY(published.filter((p) => p.lower != null), { y: "name", x1: "lower", x2: "upper", stroke: "#6b2d8a", strokeWidth: 2, strokeDasharray: "3,2", ariaHidden: true }),
            Plot.dot(published, { y: "name", x: "value", symbol: "diamond", fill: "#6b2d8a", r: 5.5, ariaDescription: "published", ariaLabel: (p) => `${p.name}: ${fmt(kind, p.value)}`, title: (p) => `${p.name}: ${fmt(kind, p.value)}` }));
        }
        if (!facet && pooled.length) marks.push(Plot.ruleX(pooled, { x: "value", stroke: "#1a1a1a", strokeDasharray: "4,3", ariaDescription: "pooled value", ariaHidden: true }));
        if (target != null) marks.push(Plot.ruleX([target], { stroke: "#1d6b3a", strokeWidth: 2, strokeDasharray: "6,3", ariaDescription: "target", ariaHidden: true }), Plot.text([target], { x: (d) => d, frameAnchor: "top", dy: -2, text: () => `${T("target")} ${fmt(kind, target)}`, fill: "#1d6b3a", ariaHidden: true }));
        const count = points.length + missing.length + published.length;
        figures.push(figure(Plot.plot({
          marginLeft: 190, marginRight: 30, marginTop: 24, width: 680, height: facet ? Math.min(1400, 60 + count * 26) : 60 + count * 34,
          x: { label: axisOf(md), percent, grid: true, nice: true, tickFormat: tick },
          y: { label: null, domain: names },
          fy: facet ? { label: null } : undefined,
          style: { fontSize: "13px", color: "#1a1a1a" },
          marks,
        }), T("chart.compare", titleOf(r))));
      }
    }
    if (!figures.length) figures.push(figure(null, T("chart.compare", titleOf(r))));
    const shownRows = byKommun ? rows.filter((x) => x.kommun !== "total") : rows;
    const tableRows = shownRows.map((x) => [[regionLabel(x) + (labelOf(x, cols) ? ` · ${labelOf(x, cols)}` : "") + (x.category ? ` · ${categoryName(r, x.category)}` : "")], [val(x) == null ? `${T("not.released")} ¹` : fmt(kind, val(x)), true], [fmtCi(kind, lo(x), hi(x)), true], [words("status", x.status)]]);
    for (const v of national) tableRows.push([[`${v.group} (${v.source}${v.date ? `, ${fmtDate(v.date)}` : ""})`], [fmt(kind, v.value), true], [fmtCi(kind, v.lower, v.upper), true], [T("published")]]);
    const notes = [];
    const shownWithheld = shownRows.filter((x) => val(x) == null);
    if (shownWithheld.length) {
      // How many are missing, why (the footnote) and a way to ask that is known to be released.
      const why = [...new Set(shownWithheld.flatMap((x) => (x.reason ? x.reason.split(",") : [])).map((c) => words("reason", c.trim())))];
      notes.push(el("p", { class: "withheld-note", "data-withheld": String(shownWithheld.length) }, `¹ ${T("withheld.count", shownWithheld.length, shownRows.length)}${why.length ? `: ${why.join("; ")}` : ""}.`));
      const drops = [...new Set(shownWithheld.map((x) => x.suggestion || "").filter((c) => c.startsWith("drop|")).map((c) => c.split("|")[1]))];
      if (q && drops.includes(q.by)) {
        notes.push(el("p", {}, el("button", { type: "button", class: "secondary", "data-alternative": q.by, onclick: () => { const p = new URLSearchParams(location.hash.split("?")[1] || ""); p.set("by", ""); go(["indikator", r.id], p); } }, T("alternative.drop", words("breakdown", q.by).toLowerCase()))));
      }
    }
    section.append(el("div", { class: byKommun ? "ranked-charts" : "chart-and-table" },
      el("div", {}, figures),
      el("div", {}, table(T("sec.compare"), [[T("col.region")], [T("col.value"), true], [T("col.ci"), true], [T("col.status")]], tableRows, (i) => (i >= shownRows.length ? "published" : shownRows[i].row_kind === "pooled" ? "pooled" : val(shownRows[i]) == null ? "withheld" : null)), notes)));
  }

  function drawCells(section, r, answer, t, file) {
    const md = answer.metadata;
    const kind = md["norrsken.kind"];
    const cols = labelCols(answer.rows);
    const std = !!md["norrsken.standard"];
    const headers = [[T("col.region")], ...cols.map((c) => [words("breakdown", c)]), ...(r.categories?.length ? [[T("col.category")]] : []), [T("col.numerator"), true], [T("col.denominator"), true], [T("col.value"), true], [T("col.ci"), true], ...(std ? [[T("col.std"), true]] : []), [T("col.status")], [T("col.reason")], [T("col.suggestion")]];
    const reasons = (s) => (s ? s.split(",").map((x) => words("reason", x.trim())).join("; ") : "");
    const rows = answer.rows.map((x) => [
      [regionLabel(x)], ...cols.map((c) => [x[c] == null ? T("none") : valueName(c, x[c])]), ...(r.categories?.length ? [[x.category == null ? T("none") : categoryName(r, x.category)]] : []),
      [fmtInt(x.numerator), true], [fmtInt(x.denominator), true], [fmt(kind, x.value), true], [fmtCi(kind, x.ci_lower, x.ci_upper), true],
      ...(std ? [[x.std_value == null ? T("none") : `${fmt(kind, x.std_value)} (${fmtCi(kind, x.std_lower, x.std_upper)})`, true]] : []),
      [words("status", x.status)], [reasons(x.reason)], [suggestionText(x.suggestion)],
    ]);
    section.replaceChildren(el("h2", { id: "cells-h", text: T("sec.cells") }), el("p", { class: "desc", text: T("sec.cells.desc") }), downloads(T("sec.cells"), t, file),
      table(T("sec.cells"), headers, rows, (i) => ({ pooled: "pooled", missing: "missing" }[answer.rows[i].row_kind] || (answer.rows[i].status === "suppressed" ? "withheld" : null)),
        (i) => { const x = answer.rows[i]; return { kind: x.row_kind, region: x.region, labels: cols.map((c) => x[c] ?? "").join("|"), category: x.category, numerator: x.numerator, denominator: x.denominator, value: x.value, status: x.status, reason: x.reason }; }));
    section.querySelector("table").id = "cells-table";
  }

  function drawProvenance(footer, md) {
    const regions = JSON.parse(md["norrsken.regions"] || "[]");
    const item = (k, v) => (v ? [el("dt", { text: k }), el("dd", { text: v })] : []);
    footer.replaceChildren(el("h2", { id: "prov-h", text: T("sec.provenance") }),
      md["norrsken.partial"] === "true" ? el("p", { class: "partial", "data-partial": "true", text: T("partial.banner", regions.filter((x) => x.status !== "ok").map((x) => `${x.name} (${words("status", x.status)})`).join(", ")) }) : el("p", { text: T("prov.complete") }),
      el("dl", { class: "provenance" },
        item(T("prov.regions"), regions.map((x) => `${x.name}: ${words("status", x.status)}${x.data_version ? `, ${T("prov.data", x.data_version)}` : ""}${x.policy_version ? `, ${T("prov.policy", x.policy_version)}` : ""}`).join(" · ")),
        item(T("prov.declaration"), md[`norrsken.declaration_${state.lang}`]),
        item(T("prov.recipe"), `${md["norrsken.recipe"]} (${(md["norrsken.recipe_hash"] || "").slice(0, 12)})`),
        item(T("prov.catalog"), (md["norrsken.catalog_hash"] || "").slice(0, 12)),
        item(T("prov.period"), md["norrsken.period"]),
        item(T("prov.followup"), md["norrsken.followup_through"] ? T("note.followup_through", md["norrsken.followup_through"]) : ""),
        item(T("prov.counting"), md["norrsken.counted_per_region"] === "true" ? T("note.counted_per_region") : ""),
        item(T("prov.pooled"), md["norrsken.secure_sum"] === "true" ? T("note.secure_sum") : ""),
        item(T("prov.perspective"), words("persp", md["norrsken.perspective"])),
        item(T("prov.query"), md["norrsken.query_id"]),
        item(T("prov.receipt"), md["norrsken.audit_seq"] ? `seq ${md["norrsken.audit_seq"]} · ${(md["norrsken.audit_hash"] || "").slice(0, 16)}` : ""),
        item(T("prov.cached"), md["norrsken.cached"] === "true" ? T("yes") : T("no")),
        item(T("prov.method"), [md["norrsken.ci"], md["norrsken.standard_title"]].filter(Boolean).join(" · "))));
  }

  function drawTrend(section, r, answer) {
    const kind = answer.metadata["norrsken.kind"];
    const years = answer.rows.filter((x) => x.row === "year" && x.value != null).map((x) => ({ name: x.region_name, region: x.region, year: x.year, value: x.value, lower: x.ci_lower, upper: x.ci_upper }));
    const trends = answer.rows.filter((x) => x.row === "trend");
    let plot = null;
    if (years.length && window.Plot) {
      plot = Plot.plot({
        width: 720, height: 320, marginLeft: 60, marginRight: 150,
        x: { label: T("col.year"), tickFormat: "d", ticks: [...new Set(years.map((p) => p.year))] },
        y: { label: axisOf(answer.metadata), percent: kind === "proportion", grid: true, nice: true, tickFormat: tick },
        color: { legend: false, ...seriesColours(years) },
        style: { fontSize: "13px", color: "#1a1a1a" },
        marks: [
          Plot.line(years, { x: "year", y: "value", stroke: "name", strokeWidth: (p) => (p.region === state.focus ? 3.5 : 1.6), ariaDescription: "trend line", ariaHidden: true }),
          Plot.dot(years, { x: "year", y: "value", fill: "name", r: 3.5, ariaDescription: "year", ariaLabel: (p) => `${p.name} ${p.year}: ${fmt(kind, p.value)}`, title: (p) => `${p.name} ${p.year}: ${fmt(kind, p.value)} (${fmtCi(kind, p.lower, p.upper)})` }),
          Plot.text(years, Plot.selectLast({ x: "year", y: "value", z: "name", text: "name", dx: 6, textAnchor: "start", fill: "name", ariaHidden: true })),
          r.target ? Plot.ruleY([r.target.value], { stroke: "#1d6b3a", strokeDasharray: "6,3", ariaDescription: "target", ariaHidden: true }) : null,
        ],
      });
    }
    // The change per year on the value's scale (procentenheter for a share), the model's
    // ratio as a detail.
    const change = (x) => (x.yearly == null ? T("none") : `${fmtYearly(kind, x.yearly)} (${fmtYearly(kind, x.yearly_lower)} – ${fmtYearly(kind, x.yearly_upper)})`);
    const ratio = (x) => (x.change == null || x.change_unit === "difference per year" ? "" : `${words("change_unit", x.change_unit)} ${fmtNum(x.change)} (${fmtNum(x.change_lower)} – ${fmtNum(x.change_upper)})`);
    section.append(el("div", { class: "chart-and-table" },
      figure(plot, T("chart.trend", titleOf(r))),
      table(T("sec.trend"), [[T("col.region")], [T("col.change"), true], [T("col.flag")], [T("col.model")]], trends.map((x) => [[x.region_name], [change(x), true], [words("flag", x.flag)], [ratio(x)]]))));
    const yearTable = table(T("sec.trend"), [[T("col.region")], [T("col.year"), true], [T("col.value"), true], [T("col.ci"), true], [T("col.status")]], answer.rows.filter((x) => x.row === "year").map((x) => [[x.region_name], [String(x.year), true], [fmt(kind, x.value), true], [fmtCi(kind, x.ci_lower, x.ci_upper), true], [words("status", x.status)]]));
    section.append(el("details", {}, el("summary", { text: `${T("sec.trend")}: ${T("col.year")}` }), yearTable));
  }

  // Series colours with the analyst's own region always in the focus colour.
  function seriesColours(points) {
    const names = [...new Set(points.map((p) => p.name))];
    const others = ["#0b4f8a", "#6b2d8a", "#00706f", "#1a1a1a", "#7a5c00", "#4a4a4a"];
    let n = 0;
    const range = names.map((name) => (points.find((p) => p.name === name)?.region === state.focus ? FOCUS_COLOUR : others[n++ % others.length]));
    return { domain: names, range };
  }

  const FUNNEL_MARK = { better: ["#1d6b3a", "triangle"], worse: ["#9b1c1c", "diamond"], similar: ["#0b4f8a", "circle"] };

  function drawFunnel(section, r, answer) {
    const kind = answer.metadata["norrsken.kind"];
    const units = answer.rows.filter((x) => x.row === "unit");
    const plotted = units.filter((x) => x.value != null && x.precision != null);
    const limits = answer.rows.filter((x) => x.row === "limit");
    let plot = null;
    if (plotted.length && window.Plot) {
      const curve = (key, dash) => Plot.line(limits.filter((x) => x[key] != null), { x: "precision", y: key, stroke: "#4a4a4a", strokeDasharray: dash, ariaDescription: `limit ${key}`, ariaHidden: true });
      plot = Plot.plot({
        width: 720, height: 360, marginLeft: 60,
        x: { label: state.lang === "sv" ? "Underlag (precision)" : "Base (precision)", type: "log", grid: true },
        y: { label: axisOf(answer.metadata), percent: kind === "proportion", grid: true, nice: true, tickFormat: tick },
        style: { fontSize: "13px", color: "#1a1a1a" },
        marks: [
          curve("lower_95", "4,3"), curve("upper_95", "4,3"), curve("lower_998", "1,2"), curve("upper_998", "1,2"),
          limits.length ? Plot.ruleY([limits[0].centre], { stroke: "#1a1a1a", ariaDescription: "centre", ariaHidden: true }) : null,
          // Colour and shape by the recipe's direction (better green triangle, worse red
          // diamond, within the limits blue circle): never red for a region that does
          // better, and not by colour alone.
          Plot.dot(plotted, { x: "precision", y: "value", fill: (x) => FUNNEL_MARK[x.significance]?.[0] ?? FUNNEL_MARK.similar[0], symbol: (x) => FUNNEL_MARK[x.significance]?.[1] ?? FUNNEL_MARK.similar[1], r: 5, stroke: (x) => (x.unit === state.focus ? FOCUS_COLOUR : "none"), strokeWidth: 3, ariaDescription: "unit", ariaLabel: (x) => `${x.unit_name}: ${fmt(kind, x.value)} (${words("pos", x.position)}${x.significance && x.significance !== "similar" ? `, ${words("sig", x.significance)}` : ""})`, title: (x) => `${x.unit_name}: ${fmt(kind, x.value)} (${words("pos", x.position)})` }),
          plotted.length <= 12 ? Plot.text(plotted, { x: "precision", y: "value", text: "unit_name", dx: 8, textAnchor: "start", ariaHidden: true }) : null,
        ],
      });
    }
    section.append(el("div", { class: "chart-and-table" },
      figure(plot, T("chart.funnel", titleOf(r))),
      table(T("sec.funnel"), [[T("col.unit")], [T("col.value"), true], [T("col.position")]], units.map((x) => [[x.unit_name || x.unit], [fmt(kind, x.value), true], [x.significance && x.significance !== "similar" && x.significance !== "not_compared" ? `${words("pos", x.position)}: ${words("sig", x.significance)}` : words("pos", x.position)]]))));
  }

  // A recipe's data-quality profile (docs/data-quality.md): each check's band per region,
  // then the findings, from ordinary protected questions asked by the coordinator.
  async function qualityPage(params) {
    const recipes = (state.catalog.recipes || []).filter((r) => !r.cohort);
    const id = params.get("indicator") || (recipes[0] && recipes[0].id);
    const from = params.get("from") || String(FIRST_YEAR);
    const to = params.get("to") || String(LAST_YEAR);
    const update = (key) => (ev) => { const p = new URLSearchParams(params); p.set(key, ev.target.value); if (!p.get("indicator")) p.set("indicator", id); go(["datakvalitet"], p); };
    const years = [];
    for (let y = FIRST_YEAR; y <= LAST_YEAR; y++) years.push([String(y), String(y)]);
    const q = (k) => words("quality", k);
    const controls = el("fieldset", { class: "controls no-print" }, el("legend", { text: T("quality.controls") }),
      select("indicator", T("quality.indicator"), recipes.map((r) => [r.id, titleOf(r)]), id, update("indicator")),
      select("from", T("ind.from"), years, from, update("from")),
      select("to", T("ind.to"), years, to, update("to")));
    const section = el("section", { class: "view", id: "quality", "aria-labelledby": "quality-h" }, el("p", { text: T("loading") }));
    main().replaceChildren(el("h1", { text: T("quality.title") }), el("p", { class: "desc", text: T("quality.intro") }), controls, section);
    const period = from === to ? from : `${from}..${to}`;
    let p;
    try {
      p = await api(`/api/quality?indicator=${encodeURIComponent(id)}&period=${encodeURIComponent(period)}`);
    } catch (e) {
      section.replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
      main().dataset.ready = "true";
      return;
    }
    const regions = [...new Map(p.outcomes.map((o) => [o.region, o.region_name])).entries()].sort();
    const checks = [...new Set(p.outcomes.map((o) => o.check))];
    const band = (c, r) => (p.outcomes.find((o) => o.check === c && o.region === r) || { band: "not_assessed" }).band;
    const headers = [[q("check")], ...regions.map(([, name]) => [name])];
    const rows = checks.map((c) => [[q(`check.${c}`)], ...regions.map(([r]) => [q(`band.${band(c, r)}`), false, `band-${band(c, r)}`])]);
    const share = (f) => (f.check === "education_missing" || f.check === "unknown_kommun");
    const num = (f, v) => (v == null ? "" : share(f) ? `${fmtNum(100 * v, 1)} %` : fmtNum(v, 1));
    const where = (f) => (f.subject == null ? "" : share(f) ? words("value.kommun", f.subject) : f.subject);
    section.replaceChildren(
      el("h2", { id: "quality-h", text: `${state.lang === "sv" ? p.title_sv : p.title} · ${period.replace("..", "–")}` }),
      table(T("quality.title"), headers, rows, null, (i) => ({ check: checks[i] }), "quality-table"),
      el("h3", { text: q("findings") }),
      p.findings.length
        ? table(q("findings"), [[q("band")], [q("check")], [q("subject")], [q("value"), true], [q("expected"), true]],
          p.findings.map((f) => [[q(`band.${f.band}`)], [q(`check.${f.check}`)], [`${f.region_name}: ${where(f)}`], [num(f, f.value), true], [num(f, f.expected), true]]),
          null, (i) => ({ check: p.findings[i].check, region: p.findings[i].region, band: p.findings[i].band }), "findings-table")
        : el("p", { class: "ok", text: q("no_findings") }));
    main().dataset.ready = "true";
  }

  // An analysis note (`key|arg`) in words; a withheld row's argument is its reason codes.
  const noteText = (n) => {
    const [key, arg] = n.split("|");
    const template = window.I18N[state.lang][`anote.${key}`] ?? key;
    return template.replace("{0}", (arg || "").split(",").filter(Boolean).map((c) => words("reason", c)).join("; "));
  };

  // An evaluation: a forest plot of each region's effect with its 95 % interval, the
  // random-effects estimate and the prediction interval for a new region; the verdict in
  // words; a table with the before/after means, the changes and the weights.
  function drawEvaluation(section, r, answer, by) {
    const md = answer.metadata;
    const rows = answer.rows;
    const ev = (key) => words("evaluation", key);
    // With a breakdown (by sex, say), each group has its own regions and meta-analysis.
    const group = (x) => (by && x[by] != null ? ` · ${words(`value.${by}`, x[by])}` : "");
    const nameOf = (x) => (x.row === "region" ? x.region_name : x.row === "pooled" ? `${x.region_name} (${T("pooled")})` : ev(x.row)) + group(x);
    const forest = rows.filter((x) => ["region", "random", "prediction"].includes(x.row) && x.effect != null && x.effect_lower != null && x.effect_upper != null)
      .map((x) => ({ name: nameOf(x), row: x.row, region: x.region, effect: x.effect, lower: x.effect_lower, upper: x.effect_upper }));
    let plot = null;
    // Outcomes with their own decimals (format.outcome.<outcome> in the one vocabulary).
    const unit = `outcome.${md["norrsken.outcome"]}`;
    if (forest.length && window.Plot) {
      const f = (v) => fmt(unit, v);
      plot = Plot.plot({
        width: 720, height: 60 + 34 * forest.length, marginLeft: 260,
        x: { label: `${ev("effect")} · ${ev(`outcome.${md["norrsken.outcome"]}`)}`, grid: true, nice: true },
        y: { label: null, domain: forest.map((p) => p.name) },
        style: { fontSize: "13px", color: "#1a1a1a" },
        marks: [
          Plot.ruleX([0], { stroke: "#1a1a1a", ariaDescription: "no effect", ariaHidden: true }),
          Plot.ruleY(forest, { y: "name", x1: "lower", x2: "upper", stroke: (p) => (p.row === "prediction" ? "#6b2d8a" : p.region === state.focus ? FOCUS_COLOUR : "#0b4f8a"), strokeWidth: (p) => (p.row === "region" ? 2 : 4), strokeDasharray: (p) => (p.row === "prediction" ? "6,3" : null), ariaHidden: true }),
          Plot.dot(forest.filter((p) => p.row !== "prediction"), { x: "effect", y: "name", symbol: (p) => (p.row === "random" ? "diamond" : "square"), r: 6, fill: (p) => (p.row === "random" ? "#1a1a1a" : "#0b4f8a"), ariaDescription: "effect", ariaLabel: (p) => `${p.name}: ${f(p.effect)} (${f(p.lower)} – ${f(p.upper)})`, title: (p) => `${p.name}: ${f(p.effect)} (${f(p.lower)} – ${f(p.upper)})` }),
        ],
      });
    }
    // One verdict per group (one without a breakdown).
    const randoms = rows.filter((x) => x.row === "random");
    const verdict = randoms.map((x) => el("p", { class: "verdict", "data-consistency": x.consistency, text: `${group(x) ? `${group(x).slice(3)}: ` : ""}${words("consistency", x.consistency)}` }));
    const heterogeneity = randoms.filter((x) => x.i2 != null).map((x) => el("p", { class: "desc", text: `${group(x) ? `${group(x).slice(3)}: ` : ""}I² ${fmtNum(100 * x.i2, 0)} % (${fmtNum(100 * x.i2_lower, 0)}–${fmtNum(100 * x.i2_upper, 0)} %), τ² ${fmtNum(x.tau2)}, Q ${fmtNum(x.q, 2)} (p ${fmtNum(x.q_p)}), ${x.k} ${ev("regions")}` }));
    const m = (v) => fmt(unit, v);
    const withCi = (x, key) => (x[key] == null ? T("none") : `${m(x[key])} (${fmtCi(unit, x[`${key}_lower`], x[`${key}_upper`])})`);
    const did = md["norrsken.design"] === "did";
    const headers = [[ev("region")], [ev("n"), true], [ev("before"), true], [ev("after"), true], [ev("change"), true]];
    if (did) headers.push([ev("comparison_n"), true], [ev("comparison_change"), true]);
    headers.push([ev("effect"), true], [ev("weight"), true], [ev("note")]);
    const shown = rows.filter((x) => x.row !== "fixed");
    const cells = shown.map((x) => {
      const line = [[nameOf(x)], [x.n == null ? "" : fmtInt(x.n), true], [x.before == null ? "" : m(x.before), true], [x.after == null ? "" : m(x.after), true], [x.row === "region" || x.row === "pooled" ? withCi(x, "change") : "", true]];
      if (did) line.push([x.comparison_n == null ? "" : fmtInt(x.comparison_n), true], [x.comparison_change == null ? "" : withCi(x, "comparison_change"), true]);
      line.push([withCi(x, "effect"), true], [x.weight == null ? "" : `${fmtNum(x.weight, 0)} %`, true], [x.note ? x.note.split("; ").map(noteText).join("; ") : ""]);
      return line;
    });
    section.append(el("p", { class: "desc", text: ev(`design.${md["norrsken.design"]}`) }), ...verdict, ...heterogeneity,
      el("div", { class: "chart-and-table" },
        figure(plot, T("chart.forest", titleOf(r))),
        table(T("sec.evaluate"), headers, cells, null, (i) => ({ row: shown[i].row, region: shown[i].region, effect: shown[i].effect, lower: shown[i].effect_lower, upper: shown[i].effect_upper }), "evaluation-table")));
  }

  function drawEquity(section, r, answer, within) {
    const kind = answer.metadata["norrsken.kind"];
    const groups = answer.rows.filter((x) => x.row === "group");
    const gaps = answer.rows.filter((x) => x.row === "gap");
    const dim = answer.metadata["norrsken.dimension"];
    const who = (x) => `${x.region_name}${within && x[within] != null ? ` · ${valueName(within, x[within])}` : ""}`;
    const points = groups.filter((x) => x.value != null).map((x) => ({ name: who(x), group: valueName(dim, x.group), value: x.value, lower: x.ci_lower, upper: x.ci_upper }));
    let plot = null;
    if (points.length && window.Plot) {
      plot = Plot.plot({
        width: 720, height: 80 + new Set(points.map((p) => p.name)).size * 90, marginLeft: 110, marginRight: 150,
        x: { label: axisOf(answer.metadata), percent: kind === "proportion", grid: true, nice: true, tickFormat: tick },
        y: { label: null }, fy: { label: null },
        style: { fontSize: "13px", color: "#1a1a1a" },
        marks: [
          Plot.ruleY(points.filter((p) => p.lower != null), { y: "group", fy: "name", x1: "lower", x2: "upper", stroke: "#0b4f8a", ariaDescription: "interval", ariaHidden: true }),
          Plot.dot(points, { y: "group", fy: "name", x: "value", fill: "#0b4f8a", r: 4, ariaDescription: "group", ariaLabel: (p) => `${p.name}, ${p.group}: ${fmt(kind, p.value)}`, title: (p) => `${p.name}, ${p.group}: ${fmt(kind, p.value)}` }),
        ],
      });
    }
    const ci = (v, lo, hi, f) => (v == null ? T("none") : `${f(v)} (${f(lo)} – ${f(hi)})`);
    section.append(el("div", { class: "chart-and-table" },
      figure(plot, T("chart.equity", titleOf(r))),
      table(T("sec.equity"), [[T("col.region")], [T("col.gap", "", "").replace(/ – $/, ""), true], [T("col.relgap"), true], [T("col.sii"), true], [T("col.rii"), true]],
        gaps.map((x) => [[`${who(x)}${x.from_group ? ` (${valueName(dim, x.from_group)} → ${valueName(dim, x.to_group)})` : ""}`], [ci(x.abs_gap, x.abs_gap_lower, x.abs_gap_upper, (v) => fmtGap(kind, v)), true], [ci(x.rel_gap, x.rel_gap_lower, x.rel_gap_upper, (v) => fmtNum(v, 2)), true], [ci(x.sii, x.sii_lower, x.sii_upper, (v) => fmtGap(kind, v)), true], [ci(x.rii, x.rii_lower, x.rii_upper, (v) => fmtNum(v, 2)), true]]))));
  }

  // ---- regional report --------------------------------------------------------------------
  function parseCsv(text) {
    const first = text.split(/\r?\n/, 1)[0] || "";
    const sep = (first.match(/;/g) || []).length > (first.match(/,/g) || []).length ? ";" : ",";
    const rows = [];
    let row = [], cell = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === sep) { row.push(cell.trim()); cell = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(cell.trim()); cell = "";
        if (row.some((x) => x !== "")) rows.push(row);
        row = [];
      } else cell += c;
    }
    row.push(cell.trim());
    if (row.some((x) => x !== "")) rows.push(row);
    if (!rows.length) throw new Error(state.lang === "sv" ? "filen är tom" : "the file is empty");
    const [columns, ...body] = rows;
    body.forEach((r, i) => { if (r.length !== columns.length) throw new Error(`${state.lang === "sv" ? "rad" : "line"} ${i + 2}: ${r.length} ≠ ${columns.length}`); });
    return { columns, rows: body };
  }

  async function reportPage(params) {
    const recipes = state.catalog.recipes;
    const areas = [...new Map(recipes.filter((r) => r.area).map((r) => [r.area.sv, r.area])).values()];
    const chosen = new Set((params.get("indicators") || "").split(",").filter(Boolean));
    const years = [];
    for (let y = FIRST_YEAR; y <= LAST_YEAR; y++) years.push([String(y), String(y)]);
    const form = el("form", { class: "report-form no-print", id: "report-form" });
    const boxes = recipes.map((r) => el("label", {}, el("input", { type: "checkbox", name: "indicator", value: r.id, checked: chosen.has(r.id) }), ` ${titleOf(r)}`));
    const areaSelect = select("area", T("report.area"), [["", T("report.area.none")], ...areas.map((a) => [a.sv, textOf(a)])], params.get("area") || "", (ev) => {
      for (const b of form.querySelectorAll("input[name=indicator]")) {
        const r = recipes.find((x) => x.id === b.value);
        b.checked = r.area?.sv === ev.target.value;
      }
    });
    const own = el("input", { type: "file", id: "own", accept: ".csv,text/csv" });
    const comment = el("textarea", { id: "comment", rows: "3", maxlength: "2000" });
    comment.value = params.get("comment") || "";
    // Comments per indicator come with a saved definition (c.<id>=…); they are edited in the
    // report below.
    const comments = Object.fromEntries([...params.entries()].filter(([k]) => k.startsWith("c.")).map(([k, v]) => [k.slice(2), v]));
    const status = el("p", { "aria-live": "polite" });
    form.append(
      el("fieldset", { class: "controls" }, el("legend", { text: T("report.title") }),
        select("region", T("report.region"), (state.regions || []).map((x) => [x.region, x.name]), params.get("region") || "24"),
        select("from", T("ind.from"), years, params.get("from") || DEFAULT_PERIOD[0]),
        select("to", T("ind.to"), years, params.get("to") || DEFAULT_PERIOD[1]),
        areaSelect),
      el("fieldset", {}, el("legend", { text: T("report.indicators") }), el("div", { class: "indicators" }, boxes)),
      el("div", {}, el("label", { for: "comment", text: T("report.comment") }), comment),
      el("div", {}, el("label", { for: "own", text: T("report.own") }), own, el("p", { class: "muted", text: T("report.own.help") })),
      nationalImport(),
      el("button", { type: "submit", class: "action", id: "make-report" }, T("report.make")), status);
    const out = el("div", { id: "report-out" });
    main().replaceChildren(el("h1", { class: "no-print", text: T("report.title") }), el("p", { class: "desc no-print", text: T("report.intro") }), form, out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const indicators = [...form.querySelectorAll("input[name=indicator]:checked")].map((b) => b.value);
      if (!indicators.length) { status.textContent = T("report.choose"); return; }
      const from = form.querySelector("#from").value, to = form.querySelector("#to").value;
      const request = { region: form.querySelector("#region").value, indicators, period: from === to ? from : `${from}..${to}`, lang: state.lang };
      if (comment.value.trim()) request.comment = comment.value.trim();
      const kept = Object.fromEntries(Object.entries(comments).filter(([id, c]) => indicators.includes(id) && c.trim()));
      if (Object.keys(kept).length) request.comments = kept;
      const national = (state.national?.values || []).filter((v) => indicators.includes(v.indicator));
      if (national.length) request.national = national;
      let ownTable = null;
      const file = own.files[0];
      if (file) {
        try { ownTable = { title: file.name, ...parseCsv(await file.text()) }; } catch (e) { status.textContent = T("report.own.bad", file.name, e.message); return; }
      }
      status.textContent = T("loading");
      delete main().dataset.ready;
      out.replaceChildren();
      try {
        // The own table stays in the browser for the page; only the PDF and xlsx downloads
        // carry it, to the coordinator that renders them (never to an agent).
        const report = await api("/api/report", request);
        status.textContent = "";
        drawReport(out, report, ownTable, request, { from, to, area: form.querySelector("#area").value });
      } catch (e) {
        status.replaceChildren(el("span", { class: "error", role: "alert" }, e.message));
      }
    });
    main().dataset.ready = "form";
    if (chosen.size && params.get("run") === "1") form.requestSubmit();
  }

  // The report definition as a link anyone with access can open (region, indicators,
  // period, comments): a saved and shared report.
  function reportLink(request, choice) {
    const p = new URLSearchParams();
    p.set("region", request.region);
    p.set("indicators", request.indicators.join(","));
    p.set("from", choice.from);
    p.set("to", choice.to);
    if (request.comment) p.set("comment", request.comment);
    for (const [id, c] of Object.entries(request.comments || {})) p.set(`c.${id}`, c);
    p.set("run", "1");
    return `${location.origin}${location.pathname}#/rapport?${p}`;
  }

  const SIG_MARK = { better: "▲", improving: "▲", meets: "▲", worse: "▼", worsening: "▼", misses: "▼", higher: "↑", increasing: "↑", lower: "↓", decreasing: "↓" };
  const SIG_CLASS = { better: "good", improving: "good", meets: "good", worse: "bad", worsening: "bad", misses: "bad" };
  const marked = (prefix, code) => (code && code !== "not_computed" && code !== "not_assessed" ? `${SIG_MARK[code] || "●"} ${words(prefix, code)}` : T("none"));

  function drawReport(out, rep, ownTable, request, choice) {
    const full = () => ({ ...(ownTable ? { ...request, own: ownTable } : request) });
    const file = `rapport-${rep.region}-${rep.period.replace("..", "-")}`;
    const button = (label, format, id) => el("button", { type: "button", class: "action", id, onclick: async (ev) => {
      ev.target.disabled = true;
      try { save(await api("/api/report", full(), format), `${file}.${format}`); } catch (e) { alert(e.message); } finally { ev.target.disabled = false; }
    } }, label);
    const link = el("input", { type: "text", id: "report-link", readonly: true, "aria-label": T("report.link"), value: reportLink(request, choice) });
    const period = rep.period.replace("..", "–");
    const article = el("article", { class: "report", id: "report", "data-region": rep.region });
    const title = (i) => (state.lang === "sv" ? i.title_sv : i.title);
    const groups = {};
    for (const i of rep.indicators) if (i.unassessed) (groups[i.unassessed] ||= []).push(i);
    const nUnassessed = Object.values(groups).reduce((n, g) => n + g.length, 0);
    const cell = (text, code) => [text, false, SIG_CLASS[code]];
    const cover = el("section", { class: "report-cover" },
      el("h1", { text: T("report.heading", rep.region_name) }),
      el("p", { class: "muted", text: T("report.sub", period, fmtDate(rep.generated)) + (rep.data_through ? ` · ${T("report.through", rep.data_through)}` : "") }),
      rep.partial ? el("p", { class: "partial", role: "alert", "data-partial": "true", text: T("partial.banner", [...new Set(rep.indicators.flatMap((i) => i.missing))].join(", ")) }) : null,
      el("h2", { text: T("report.summary") }),
      el("ul", { class: "summary" }, rep.summary.map((s) => el("li", { text: s }))),
      rep.comment ? el("div", { class: "comment" }, el("h3", { text: T("report.comment.title") }), el("p", { text: rep.comment })) : null,
      el("h2", { text: T("report.overview") }),
      table(`${rep.region_name}, ${period}`, [[T("report.indicators")], [rep.region_name, true], [T("report.others"), true], [T("report.against")], [T("report.target")], [T("report.trend")]],
        rep.indicators.map((i) => {
          const sig = i.focus?.value != null ? i.focus?.significance : null;
          const verdict = i.target == null ? null : i.target_verdict;
          return [[title(i)], [i.focus?.value != null ? fmt(i.kind, i.focus.value) : i.unassessed ? words("unassessed", i.unassessed) : T("none"), true], [fmt(i.kind, i.focus?.others_value), true], cell(marked("sig", sig), sig),
            cell(i.target == null ? T("none") : `${marked("verdict", verdict)} (${fmt(i.kind, i.target)})`, verdict), cell(marked("flag", i.change?.flag), i.change?.flag)];
        }), null, null, "scorecard"),
      el("p", { class: "muted", text: T("report.legend") }),
      nUnassessed ? el("div", { class: "unassessed", id: "unassessed" }, el("h2", { text: T("report.unassessed", nUnassessed, rep.indicators.length) }),
        el("ul", {}, Object.entries(groups).map(([why, list]) => el("li", {}, `${words("unassessed", why)}: ${list.map(title).join("; ")}`)))) : null);
    article.append(cover);
    for (const i of rep.indicators.filter((x) => x.unassessed !== "distribution")) article.append(reportSection(rep, i, title(i), request));
    if (ownTable) {
      article.append(el("section", { class: "report-page own-source", id: "own-source" },
        el("h2", { text: T("report.own.title", ownTable.title) }), el("p", { class: "muted", text: T("report.own.note") }),
        table(ownTable.title, ownTable.columns.map((c) => [c]), ownTable.rows.map((r) => r.map((v) => [v])))));
    }
    // Provenance in an appendix: ids and versions nowhere else.
    article.append(el("section", { class: "report-page appendix", id: "appendix" }, el("h2", { text: T("report.appendix") }),
      el("ul", {}, rep.indicators.map((i) => el("li", {}, `${title(i)} (${i.recipe || i.id}) · ${T("report.sources")}: ${i.sources.map((x) => `${x.name} ${words("status", x.status)} (${T("prov.data", x.data_version || T("none"))}, ${T("prov.policy", x.policy_version || T("none"))})`).join("; ")} · ${T("prov.query")}: ${i.query_ids.join(", ")}`)))));
    out.replaceChildren(el("div", { class: "report-actions no-print" }, button(T("report.pdf"), "pdf", "report-pdf"), button(T("report.xlsx"), "xlsx", "report-xlsx"), el("button", { type: "button", class: "secondary", onclick: () => window.print() }, T("report.print"))),
      el("div", { class: "report-link no-print" }, el("label", { for: "report-link", text: T("report.link") }), link,
        el("button", { type: "button", class: "secondary", onclick: () => { link.select(); navigator.clipboard?.writeText(link.value); } }, T("report.link.copy"))),
      article);
    // Comments per indicator: edited here, carried into the downloads and the saved link.
    for (const box of article.querySelectorAll("textarea[data-comment]")) {
      box.addEventListener("input", () => {
        const id = box.dataset.comment;
        request.comments = { ...(request.comments || {}) };
        if (box.value.trim()) request.comments[id] = box.value.trim(); else delete request.comments[id];
        link.value = reportLink(request, choice);
      });
    }
    main().dataset.ready = "true";
  }

  function reportSection(rep, i, title, request) {
    const kind = i.kind;
    const s = el("section", { class: "report-page", "data-indicator": i.id }, el("h2", { text: title }), i.axis ? el("p", { class: "muted", text: i.axis }) : null);
    if (i.error) s.append(el("p", { class: "error", text: T("report.error") }));
    if (i.missing.length) s.append(el("p", { class: "partial", "data-partial": "true", text: T("report.partial", i.missing.join(", ")) }));
    const flags = [];
    if (i.focus?.significance && i.focus?.value != null) flags.push(T("report.against.others", words("sig", i.focus.significance)));
    if (i.target_verdict !== "not_assessed") flags.push(words("verdict", i.target_verdict));
    if (i.change) flags.push(`${T("report.trend").toLowerCase()}: ${words("flag", i.change.flag)}`);
    if (flags.length) s.append(el("p", { class: "flags", text: T("report.flags", rep.region_name, flags.join(" · ")) }));
    const box = el("textarea", { class: "no-print", rows: "2", maxlength: "2000", "data-comment": i.id, id: `comment-${i.id}`, "aria-label": T("report.comment.for", title) });
    box.value = request?.comments?.[i.id] || i.comment || "";
    s.append(el("div", { class: "no-print" }, el("label", { for: `comment-${i.id}`, text: T("report.comment.for", title) }), box));
    if (i.comment) s.append(el("p", { class: "comment print-only", text: i.comment }));
    const national = (request?.national || []).filter((v) => v.indicator === i.id && v.period === rep.period);
    const points = i.regions.filter((x) => x.value != null).map((x) => ({ name: x.row === "pooled" ? `${x.region_name} (${T("pooled")})` : x.region_name, value: x.value, lower: x.lower, upper: x.upper, focus: x.region === rep.region && x.row === "region", pooled: x.row === "pooled" }));
    const missing = i.regions.filter((x) => x.value == null).map((x) => ({ name: x.row === "pooled" ? `${x.region_name} (${T("pooled")})` : x.region_name }));
    const published = national.map((v) => ({ name: `${v.group} (${v.source})`, value: v.value, lower: v.lower, upper: v.upper }));
    if (points.length && window.Plot) {
      const marks = [
        Plot.ruleY(points.filter((p) => p.lower != null), { y: "name", x1: "lower", x2: "upper", stroke: (p) => (p.focus ? FOCUS_COLOUR : "#6b6b6b"), strokeWidth: 2, ariaDescription: "interval", ariaHidden: true }),
        Plot.dot(points.filter((p) => !p.pooled), { y: "name", x: "value", fill: (p) => (p.focus ? FOCUS_COLOUR : "#6b6b6b"), r: 5, ariaDescription: "region", title: (p) => `${p.name}: ${fmt(kind, p.value)}` }),
        Plot.dot(points.filter((p) => p.pooled), { y: "name", x: "value", symbol: "square", fill: "#fff", stroke: "#1a1a1a", r: 5, ariaDescription: "pooled", title: (p) => `${p.name}: ${fmt(kind, p.value)}` }),
        Plot.text(missing, { y: "name", text: () => `× ${T("not.released")}`, frameAnchor: "left", dx: 4, fill: "#9b1c1c", ariaDescription: "withheld" }),
        Plot.dot(published, { y: "name", x: "value", symbol: "diamond", fill: "#6b2d8a", r: 5.5, ariaDescription: "published", title: (p) => `${p.name}: ${fmt(kind, p.value)}` }),
      ];
      if (i.target != null) marks.push(Plot.ruleX([i.target], { stroke: "#1d6b3a", strokeWidth: 2, strokeDasharray: "6,3", ariaDescription: "target", ariaHidden: true }));
      const domain = [...points.map((p) => p.name), ...missing.map((p) => p.name), ...published.map((p) => p.name)];
      s.append(figure(Plot.plot({ width: 620, height: 40 + domain.length * 28, marginLeft: 190, x: { label: i.axis || null, percent: kind === "proportion", grid: true, nice: true, tickFormat: tick }, y: { label: null, domain }, style: { fontSize: "12px", color: "#1a1a1a" }, marks }), T("chart.compare", title)));
    } else if (!points.length) {
      s.append(el("p", { class: "muted", text: T("withheld.count", missing.length, i.regions.length) }));
    }
    const rows = [...i.regions.map((x) => [[x.row === "pooled" ? `${x.region_name} (${T("pooled")})` : x.region_name], [x.value == null ? `${T("not.released")} ¹` : fmt(kind, x.value), true], [fmtCi(kind, x.lower, x.upper), true], [x.row === "pooled" || x.value == null ? "" : words("sig", x.significance)]]),
      ...national.map((v) => [[`${v.group} (${v.source})`], [fmt(kind, v.value), true], [fmtCi(kind, v.lower, v.upper), true], [T("published")]])];
    s.append(table(T("sec.compare"), [[T("col.region")], [T("col.value"), true], [T("col.ci"), true], [T("report.against")]], rows, (n) => (n >= i.regions.length ? "published" : i.regions[n].row === "pooled" ? "pooled" : null)));
    const withheld = i.regions.filter((x) => x.value == null);
    if (withheld.length) s.append(el("p", { class: "withheld-note", "data-withheld": String(withheld.length) }, `¹ ${T("withheld.count", withheld.length, i.regions.length)}.`));
    const years = i.trend.filter((p) => p.value != null);
    if (years.length && window.Plot) {
      const series = years.map((p) => ({ ...p, name: p.region_name }));
      s.append(el("h3", { text: T("report.yearly") }), figure(Plot.plot({
        width: 620, height: 210, marginLeft: 56, marginRight: 140,
        x: { label: null, tickFormat: "d", ticks: [...new Set(years.map((p) => p.year))] },
        y: { label: null, percent: kind === "proportion", grid: true, nice: true, tickFormat: tick },
        color: { ...seriesColours(series.map((p) => ({ name: p.name, region: p.row === "region" ? p.region : "" }))) },
        style: { fontSize: "12px", color: "#1a1a1a" },
        marks: [
          Plot.line(series, { x: "year", y: "value", stroke: "name", strokeWidth: (p) => (p.region === rep.region ? 3 : 1.2), ariaHidden: true }),
          Plot.dot(series, { x: "year", y: "value", fill: "name", r: 2.5, title: (p) => `${p.region_name} ${p.year}: ${fmt(kind, p.value)}` }),
          Plot.text(series, Plot.selectLast({ x: "year", y: "value", z: "name", text: "name", dx: 6, textAnchor: "start", fill: "name", ariaHidden: true })),
          i.target != null ? Plot.ruleY([i.target], { stroke: "#1d6b3a", strokeDasharray: "6,3", ariaHidden: true }) : null,
        ],
      }), T("chart.trend", title)));
    }
    if (i.change?.yearly != null) s.append(el("p", { text: `${rep.region_name}: ${words("flag", i.change.flag)} — ${T("col.change").toLowerCase()}: ${fmtYearly(kind, i.change.yearly)} (${fmtYearly(kind, i.change.yearly_lower)} – ${fmtYearly(kind, i.change.yearly_upper)})` }));
    return s;
  }

  // The published comparison values (Riket, regions outside the federation) from a CSV
  // file, read by the coordinator (one parser, POST /api/national) and kept in this browser.
  function nationalImport() {
    const input = el("input", { type: "file", id: "national", accept: ".csv,text/csv" });
    const info = el("p", { class: "muted", id: "national-info", "aria-live": "polite", text: state.national ? T("national.loaded", state.national.title, state.national.values.length) : T("national.help") });
    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (!file) return;
      try {
        const res = await fetch(`/api/national?name=${encodeURIComponent(file.name)}`, { method: "POST", headers: { "content-type": "text/csv" }, body: await file.text() });
        const j = await res.json();
        if (!res.ok) throw new Error(j.error || res.statusText);
        state.national = { title: file.name, values: j.values };
        localStorage.setItem("norrsken.national", JSON.stringify(state.national));
        info.textContent = T("national.loaded", file.name, j.values.length);
      } catch (e) {
        info.textContent = T("national.bad", file.name, e.message);
      }
    });
    const clear = el("button", { type: "button", class: "secondary", onclick: () => { state.national = null; localStorage.removeItem("norrsken.national"); info.textContent = T("national.help"); } }, T("national.clear"));
    return el("div", { class: "national" }, el("label", { for: "national", text: T("national.label") }), input, clear, info);
  }

  // ---- start ------------------------------------------------------------------------------
  document.getElementById("lang").addEventListener("click", () => {
    state.lang = state.lang === "sv" ? "en" : "sv";
    localStorage.setItem("norrsken.lang", state.lang);
    translateShell();
    route();
  });
  window.addEventListener("hashchange", () => { route().then(() => main().focus({ preventScroll: true })); });
  // The words for a cell's status and reasons come from the one vocabulary the command-line
  // tool, Flight SQL and the report use too.
  async function vocabulary() {
    try {
      const res = await fetch("/api/vocabulary");
      if (!res.ok) return;
      const v = await res.json();
      for (const lang of Object.keys(v)) Object.assign(window.I18N[lang] ||= {}, v[lang]);
    } catch (_) { /* the page still shows the codes */ }
  }
  translateShell();
  vocabulary().then(route);
})();
