//! `norrsken availability --secure-sum`: what secure sums between agents give analysts
//! (docs/secure-aggregation.md), measured on the same questions asked of two federations
//! over the same datalager, one without secure sums and one with them.
//!
//! For every recipe: the whole period, by year, by sex, by year and sex, and by kommun in the
//! provider perspective (pooled rows), and by year, by kommun and by year and kommun in the
//! population perspective (home regions' rows). A cell counts when its true total (the sum
//! of the agents' raw parts) holds at least k persons. Every released pooled or home value
//! is checked against that central sum (within the perturbation's largest deviation), and
//! every released pooled cell against the release rules (never beside exactly one withheld
//! region part). Also measured: the time per question with and without the secure sum, the
//! bytes each agent sends, and the masking cost with 4 and 21 participants.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context};
use norrsken_model::catalog::{Catalog, Recipe};
use norrsken_model::comparison::{Comparison, RowKind};
use norrsken_model::query::{IndicatorQuery, Perspective};
use serde::Serialize;

use crate::client::Connection;
use crate::local::{tls_files, LocalFederation, LocalOptions};

/// Released cells of at least k persons, of one row kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Share {
    pub cells: u64,
    pub released: u64,
}

impl Share {
    pub fn percent(&self) -> f64 {
        if self.cells == 0 {
            0.0
        } else {
            100.0 * self.released as f64 / self.cells as f64
        }
    }
}

/// One federation's results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub pooled: Share,
    pub home: Share,
    pub questions: u64,
    pub seconds: f64,
    /// Released pooled or home values further from the central sum than the perturbation
    /// allows, and pooled cells released beside exactly one withheld part (both must be 0).
    pub off_truth: u64,
    pub beside_one_withheld: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PooledReport {
    pub scale: Option<f64>,
    pub recipes: usize,
    pub without: Side,
    pub with: Side,
    /// Cells in the secure sums, and bytes each agent sent (20 words of 8 bytes a cell).
    pub cells: u64,
    pub bytes_per_agent: u64,
    /// Masking a 10,000-cell vector (200,000 words): milliseconds with 4 and 21 participants.
    pub mask_ms_4: f64,
    pub mask_ms_21: f64,
    /// The coordinator adding 21 such vectors (milliseconds).
    pub unmask_ms_21: f64,
}

impl PooledReport {
    pub fn to_markdown(&self) -> String {
        let row = |name: &str, a: &Share, b: &Share| {
            format!("| {name} | {} | {:.1} % ({}) | {:.1} % ({}) |\n", a.cells, a.percent(), a.released, b.percent(), b.released)
        };
        let mut s = String::new();
        s.push_str(&format!(
            "Secure sums between agents: {} recipes{}; cells of at least k = 5 persons (true totals).\n\n",
            self.recipes,
            self.scale.map(|x| format!(", scale {x}")).unwrap_or_default()
        ));
        s.push_str("| Rows | Cells ≥ k | Released without secure sums | Released with secure sums |\n|---|---|---|---|\n");
        s.push_str(&row("Pooled (provider perspective)", &self.without.pooled, &self.with.pooled));
        s.push_str(&row("Home regions (population perspective)", &self.without.home, &self.with.home));
        s.push_str(&format!(
            "\n{} questions each: {:.2} s without, {:.2} s with secure sums ({:.0} ms and {:.0} ms a question).\n",
            self.with.questions,
            self.without.seconds,
            self.with.seconds,
            1000.0 * self.without.seconds / self.without.questions.max(1) as f64,
            1000.0 * self.with.seconds / self.with.questions.max(1) as f64
        ));
        s.push_str(&format!(
            "Secure sums over {} cells in all; each agent sent {:.1} MB ({} bytes a cell). Masking 10,000 cells: {:.1} ms with 4 participants, {:.1} ms with 21; the coordinator adds 21 such vectors in {:.1} ms.\n",
            self.cells,
            self.bytes_per_agent as f64 / 1e6,
            norrsken_model::secure::WORDS * 8,
            self.mask_ms_4,
            self.mask_ms_21,
            self.unmask_ms_21
        ));
        s.push_str(&format!(
            "Checks: released values further from the central sum than D: {}; pooled cells released beside exactly one withheld part: {}.\n",
            self.with.off_truth, self.with.beside_one_withheld
        ));
        s
    }
}

fn q(indicator: &str, by: &[&str], period: &str, perspective: Perspective) -> IndicatorQuery {
    let mut q = IndicatorQuery { indicator: indicator.into(), breakdowns: by.iter().map(|b| b.to_string()).collect(), period: period.into(), ..Default::default() };
    q.options.perspective = perspective;
    q
}

fn questions(r: &Recipe, full: &str) -> Vec<IndicatorQuery> {
    let allows = |b: &str| r.breakdowns.iter().any(|x| x.name() == b);
    let mut out = vec![q(&r.id, &[], full, Perspective::Provider), q(&r.id, &["year"], full, Perspective::Provider)];
    for by in [vec!["sex"], vec!["year", "sex"], vec!["kommun"]] {
        if by.iter().all(|b| allows(b)) {
            out.push(q(&r.id, &by, full, Perspective::Provider));
        }
    }
    for by in [vec!["year"], vec!["kommun"], vec!["year", "kommun"]] {
        if by.iter().all(|b| allows(b)) {
            out.push(q(&r.id, &by, full, Perspective::Population));
        }
    }
    out
}

/// The true persons of every cell: (home region or "" for pooled, labels) → persons and
/// the denominator's units.
async fn truth(fed: &LocalFederation, catalog: &Catalog, question: &IndicatorQuery) -> anyhow::Result<BTreeMap<(String, Vec<String>, Option<String>), (i64, i64)>> {
    let mut out: BTreeMap<(String, Vec<String>, Option<String>), (i64, i64)> = BTreeMap::new();
    for a in &fed.agents {
        let engine = a.node.engine();
        let v = question.validate(catalog, Some(engine.data_years())).map_err(|e| anyhow!("{e}"))?;
        for c in engine.evaluate(&v).await.map_err(|e| anyhow!("{}: {e}", question.indicator))?.cells {
            let region = if question.options.perspective == Perspective::Population { c.region.clone() } else { String::new() };
            let (_, den, _, _) = norrsken_agent::disclosure::components(v.recipe.kind, &c);
            let e = out.entry((region, c.labels.clone(), c.category.clone())).or_default();
            e.0 += c.persons;
            e.1 += den.unwrap_or(0);
        }
    }
    Ok(out)
}

async fn side(fed: &LocalFederation, catalog: &Catalog, asked: &[IndicatorQuery], max_deviation: i64) -> anyhow::Result<Side> {
    let connection = Connection { url: fed.coordinator_url(), tls: tls_files(&fed.certs, "analyst"), server_name: norrsken_common::pki::COORDINATOR_DNS_NAME.to_string() };
    let mut s = Side::default();
    let k = 5;
    for question in asked {
        let started = Instant::now();
        let (schema, batches) = connection.fetch(question.encode_ticket(None)).await.with_context(|| format!("{} by {:?}", question.indicator, question.breakdowns))?;
        s.seconds += started.elapsed().as_secs_f64();
        s.questions += 1;
        let c = Comparison::from_batches(&schema, &batches)?;
        let truth = truth(fed, catalog, question).await?;
        let population = question.options.perspective == Perspective::Population;
        for r in &c.rows {
            let labels: Vec<String> = r.labels.iter().map(|l| l.clone().unwrap_or_default()).collect();
            let (share, region) = match (r.kind, population) {
                (RowKind::Pooled, false) => (&mut s.pooled, String::new()),
                (RowKind::Region, true) => (&mut s.home, r.region.clone()),
                _ => continue,
            };
            let Some(&(persons, units)) = truth.get(&(region, labels.clone(), r.category.clone())) else { continue };
            if persons < k {
                continue;
            }
            share.cells += 1;
            if r.status == "suppressed" {
                continue;
            }
            share.released += 1;
            if c.meta.secure_sum && r.denominator.is_some_and(|d| (d - units).abs() > max_deviation) {
                s.off_truth += 1;
            }
            if c.meta.secure_sum && r.kind == RowKind::Pooled {
                let withheld = c.rows.iter().filter(|x| x.kind == RowKind::Region && x.labels == r.labels && x.category == r.category && x.status == "suppressed").count();
                s.beside_one_withheld += u64::from(withheld == 1);
            }
        }
    }
    Ok(s)
}

/// Milliseconds to mask a 10,000-cell vector as one of `n` participants.
fn mask_ms(n: usize) -> anyhow::Result<f64> {
    use norrsken_common::secure_sum::{mask, peer_key, SumKey};
    let regions: Vec<String> = (0..n).map(|i| format!("{:02}", i + 1)).collect();
    let keys: Vec<SumKey> = (0..n).map(|i| SumKey::from_bytes([i as u8 + 1; 32])).collect();
    let peers = regions.iter().zip(&keys).map(|(r, k)| Ok((r.clone(), peer_key(r, &k.public_hex())?))).collect::<anyhow::Result<_>>()?;
    let binding = norrsken_model::secure::Binding { question: "bench".into(), participants: regions.clone(), cells: "bench".into(), words: 200_000 };
    let mut v = vec![0u64; 200_000];
    let started = Instant::now();
    mask(&regions[0], &keys[0], &peers, &binding, &mut v)?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the measurement on `datalager`, with federations under `dir`.
pub async fn run_pooled(datalager: &Path, dir: &Path, scale: Option<f64>, indicators: &[String], quiet: bool) -> anyhow::Result<PooledReport> {
    let catalog = Catalog::embedded();
    let recipes: Vec<std::sync::Arc<Recipe>> = catalog.latest().into_iter().filter(|r| indicators.is_empty() || indicators.contains(&r.id)).collect();
    let say = |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let mut results = Vec::new();
    let mut asked = Vec::new();
    let mut cells = 0u64;
    for secure_sum in [false, true] {
        let options = LocalOptions { secure_sum, ..LocalOptions::default() };
        let fed = LocalFederation::start(datalager, &dir.join(if secure_sum { "with" } else { "without" }), &options).await.context("starting the federation")?;
        if asked.is_empty() {
            let years = fed.agents.first().map(|a| a.node.engine().data_years()).context("no agents")?;
            let full = format!("{}..{}", years.0, years.1);
            asked = recipes.iter().flat_map(|r| questions(r, &full)).collect();
            for question in &asked {
                let v = question.validate(&catalog, Some(years)).map_err(|e| anyhow!("{e}"))?;
                let regions: Vec<String> = fed.agents.iter().map(|a| a.node.region.code.to_string()).collect();
                cells += norrsken_model::secure::cell_list(&v, &regions).map(|c| c.len() as u64).unwrap_or(0);
            }
        }
        say(&format!("{} questions {} secure sums", asked.len(), if secure_sum { "with" } else { "without" }));
        results.push(side(&fed, &catalog, &asked, 2).await?);
        fed.stop().await?;
    }
    let with = results.pop().context("with")?;
    let without = results.pop().context("without")?;
    Ok(PooledReport {
        scale,
        recipes: recipes.len(),
        without,
        with,
        cells,
        bytes_per_agent: cells * norrsken_model::secure::WORDS as u64 * 8,
        mask_ms_4: mask_ms(4)?,
        mask_ms_21: mask_ms(21)?,
        unmask_ms_21: {
            let vectors: Vec<Vec<u8>> = (0..21u64).map(|i| norrsken_model::secure::to_bytes(&vec![i; 200_000])).collect();
            let started = Instant::now();
            norrsken_coordinator::secure::unmask(&vectors, 10_000)?;
            started.elapsed().as_secs_f64() * 1000.0
        },
    })
}
