//! `norrsken availability`: what protection costs analysts, measured over simulated analyst
//! sessions (docs/disclosure-control.md, "Availability").
//!
//! A federation with the default protection (the cell key method, k = 5) answers:
//!
//! - the **standard release** of every recipe: region × whole period, × year, × year and
//!   sex, × sex, and × age band where the recipe is age-standardised, asked once before the
//!   sessions and once after;
//! - **sessions** of analysts (one requester each): the web app's default questions of a few
//!   indicators (the comparison, the trend by year, by sex, by age band, the funnel by
//!   kommun, equity by education), a regional report's questions over the last three years,
//!   and random explorations (one or two breakdowns, a period of one or several years or
//!   the whole period, sometimes a filter).
//!
//! For every region cell of at least k persons (the truth from the agents' engines) it
//! counts whether it was released, and if not, why. History cannot change an answer, so the
//! standard release asked after the sessions must equal the one asked before: that is
//! checked, not assumed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use norrsken_model::answer::{CellStatus, RegionAnswer};
use norrsken_model::catalog::{Catalog, Recipe};
use norrsken_model::query::{IndicatorQuery, Relay};
use norrsken_synth::rng::Rng;
use serde::Serialize;

use crate::local::{LocalFederation, LocalOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct AvailabilityOptions {
    /// Working folder: the datalager (generated once, then reused) and the federation.
    pub dir: PathBuf,
    /// Scale of a datalager generated here (1.0 = the real populations).
    pub scale: f64,
    /// A datalager to use instead of generating one.
    pub datalager: Option<PathBuf>,
    pub sessions: usize,
    /// Questions per session besides the web app's and the report's.
    pub explorations: usize,
    pub seed: u64,
    /// Only these indicators (default: every recipe).
    pub indicators: Vec<String>,
    pub quiet: bool,
}

/// Cells of at least k persons: how many, how many released, and why the others were not.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub cells: u64,
    pub released: u64,
    /// Withheld cells by their reasons (joined).
    pub withheld_by: BTreeMap<String, u64>,
}

impl Tally {
    pub fn share(&self) -> f64 {
        if self.cells == 0 {
            1.0
        } else {
            self.released as f64 / self.cells as f64
        }
    }

    /// Cells withheld for a reason other than the protection rules (history, say): none is
    /// allowed.
    pub fn withheld_without_a_rule(&self) -> u64 {
        const RULES: [&str; 10] = ["below_min_cell", "complement", "dominance", "zero", "implied", "secondary", "part_withheld", "incomplete_followup", "pooled_protection", "not_standardised"];
        self.withheld_by.iter().filter(|(why, _)| !why.split(',').all(|r| RULES.contains(&r))).map(|(_, n)| n).sum()
    }

    fn add(&mut self, other: &Tally) {
        self.cells += other.cells;
        self.released += other.released;
        for (k, v) in &other.withheld_by {
            *self.withheld_by.entry(k.clone()).or_default() += v;
        }
    }
}

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct AvailabilityReport {
    pub scale: Option<f64>,
    pub regions: usize,
    pub recipes: usize,
    pub sessions: usize,
    pub questions: u64,
    pub refused: u64,
    pub standard: Tally,
    pub adhoc: Tally,
    /// Whether the standard release after the sessions equals the one before, cell by cell.
    pub standard_unchanged: bool,
    pub seconds: f64,
}

impl AvailabilityReport {
    pub fn to_markdown(&self) -> String {
        let pct = |t: &Tally| format!("{:.1} %", 100.0 * t.share());
        let reasons = |t: &Tally| t.withheld_by.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        format!(
            "| | cells of at least k persons | released | withheld, by reason |\n|---|---:|---:|---|\n| standard release | {} | {} ({}) | {} |\n| ad-hoc questions | {} | {} ({}) | {} |\n\n\
             {} regions, {} recipes, {} sessions, {} questions ({} refused){}; the standard release asked after the sessions {} the one asked before; {:.0} s.\n",
            self.standard.cells,
            self.standard.released,
            pct(&self.standard),
            reasons(&self.standard),
            self.adhoc.cells,
            self.adhoc.released,
            pct(&self.adhoc),
            reasons(&self.adhoc),
            self.regions,
            self.recipes,
            self.sessions,
            self.questions,
            self.refused,
            self.scale.map(|s| format!(", datalager at scale {s}")).unwrap_or_default(),
            if self.standard_unchanged { "equals" } else { "DIFFERS FROM" },
            self.seconds
        )
    }
}

fn q(indicator: &str, by: &[&str], period: &str) -> IndicatorQuery {
    IndicatorQuery { indicator: indicator.into(), breakdowns: by.iter().map(|s| s.to_string()).collect(), period: period.into(), ..Default::default() }
}

fn allows(r: &Recipe, b: &str) -> bool {
    r.breakdowns.iter().any(|x| x.name() == b)
}

/// The standard release of one recipe.
fn standard_questions(r: &Recipe, full: &str) -> Vec<IndicatorQuery> {
    let mut out = vec![q(&r.id, &[], full), q(&r.id, &["year"], full)];
    if allows(r, "sex") {
        out.push(q(&r.id, &["sex"], full));
        out.push(q(&r.id, &["year", "sex"], full));
    }
    if r.age_standardisation && allows(r, "age_band") {
        out.push(q(&r.id, &["age_band"], full));
    }
    out
}

/// The web app's default questions of one indicator and a report's.
fn web_and_report_questions(r: &Recipe, full: &str, recent: &str) -> Vec<IndicatorQuery> {
    let mut out = vec![q(&r.id, &[], full), q(&r.id, &["year"], full), q(&r.id, &[], recent), q(&r.id, &["year"], recent)];
    for b in ["sex", "age_band", "kommun", "education"] {
        if allows(r, b) {
            out.push(q(&r.id, &[b], full));
        }
    }
    out
}

/// One random exploration of a recipe.
fn exploration(r: &Recipe, years: (i32, i32), rng: &mut Rng) -> IndicatorQuery {
    let dims: Vec<&str> = r.breakdowns.iter().map(|b| b.name()).filter(|b| !["quarter", "month"].contains(b)).collect();
    let mut by: Vec<&str> = Vec::new();
    for _ in 0..rng.range(1, 2) {
        let d = dims[rng.range(0, dims.len() as i64 - 1) as usize];
        if !by.contains(&d) {
            by.push(d);
        }
    }
    let first = rng.range(years.0 as i64, years.1 as i64) as i32;
    let last = rng.range(first as i64, years.1 as i64) as i32;
    let period = if rng.range(0, 2) == 0 { format!("{}..{}", years.0, years.1) } else if first == last { first.to_string() } else { format!("{first}..{last}") };
    let mut question = q(&r.id, &by, &period);
    if by.len() == 1 && rng.range(0, 3) == 0 && dims.contains(&"sex") && by[0] != "sex" {
        let sex = if rng.range(0, 1) == 0 { "female" } else { "male" };
        question.filters.insert("sex".into(), vec![sex.into()]);
    }
    question
}

/// Asks every agent and tallies the region cells of at least k persons against the truth.
/// Returns the answers (for the before-and-after check) and the tally.
async fn ask(fed: &LocalFederation, catalog: &Catalog, question: &IndicatorQuery, requester: &str) -> anyhow::Result<Option<(Vec<RegionAnswer>, Tally)>> {
    let relay = Relay { requester_subject: format!("CN={requester}, O=availability"), requester_role: "analyst".into(), ..Default::default() };
    let mut tally = Tally::default();
    let mut answers = Vec::new();
    for agent in &fed.agents {
        let node = &agent.node;
        let years = node.engine().data_years();
        let Ok(v) = question.validate(catalog, Some(years)) else { return Ok(None) };
        let answer = match node.answer(&v, Some(&relay)).await {
            Ok((a, _)) => a,
            Err(_) => return Ok(None),
        };
        let truth = node.engine().evaluate(&v).await.map_err(|e| anyhow!("{}: {e}", question.indicator))?;
        let k = answer.meta.min_cell_size as i64;
        let persons: BTreeMap<(&str, &[String], &Option<String>), i64> = truth.cells.iter().map(|c| ((c.region.as_str(), c.labels.as_slice(), &c.category), c.persons)).collect();
        for c in &answer.cells {
            if persons.get(&(c.region.as_str(), c.labels.as_slice(), &c.category)).copied().unwrap_or(0) < k {
                continue;
            }
            tally.cells += 1;
            if c.status == CellStatus::Suppressed {
                let why: Vec<&str> = c.reasons.iter().map(|r| r.name()).collect();
                *tally.withheld_by.entry(why.join(",")).or_default() += 1;
            } else {
                tally.released += 1;
            }
        }
        answers.push(answer);
    }
    Ok(Some((answers, tally)))
}

/// The datalager of a run: the one given, or one generated once in the working folder (and
/// its scale).
pub fn datalager_in(o: &AvailabilityOptions) -> anyhow::Result<(PathBuf, Option<f64>)> {
    std::fs::create_dir_all(&o.dir)?;
    Ok(match &o.datalager {
        Some(d) => (d.clone(), None),
        None => {
            let d = o.dir.join("datalager");
            if !d.join("norrbotten").is_dir() {
                if !o.quiet {
                    eprintln!("generating the synthetic datalager at scale {} in {}", o.scale, d.display());
                }
                norrsken_synth::generate(&norrsken_synth::SynthOptions { out: d.clone(), scale: o.scale, seed: 11, ..Default::default() })
                    .map_err(|e| anyhow!("generating the datalager: {e}"))?;
            }
            (d, Some(o.scale))
        }
    })
}

/// Runs the measurement.
pub async fn run_availability(o: &AvailabilityOptions) -> anyhow::Result<AvailabilityReport> {
    let started = Instant::now();
    let (datalager, scale) = datalager_in(o)?;
    let fed = LocalFederation::start(&datalager, &o.dir.join("federation"), &LocalOptions::default()).await.context("starting the federation")?;
    let catalog = Catalog::embedded();
    let years = fed.agents.first().map(|a| a.node.engine().data_years()).context("no agents")?;
    let full = format!("{}..{}", years.0, years.1);
    let recent = format!("{}..{}", (years.1 - 2).max(years.0), years.1);
    let recipes: Vec<std::sync::Arc<Recipe>> = catalog.latest().into_iter().filter(|r| o.indicators.is_empty() || o.indicators.contains(&r.id)).collect();
    let (mut questions, mut refused) = (0u64, 0u64);
    let say = |m: &str| {
        if !o.quiet {
            eprintln!("{m}");
        }
    };

    say("the standard release, before the sessions");
    let mut before = Vec::new();
    for r in &recipes {
        for question in standard_questions(r, &full) {
            questions += 1;
            match ask(&fed, &catalog, &question, "analyst-first").await? {
                Some((answers, _)) => before.push(Some(answers)),
                None => {
                    refused += 1;
                    before.push(None)
                }
            }
        }
    }

    let mut rng = Rng::for_stream(o.seed, 25);
    let mut adhoc = Tally::default();
    for s in 0..o.sessions {
        say(&format!("session {} of {}", s + 1, o.sessions));
        let requester = format!("analyst-{s}");
        let mut asked: Vec<IndicatorQuery> = Vec::new();
        for _ in 0..3 {
            let r = &recipes[rng.range(0, recipes.len() as i64 - 1) as usize];
            asked.extend(web_and_report_questions(r, &full, &recent));
        }
        for _ in 0..o.explorations {
            let r = &recipes[rng.range(0, recipes.len() as i64 - 1) as usize];
            asked.push(exploration(r, years, &mut rng));
        }
        for question in asked {
            questions += 1;
            match ask(&fed, &catalog, &question, &requester).await? {
                Some((_, t)) => adhoc.add(&t),
                None => refused += 1,
            }
        }
    }

    say("the standard release, after the sessions");
    let mut standard = Tally::default();
    let mut unchanged = true;
    let mut i = 0;
    for r in &recipes {
        for question in standard_questions(r, &full) {
            questions += 1;
            let after = ask(&fed, &catalog, &question, "analyst-last").await?;
            match (&before[i], after) {
                (Some(b), Some((a, t))) => {
                    let cells = |x: &[RegionAnswer]| x.iter().map(|a| a.cells.clone()).collect::<Vec<_>>();
                    unchanged &= cells(b) == cells(&a);
                    standard.add(&t);
                }
                (None, None) => refused += 1,
                _ => unchanged = false,
            }
            i += 1;
        }
    }
    let regions = fed.agents.len();
    fed.stop().await?;
    Ok(AvailabilityReport {
        scale,
        regions,
        recipes: recipes.len(),
        sessions: o.sessions,
        questions,
        refused,
        standard,
        adhoc,
        standard_unchanged: unchanged,
        seconds: started.elapsed().as_secs_f64(),
    })
}
