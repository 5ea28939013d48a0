//! Synthetic regional datalager for the four regions of Norra sjukvårdsregionen.
//!
//! `generate` writes one folder per region with one Parquet file set per CDM table and a
//! `manifest.json`. Output is deterministic: the same seed, scale, years and generator
//! version give byte-identical files, and a region's files are the same whether it is
//! generated alone or with the others (every region is always simulated, because patients
//! cross region borders; only the selected regions are written).

pub mod calendar;
pub mod defects;
pub mod model;
mod output;
pub mod person;
pub mod rng;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use norrsken_model::cdm::{CdmTable, Manifest, MANIFEST};
use norrsken_model::geography::{self, Region, NORRA};

use crate::person::{Entry, Exposure, Intervention, PersonHistory, World};

pub use output::RegionWriter;

/// Generator version written to manifests; bump when output changes for the same options.
pub const GENERATOR_VERSION: &str = "norrsken-synth/1";

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid option {option}: {reason}")]
    Option { option: &'static str, reason: String },
    #[error("cannot write {0}: {1}")]
    Io(String, String),
    #[error("Parquet: {0}")]
    Parquet(String),
    #[error("building the {0} table: {1}")]
    Arrow(String, String),
    #[error("a generator thread failed: {0}")]
    Worker(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub out: PathBuf,
    /// 1.0 = the real populations (~905,000 persons).
    pub scale: f64,
    pub seed: u64,
    /// County codes of the regions to write; empty = all four.
    pub regions: Vec<String>,
    pub first_year: i32,
    pub last_year: i32,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    pub progress: bool,
    /// The mobile team with a known effect (docs/data-model.md, "An intervention with a
    /// known effect"); None leaves it out.
    pub intervention: Option<InterventionSettings>,
    /// Known defects to inject (docs/data-quality.md); none by default.
    pub defects: Vec<defects::Defect>,
}

/// The simulated intervention's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionSettings {
    /// Share of persons who meet the referral criterion and join.
    pub uptake: f64,
    /// Share of residents aged 70 or more with recurring frailty admissions.
    pub frail_share: f64,
    /// Per county code: the share of frailty admissions after joining that the team avoids.
    pub effects: Vec<(String, f64)>,
}

/// The procedure code the simulated mobile team registers when a patient joins (a local
/// code, not a KVÅ code).
pub const MOBILE_TEAM_CODE: &str = "XMT01";
/// The day the simulated team starts in every region.
pub const MOBILE_TEAM_START: (i32, u32, u32) = (2023, 1, 1);
/// The file in each region's folder holding the intervention's true effect.
pub const INTERVENTION_TRUTH: &str = "intervention.json";

impl Default for InterventionSettings {
    fn default() -> Self {
        InterventionSettings {
            uptake: 0.5,
            frail_share: 0.05,
            // Different effects, so that a meta-analysis across the regions finds them
            // heterogeneous: Jämtland Härjedalen's team avoids far less.
            effects: vec![("25".into(), 0.45), ("24".into(), 0.40), ("23".into(), 0.10), ("22".into(), 0.35)],
        }
    }
}

/// The true effect of the intervention on those who joined, in one region, within the
/// after window (written to [`INTERVENTION_TRUTH`]; an evaluation is checked against it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InterventionTruth {
    pub code: String,
    pub start: String,
    pub uptake: f64,
    pub effect: f64,
    pub after_days: i32,
    /// Residents who joined with the whole after window inside the data.
    pub exposed: u64,
    /// Mean per person of what joining changed: inpatient stays, days in hospital, care
    /// contacts (the team's visits less the stays avoided) and KPP cost (the team's cost
    /// less the avoided stays' cost).
    pub stays_effect: f64,
    pub days_effect: f64,
    pub contacts_effect: f64,
    pub cost_effect: f64,
}

impl InterventionTruth {
    pub fn read(dir: &Path) -> Result<InterventionTruth, SynthError> {
        let path = dir.join(INTERVENTION_TRUTH);
        let text = std::fs::read_to_string(&path).map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))
    }
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            out: PathBuf::from("datalager"),
            scale: 0.01,
            seed: 1,
            regions: Vec::new(),
            first_year: 2021,
            last_year: 2025,
            threads: 0,
            progress: false,
            intervention: Some(InterventionSettings::default()),
            defects: Vec::new(),
        }
    }
}

/// Parses "2021..2025" (or a single year).
pub fn parse_years(s: &str) -> Result<(i32, i32), SynthError> {
    let err = |r: &str| SynthError::Option { option: "--years", reason: format!("'{s}': {r}") };
    let (a, b) = s.split_once("..").unwrap_or((s, s));
    let a: i32 = a.trim().parse().map_err(|_| err("expected FIRST..LAST, e.g. 2021..2025"))?;
    let b: i32 = b.trim().parse().map_err(|_| err("expected FIRST..LAST, e.g. 2021..2025"))?;
    if !(1990..=2100).contains(&a) || !(1990..=2100).contains(&b) {
        return Err(err("years must lie between 1990 and 2100"));
    }
    if b < a {
        return Err(err("the last year is before the first"));
    }
    if b - a >= 30 {
        return Err(err("at most 30 years"));
    }
    Ok((a, b))
}

struct ChunkSpec {
    region: usize,
    kommun: &'static str,
    entry: Entry,
    first_id: i64,
    count: usize,
}

const CHUNK: usize = 2_000;
/// Newborns per inhabitant and year.
const BIRTH_RATE: f64 = 0.0105;

fn plan(scale: f64, years: i32) -> Vec<ChunkSpec> {
    let mut chunks = Vec::new();
    for (r, region) in NORRA.iter().enumerate() {
        let base: i64 = region.code.parse::<i64>().unwrap_or(r as i64 + 1) * 100_000_000;
        let mut next = base + 1;
        for k in region.kommuner {
            let residents = (k.population as f64 * scale).round() as usize;
            let newborns = (residents as f64 * BIRTH_RATE * years as f64).round() as usize;
            for (entry, n) in [(Entry::Resident { share_65_plus: k.share_65_plus }, residents), (Entry::Newborn, newborns)] {
                let mut done = 0;
                while done < n {
                    let count = CHUNK.min(n - done);
                    chunks.push(ChunkSpec { region: r, kommun: k.code, entry, first_id: next, count });
                    next += count as i64;
                    done += count;
                }
            }
        }
    }
    chunks
}

fn selected_regions(options: &SynthOptions) -> Result<Vec<bool>, SynthError> {
    if options.regions.is_empty() {
        return Ok(vec![true; NORRA.len()]);
    }
    let mut wanted = vec![false; NORRA.len()];
    for name in &options.regions {
        let i = geography::find_region(name).and_then(|region| NORRA.iter().position(|r| r.code == region.code)).ok_or_else(|| {
            SynthError::Option {
                option: "--regions",
                reason: format!(
                    "'{name}' is not a region the generator covers; use a county code, ISO code or name: {}",
                    NORRA.iter().map(|r| format!("{} ({})", r.code, r.slug)).collect::<Vec<_>>().join(", ")
                ),
            }
        })?;
        wanted[i] = true;
    }
    Ok(wanted)
}

/// The folder a region's datalager is written to under `out`.
pub fn region_dir(out: &Path, region: &Region) -> PathBuf {
    out.join(region.slug)
}

type ChunkResult = Result<(Vec<(usize, CdmTable, RecordBatch)>, Vec<(usize, Exposure)>), SynthError>;

const AFTER_DAYS: i32 = 90;

/// Generates the datalager. Returns one manifest per written region.
pub fn generate(options: &SynthOptions) -> Result<Vec<Manifest>, SynthError> {
    if !(options.scale > 0.0 && options.scale <= 10.0) {
        return Err(SynthError::Option { option: "--scale", reason: format!("{} must be above 0 and at most 10", options.scale) });
    }
    if options.last_year < options.first_year {
        return Err(SynthError::Option { option: "--years", reason: "the last year is before the first".into() });
    }
    let wanted = selected_regions(options)?;
    let codes: Vec<&'static str> = NORRA.iter().map(|r| r.code).collect();
    let intervention = match &options.intervention {
        None => None,
        Some(iv) => {
            let share = |option: &'static str, v: f64| {
                if (0.0..=1.0).contains(&v) {
                    Ok(v)
                } else {
                    Err(SynthError::Option { option, reason: format!("{v} must be a share from 0 to 1") })
                }
            };
            let mut effect = vec![0.0; codes.len()];
            for (code, e) in &iv.effects {
                let i = codes.iter().position(|c| c == code).ok_or_else(|| SynthError::Option { option: "--intervention-effects", reason: format!("'{code}' is not a Norra county code") })?;
                effect[i] = share("--intervention-effects", *e)?;
            }
            let (y, m, d) = MOBILE_TEAM_START;
            Some(Intervention {
                code: MOBILE_TEAM_CODE,
                start_day: calendar::days_from_civil(y, m, d),
                uptake: share("--intervention-uptake", iv.uptake)?,
                effect,
                frail_share: share("--frail-share", iv.frail_share)?,
                after_days: AFTER_DAYS,
                within_days: 90,
                min_age: 65,
            })
        }
    };
    let world = World {
        profiles: codes.iter().map(|c| model::profile(c)).collect(),
        region_codes: codes.clone(),
        first_year: options.first_year,
        last_year: options.last_year,
        intervention,
    };
    let chunks = plan(options.scale, options.last_year - options.first_year + 1);
    let total_persons: u64 = chunks.iter().map(|c| c.count as u64).sum();

    let mut writers: Vec<Option<RegionWriter>> = Vec::new();
    for (i, region) in NORRA.iter().enumerate() {
        writers.push(if wanted[i] { Some(RegionWriter::create(&region_dir(&options.out, region))?) } else { None });
    }

    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        options.threads
    };
    let bar = if options.progress {
        let bar = indicatif::ProgressBar::new(total_persons);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {human_pos}/{human_len} persons ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();

    let mut truths: Vec<Vec<Exposure>> = vec![Vec::new(); codes.len()];
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<(usize, ChunkResult)>(threads * 2);
    let result: Result<(), SynthError> = std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, world, chunks, wanted, codes) = (&next, &stop, &world, &chunks, &wanted, &codes);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = chunks.get(i) else { return };
                let mut histories: Vec<PersonHistory> = (0..spec.count)
                    .map(|j| person::simulate(world, options.seed, spec.first_id + j as i64, spec.region, spec.kommun, spec.entry))
                    .collect();
                if !options.defects.is_empty() {
                    defects::apply(&mut histories, codes, &options.defects);
                }
                let exposures: Vec<(usize, Exposure)> = histories.iter().filter_map(|h| h.exposure.map(|e| (h.home_region, e))).collect();
                let routed = output::route(&histories, codes.len(), wanted);
                let mut batches = Vec::new();
                let mut failure = None;
                for (r, rows) in routed.iter().enumerate() {
                    if !wanted[r] || rows.persons.is_empty() {
                        continue;
                    }
                    match output::build_batches(rows, codes) {
                        Ok(bs) => batches.extend(bs.into_iter().map(|(t, b)| (r, t, b))),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                let msg = match failure {
                    Some(e) => Err(e),
                    None => Ok((batches, exposures)),
                };
                if tx.send((i, msg)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        // Write chunks strictly in plan order, whatever order the workers finish in.
        let mut pending: BTreeMap<usize, ChunkResult> = BTreeMap::new();
        let mut expected = 0;
        for (i, res) in rx.iter() {
            pending.insert(i, res);
            while let Some(res) = pending.remove(&expected) {
                let batches = match res {
                    Ok((b, exposed)) => {
                        for (r, e) in exposed {
                            truths[r].push(e);
                        }
                        b
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                for (r, table, batch) in batches {
                    if let Some(w) = writers[r].as_mut() {
                        if let Err(e) = w.write(table, &batch) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                bar.inc(chunks[expected].count as u64);
                expected += 1;
            }
        }
        if expected != chunks.len() {
            return Err(SynthError::Worker(format!("{} of {} chunks were generated", expected, chunks.len())));
        }
        Ok(())
    });
    result?;
    bar.finish_and_clear();

    let mut manifests = Vec::new();
    for (i, w) in writers.into_iter().enumerate() {
        let Some(w) = w else { continue };
        let dir = w.dir.clone();
        let counts = w.finish()?;
        let region = &NORRA[i];
        let rows: BTreeMap<String, u64> = counts.into_iter().map(|(t, n)| (t.name().to_string(), n)).collect();
        let fingerprint = format!(
            "{GENERATOR_VERSION}|{}|{}|{}|{}..{}|{:?}|{:?}|{:?}",
            region.code, options.seed, options.scale, options.first_year, options.last_year, rows, options.intervention, options.defects
        );
        if let Some(iv) = &world.intervention {
            let last_day = calendar::days_from_civil(options.last_year, 12, 31);
            let complete: Vec<&Exposure> = truths[i].iter().filter(|e| e.index_day + iv.after_days <= last_day).collect();
            let n = complete.len() as f64;
            let mean = |f: &dyn Fn(&Exposure) -> f64| if n > 0.0 { complete.iter().map(|e| f(e)).sum::<f64>() / n } else { 0.0 };
            let (y, m, d) = MOBILE_TEAM_START;
            let truth = InterventionTruth {
                code: iv.code.to_string(),
                start: format!("{y:04}-{m:02}-{d:02}"),
                uptake: iv.uptake,
                effect: iv.effect[i],
                after_days: iv.after_days,
                exposed: complete.len() as u64,
                stays_effect: mean(&|e| -(e.avoided_stays as f64)),
                days_effect: mean(&|e| -e.avoided_days),
                contacts_effect: mean(&|e| e.team_contacts as f64 - e.avoided_stays as f64),
                cost_effect: mean(&|e| e.team_cost - e.avoided_cost),
            };
            let path = dir.join(INTERVENTION_TRUTH);
            let text = serde_json::to_string_pretty(&truth).map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
            std::fs::write(&path, text + "\n").map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
        }
        let manifest = Manifest {
            format: Manifest::FORMAT.into(),
            generator: GENERATOR_VERSION.into(),
            region: region.code.into(),
            region_name: region.name.into(),
            seed: options.seed,
            scale: options.scale,
            first_year: options.first_year,
            last_year: options.last_year,
            rows,
            data_version: short_hash(fingerprint.as_bytes()),
        };
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
        manifests.push(manifest);
    }
    if options.progress {
        eprintln!("generated {total_persons} simulated persons in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(manifests)
}

fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

