//! The report's generated summary: where the region is significantly better or worse than
//! the other regions, where it meets or misses the target, how it moves over time, and
//! what to focus on — in Swedish or English, from the report's numbers only.

use norrsken_model::catalog::Kind;
use norrsken_model::vocabulary;

use super::{Lang, Report, ReportIndicator, TargetVerdict};

/// A value as the report prints it, by the one number format of the vocabulary (shares as
/// percentages, counts and costs whole, Swedish with a decimal comma); an indicator whose
/// kind is unknown (its question failed) with two decimals.
pub fn fmt_value(kind: Option<Kind>, v: f64, lang: Lang) -> String {
    match kind {
        Some(k) => vocabulary::format_value(k, v, lang),
        None => vocabulary::format_number(v, 2, lang),
    }
}

/// The region's change per year in words: on the value's scale (procentenheter for a
/// share) with its interval, then the model's ratio as a detail.
pub fn change_text(kind: Option<Kind>, c: &super::Change, lang: Lang) -> Option<String> {
    let kind = kind?;
    let (y, lo, hi) = (c.yearly?, c.yearly_lower?, c.yearly_upper?);
    let to = if lang == Lang::Sv { "till" } else { "to" };
    let mut s = format!("{} (95 %: {} {to} {})", vocabulary::yearly_change(kind, y, lang), vocabulary::format_number(lo, 2, lang), vocabulary::format_number(hi, 2, lang));
    if let (Some(x), Some(l), Some(u), Some(unit)) = (c.change, c.lower, c.upper, c.unit.as_deref()) {
        if unit != "difference per year" {
            s.push_str(&format!("; {} {} ({}–{})", vocabulary::change_unit(unit, lang), vocabulary::format_number(x, 3, lang), vocabulary::format_number(l, 3, lang), vocabulary::format_number(u, 3, lang)));
        }
    }
    Some(s)
}

/// The indicator's title in the report's language.
pub fn title(i: &ReportIndicator, lang: Lang) -> &str {
    if lang == Lang::Sv { &i.title_sv } else { &i.title }
}

fn list(items: &[String], lang: Lang) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {} {last}", init.join(", "), if lang == Lang::Sv { "och" } else { "and" }),
    }
}

/// The summary's sentences.
pub fn summarise(r: &Report) -> Vec<String> {
    let lang = r.lang;
    let sv = lang == Lang::Sv;
    let mut out = Vec::new();
    let period = r.period.replace("..", "–");
    let answered: Vec<&ReportIndicator> = r.indicators.iter().filter(|i| i.focus.as_ref().is_some_and(|f| f.value.is_some())).collect();
    out.push(if sv {
        format!("{} jämfört med övriga regioner i Norra sjukvårdsregionen, {period}: {} indikatorer, {} med värde för regionen.", r.region_name, r.indicators.len(), answered.len())
    } else {
        format!("{} compared with the other regions of Norra sjukvårdsregionen, {period}: {} indicators, {} with a value for the region.", r.region_name, r.indicators.len(), answered.len())
    });
    let unassessed = r.unassessed();
    if !unassessed.is_empty() {
        let total: usize = unassessed.iter().map(|(_, v)| v.len()).sum();
        let parts: Vec<String> = unassessed.iter().map(|(u, v)| format!("{} {}", v.len(), if v.len() == 1 { u.words(lang) } else { u.words_plural(lang) })).collect();
        out.push(if sv {
            format!("{total} av {} kunde inte bedömas: {} (se listan nedan).", r.indicators.len(), parts.join(", "))
        } else {
            format!("{total} of {} could not be assessed: {} (see the list below).", r.indicators.len(), parts.join(", "))
        });
    }
    let with_values = |sig: &str| -> Vec<String> {
        answered
            .iter()
            .filter(|i| i.focus.as_ref().and_then(|f| f.significance.as_deref()) == Some(sig))
            .map(|i| {
                let f = i.focus.as_ref();
                let v = f.and_then(|f| f.value).map(|v| fmt_value(i.kind, v, lang)).unwrap_or_default();
                let o = f.and_then(|f| f.others_value).map(|v| fmt_value(i.kind, v, lang)).unwrap_or_default();
                if sv { format!("{} ({v} mot övrigas {o})", title(i, lang)) } else { format!("{} ({v} against the others' {o})", title(i, lang)) }
            })
            .collect()
    };
    let better = with_values("better");
    let worse = with_values("worse");
    out.push(match (better.is_empty(), sv) {
        (true, true) => "Ingen indikator där regionen är signifikant bättre än övriga regioner.".to_string(),
        (true, false) => "No indicator where the region is significantly better than the other regions.".to_string(),
        (false, true) => format!("Signifikant bättre än övriga regioner (95 %): {}.", list(&better, lang)),
        (false, false) => format!("Significantly better than the other regions (95%): {}.", list(&better, lang)),
    });
    out.push(match (worse.is_empty(), sv) {
        (true, true) => "Ingen indikator där regionen är signifikant sämre än övriga regioner.".to_string(),
        (true, false) => "No indicator where the region is significantly worse than the other regions.".to_string(),
        (false, true) => format!("Signifikant sämre än övriga regioner (95 %): {}.", list(&worse, lang)),
        (false, false) => format!("Significantly worse than the other regions (95%): {}.", list(&worse, lang)),
    });
    let higher = with_values("higher");
    let lower = with_values("lower");
    if !higher.is_empty() || !lower.is_empty() {
        let mut parts = Vec::new();
        if !higher.is_empty() {
            parts.push(format!("{}: {}", if sv { "högre" } else { "higher" }, list(&higher, lang)));
        }
        if !lower.is_empty() {
            parts.push(format!("{}: {}", if sv { "lägre" } else { "lower" }, list(&lower, lang)));
        }
        out.push(if sv {
            format!("Signifikant skilda från övriga, utan given riktning för bättre: {}.", parts.join("; "))
        } else {
            format!("Significantly different from the others, with no better direction given: {}.", parts.join("; "))
        });
    }
    // Targets over every indicator that has one, those without a value counted as not
    // assessed rather than left out.
    let with_target: Vec<&ReportIndicator> = r.indicators.iter().filter(|i| i.target.is_some()).collect();
    if !with_target.is_empty() {
        let meets = with_target.iter().filter(|i| i.target_verdict == TargetVerdict::Meets).count();
        let not_assessed = with_target.iter().filter(|i| i.target_verdict == TargetVerdict::NotAssessed).count();
        let misses: Vec<String> = with_target
            .iter()
            .filter(|i| i.target_verdict == TargetVerdict::Misses)
            .map(|i| {
                let v = i.focus.as_ref().and_then(|f| f.value).map(|v| fmt_value(i.kind, v, lang)).unwrap_or_default();
                let t = i.target.map(|t| fmt_value(i.kind, t, lang)).unwrap_or_default();
                if sv { format!("{} ({v} mot målnivån {t})", title(i, lang)) } else { format!("{} ({v} against the target {t})", title(i, lang)) }
            })
            .collect();
        let mut s = if sv {
            format!("Målnivån nås i {meets} av {} indikatorer med målnivå", with_target.len())
        } else {
            format!("The target is met in {meets} of {} indicators with a target", with_target.len())
        };
        if not_assessed > 0 {
            s.push_str(&if sv { format!(" ({not_assessed} kunde inte bedömas)") } else { format!(" ({not_assessed} could not be assessed)") });
        }
        s.push('.');
        if !misses.is_empty() {
            s.push_str(&if sv { format!(" Klart under målnivån (hela intervallet): {}.", list(&misses, lang)) } else { format!(" Clearly short of the target (the whole interval): {}.", list(&misses, lang)) });
        }
        out.push(s);
    }
    let flagged = |flag: &str| -> Vec<String> { r.indicators.iter().filter(|i| i.change.as_ref().is_some_and(|c| c.flag == flag)).map(|i| title(i, lang).to_string()).collect() };
    let improving = flagged("improving");
    let worsening = flagged("worsening");
    if !improving.is_empty() || !worsening.is_empty() {
        let mut parts = Vec::new();
        if !improving.is_empty() {
            parts.push(format!("{} {}", if sv { "förbättras:" } else { "improving:" }, list(&improving, lang)));
        }
        if !worsening.is_empty() {
            parts.push(format!("{} {}", if sv { "försämras:" } else { "worsening:" }, list(&worsening, lang)));
        }
        out.push(if sv { format!("Signifikant förändring över tid, {}.", parts.join("; ")) } else { format!("Significant change over time, {}.", parts.join("; ")) });
    }
    // Focus: the indicators with the most reasons, worse than the others first.
    let mut focus: Vec<(usize, usize, String)> = r
        .indicators
        .iter()
        .enumerate()
        .filter_map(|(n, i)| {
            let mut why = Vec::new();
            if i.focus.as_ref().and_then(|f| f.significance.as_deref()) == Some("worse") {
                why.push(if sv { "sämre än övriga" } else { "worse than the others" });
            }
            if i.target_verdict == TargetVerdict::Misses {
                why.push(if sv { "under målnivån" } else { "short of the target" });
            }
            if i.change.as_ref().is_some_and(|c| c.flag == "worsening") {
                why.push(if sv { "försämras" } else { "worsening" });
            }
            (!why.is_empty()).then(|| (why.len(), n, format!("{} ({})", title(i, lang), why.join(", "))))
        })
        .collect();
    focus.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let assessed = r.indicators.len() - r.indicators.iter().filter(|i| i.unassessed.is_some()).count();
    out.push(if focus.is_empty() {
        match (sv, assessed == r.indicators.len()) {
            (true, true) => "Att fokusera på: ingen indikator är signifikant sämre än övriga, klart under målnivån eller försämras.".to_string(),
            (false, true) => "Where to focus: no indicator is significantly worse than the others, clearly short of its target or worsening.".to_string(),
            (true, false) => format!("Att fokusera på: ingen av de {assessed} indikatorer som kunde bedömas är signifikant sämre än övriga, klart under målnivån eller försämras; de som inte kunde bedömas är listade ovan."),
            (false, false) => format!("Where to focus: none of the {assessed} indicators that could be assessed is significantly worse than the others, clearly short of its target or worsening; those that could not be are listed above."),
        }
    } else {
        let items: Vec<String> = focus.into_iter().map(|(_, _, s)| s).collect();
        if sv { format!("Att fokusera på de närmaste två åren: {}.", list(&items, lang)) } else { format!("Where to focus in the next two years: {}.", list(&items, lang)) }
    });
    // Evaluations: the region's own effect and whether the result is general.
    for i in &r.indicators {
        let Some(e) = &i.evaluation else { continue };
        let own = i.focus.as_ref().and_then(|f| Some((f.value?, f.lower?, f.upper?)));
        let effect = match own {
            Some((v, lo, hi)) => format!(
                "{}: {} {} ({} – {})",
                r.region_name,
                vocabulary::evaluation_word("effect", lang).split(" (").next().unwrap_or("").to_lowercase(),
                vocabulary::format_outcome(&e.outcome, v, lang),
                vocabulary::format_outcome(&e.outcome, lo, lang),
                vocabulary::format_outcome(&e.outcome, hi, lang)
            ),
            None => format!("{}: {}", r.region_name, if sv { "ingen effekt skattad" } else { "no effect estimated" }),
        };
        out.push(format!("{} {}: {}. {}", if sv { "Utvärdering," } else { "Evaluation," }, title(i, lang), effect, vocabulary::consistency_statement(&e.consistency, lang)));
    }
    if r.partial {
        let mut missing: Vec<String> = r.indicators.iter().flat_map(|i| i.missing.iter().cloned()).collect();
        missing.sort();
        missing.dedup();
        out.push(if sv {
            format!("OBS: ofullständigt underlag — {} svarade inte; jämförelser med övriga saknar deras del.", list(&missing, lang))
        } else {
            format!("NOTE: partial answer — {} did not answer; comparisons with the others lack their part.", list(&missing, lang))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Change, RegionValue, Unassessed};
    use super::*;

    fn indicator(id: &str, sig: &str, verdict: TargetVerdict, flag: &str) -> ReportIndicator {
        let focus = RegionValue {
            region: "24".into(),
            region_name: "Västerbotten".into(),
            row: "region".into(),
            numerator: Some(30),
            denominator: Some(100),
            value: Some(0.3),
            lower: Some(0.22),
            upper: Some(0.4),
            significance: Some(sig.into()),
            others_value: Some(0.2),
            status: "released".into(),
            note: None,
        };
        ReportIndicator {
            id: id.into(),
            recipe: format!("{id}@1"),
            title: format!("{id} en"),
            title_sv: format!("{id} sv"),
            kind: Some(Kind::Proportion),
            value: String::new(),
            better: Some("higher".into()),
            target: Some(0.5),
            target_source: None,
            regions: vec![focus.clone()],
            trend: vec![],
            change: Some(Change { change: None, lower: None, upper: None, unit: None, yearly: None, yearly_lower: None, yearly_upper: None, flag: flag.into(), note: None }),
            focus: Some(focus),
            target_verdict: verdict,
            missing: vec![],
            sources: vec![],
            query_ids: vec![],
            error: None,
            followup_through: None,
            unassessed: None,
            comment: None,
            national: Vec::new(),
            declaration: None,
            evaluation: None,
            axis: String::new(),
        }
    }

    fn report(lang: Lang, indicators: Vec<ReportIndicator>) -> Report {
        Report {
            region: "24".into(),
            region_name: "Västerbotten".into(),
            period: "2021..2025".into(),
            lang,
            generated: String::new(),
            summary: vec![],
            indicators,
            own: None,
            partial: false,
            comment: None,
            data_through: None,
        }
    }

    #[test]
    fn the_summary_names_strengths_weaknesses_targets_trends_and_focus() {
        let r = report(
            Lang::Sv,
            vec![
                indicator("a", "better", TargetVerdict::Meets, "improving"),
                indicator("b", "worse", TargetVerdict::Misses, "worsening"),
                indicator("c", "similar", TargetVerdict::Uncertain, "no_significant_change"),
            ],
        );
        let s = summarise(&r).join("\n");
        assert!(s.contains("Västerbotten") && s.contains("2021–2025") && s.contains("3 indikatorer"), "{s}");
        assert!(s.contains("Signifikant bättre än övriga regioner (95 %): a sv (30,0 % mot övrigas 20,0 %)"), "{s}");
        assert!(s.contains("Signifikant sämre än övriga regioner (95 %): b sv"), "{s}");
        assert!(s.contains("Målnivån nås i 1 av 3") && s.contains("b sv (30,0 % mot målnivån 50,0 %)"), "{s}");
        assert!(s.contains("förbättras: a sv; försämras: b sv"), "{s}");
        assert!(s.contains("Att fokusera på de närmaste två åren: b sv (sämre än övriga, under målnivån, försämras)"), "{s}");
        assert!(!s.contains("c sv ("), "a similar, uncertain, stable indicator is not a focus: {s}");
        // What could not be assessed is counted, and targets are counted over every
        // indicator that has one.
        let mut withheld = indicator("d", "similar", TargetVerdict::NotAssessed, "not_computed");
        withheld.focus.as_mut().unwrap().value = None;
        withheld.unassessed = Some(Unassessed::Withheld);
        let mut late = withheld.clone();
        late.unassessed = Some(Unassessed::IncompleteFollowup);
        let mut dist = indicator("f", "similar", TargetVerdict::NotAssessed, "not_computed");
        dist.target = None;
        dist.unassessed = Some(Unassessed::Distribution);
        let s = summarise(&report(Lang::Sv, vec![indicator("a", "similar", TargetVerdict::Meets, "no_significant_change"), withheld.clone(), withheld, late, dist])).join("\n");
        assert!(s.contains("4 av 5 kunde inte bedömas: 2 ej redovisade av skyddsskäl, 1 ofullständig uppföljning, 1 fördelning"), "{s}");
        assert!(s.contains("Målnivån nås i 1 av 4 indikatorer med målnivå (3 kunde inte bedömas)"), "{s}");
        assert!(s.contains("ingen av de 1 indikatorer som kunde bedömas"), "{s}");
        let en = summarise(&report(Lang::En, vec![indicator("a", "similar", TargetVerdict::Meets, "no_significant_change")])).join("\n");
        assert!(en.contains("No indicator where the region is significantly worse") && en.contains("Where to focus: no indicator"), "{en}");
    }

    #[test]
    fn values_are_printed_in_the_report_language() {
        assert_eq!(fmt_value(Some(Kind::Proportion), 0.1234, Lang::Sv), "12,3 %");
        assert_eq!(fmt_value(Some(Kind::Proportion), 0.1234, Lang::En), "12.3%");
        assert_eq!(fmt_value(Some(Kind::CostSum), 81234.4, Lang::Sv), "81 234");
        assert_eq!(fmt_value(Some(Kind::CostSum), 81234.4, Lang::En), "81,234");
        assert_eq!(fmt_value(Some(Kind::Rate), 3.14159, Lang::Sv), "3,14");
        assert_eq!(fmt_value(Some(Kind::Count), 1000.0, Lang::Sv), "1 000", "a count without decimals, as the command line writes it");
        assert_eq!(fmt_value(None, 0.5, Lang::Sv), "0,50");
    }
}
