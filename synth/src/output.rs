//! Turns simulated histories into Arrow batches per region and CDM table, and streams them
//! into Parquet files.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use norrsken_model::cdm::CdmTable;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::person::{ContactRow, PersonHistory, PersonRow};
use crate::SynthError;

/// Rows bound for one region's datalager, collected for one chunk of persons.
#[derive(Default)]
pub struct RegionRows<'a> {
    pub persons: Vec<&'a PersonRow>,
    pub contacts: Vec<(&'a PersonRow, &'a ContactRow)>,
    pub drugs: Vec<&'a PersonHistory>,
    pub measurements: Vec<&'a PersonHistory>,
}

/// Routes a chunk's histories to the regions being written. `wanted[i]` tells whether
/// region `i` is written.
pub fn route<'a>(histories: &'a [PersonHistory], regions: usize, wanted: &[bool]) -> Vec<RegionRows<'a>> {
    let mut out: Vec<RegionRows<'a>> = (0..regions).map(|_| RegionRows::default()).collect();
    let mut visited = vec![false; regions];
    for h in histories {
        visited.iter_mut().for_each(|v| *v = false);
        visited[h.home_region] = true;
        for c in &h.contacts {
            visited[c.unit.region] = true;
        }
        for (r, rows) in out.iter_mut().enumerate() {
            if !wanted[r] || !visited[r] {
                continue;
            }
            rows.persons.push(&h.person);
            rows.contacts.extend(h.contacts.iter().filter(|c| c.unit.region == r).map(|c| (&h.person, c)));
            if r == h.home_region {
                rows.drugs.push(h);
                rows.measurements.push(h);
            }
        }
    }
    out
}

fn batch(table: CdmTable, columns: Vec<ArrayRef>) -> Result<RecordBatch, SynthError> {
    RecordBatch::try_new(table.schema(), columns).map_err(|e| SynthError::Arrow(table.name().into(), e.to_string()))
}

/// Builds the six CDM batches for one region's rows. `region_codes` maps region index to
/// county code (for care-unit codes).
pub fn build_batches(rows: &RegionRows<'_>, region_codes: &[&str]) -> Result<Vec<(CdmTable, RecordBatch)>, SynthError> {
    let mut out = Vec::with_capacity(6);

    let n = rows.persons.len();
    let mut id = Int64Builder::with_capacity(n);
    let mut by = Int32Builder::with_capacity(n);
    let mut bm = Int32Builder::with_capacity(n);
    let mut sex = StringBuilder::with_capacity(n, n * 6);
    let mut kommun = StringBuilder::with_capacity(n, n * 4);
    let mut edu = StringBuilder::with_capacity(n, n * 9);
    let mut bc = StringBuilder::with_capacity(n, n * 7);
    let mut iq = Int32Builder::with_capacity(n);
    let mut death = Date32Builder::with_capacity(n);
    for p in &rows.persons {
        id.append_value(p.person_id);
        by.append_value(p.birth_year);
        bm.append_value(p.birth_month);
        sex.append_value(if p.female { "female" } else { "male" });
        kommun.append_value(p.kommun);
        edu.append_option(p.education);
        bc.append_value(p.birth_country);
        iq.append_option(p.income_quintile);
        death.append_option(p.death_date);
    }
    out.push((
        CdmTable::Persons,
        batch(
            CdmTable::Persons,
            vec![
                Arc::new(id.finish()),
                Arc::new(by.finish()),
                Arc::new(bm.finish()),
                Arc::new(sex.finish()),
                Arc::new(kommun.finish()),
                Arc::new(edu.finish()),
                Arc::new(bc.finish()),
                Arc::new(iq.finish()),
                Arc::new(death.finish()),
            ],
        )?,
    ));

    let n = rows.contacts.len();
    let mut cid = Int64Builder::with_capacity(n);
    let mut pid = Int64Builder::with_capacity(n);
    let mut start = TimestampMicrosecondBuilder::with_capacity(n);
    let mut end = TimestampMicrosecondBuilder::with_capacity(n);
    let mut care = StringBuilder::with_capacity(n, n * 14);
    let mut acute = BooleanBuilder::with_capacity(n);
    let mut prof = StringBuilder::with_capacity(n, n * 6);
    let mut unit = StringBuilder::with_capacity(n, n * 10);
    let mut home = StringBuilder::with_capacity(n, n * 4);
    let mut dx = StringBuilder::with_capacity(n, n * 4);
    let mut cost = Float64Builder::with_capacity(n);
    let (mut d_cid, mut d_pid, mut d_pos, mut d_code) =
        (Int64Builder::new(), Int64Builder::new(), Int32Builder::new(), StringBuilder::new());
    let (mut p_cid, mut p_pid, mut p_code, mut p_at) =
        (Int64Builder::new(), Int64Builder::new(), StringBuilder::new(), TimestampMicrosecondBuilder::new());
    for (person, c) in &rows.contacts {
        cid.append_value(c.contact_id);
        pid.append_value(person.person_id);
        start.append_value(c.start);
        end.append_value(c.end);
        care.append_value(c.care_type);
        acute.append_value(c.acute);
        prof.append_value(c.profession);
        let _ = write!(unit, "{}-{}-{}", region_codes[c.unit.region], c.unit.place, c.unit.department);
        unit.append_value("");
        home.append_value(person.kommun);
        dx.append_option(c.main_diagnosis);
        cost.append_value(c.cost);
        for (i, code) in c.secondary.iter().enumerate() {
            d_cid.append_value(c.contact_id);
            d_pid.append_value(person.person_id);
            d_pos.append_value(i as i32 + 1);
            d_code.append_value(code);
        }
        for (code, at) in &c.procedures {
            p_cid.append_value(c.contact_id);
            p_pid.append_value(person.person_id);
            p_code.append_value(code);
            p_at.append_value(*at);
        }
    }
    out.push((
        CdmTable::Contacts,
        batch(
            CdmTable::Contacts,
            vec![
                Arc::new(cid.finish()),
                Arc::new(pid.finish()),
                Arc::new(start.finish()),
                Arc::new(end.finish()),
                Arc::new(care.finish()),
                Arc::new(acute.finish()),
                Arc::new(prof.finish()),
                Arc::new(unit.finish()),
                Arc::new(home.finish()),
                Arc::new(dx.finish()),
                Arc::new(cost.finish()),
            ],
        )?,
    ));
    out.push((
        CdmTable::Diagnoses,
        batch(
            CdmTable::Diagnoses,
            vec![Arc::new(d_cid.finish()), Arc::new(d_pid.finish()), Arc::new(d_pos.finish()), Arc::new(d_code.finish())],
        )?,
    ));
    out.push((
        CdmTable::Procedures,
        batch(
            CdmTable::Procedures,
            vec![Arc::new(p_cid.finish()), Arc::new(p_pid.finish()), Arc::new(p_code.finish()), Arc::new(p_at.finish())],
        )?,
    ));

    let (mut pid, mut atc, mut date, mut packages, mut ddd) =
        (Int64Builder::new(), StringBuilder::new(), Date32Builder::new(), Int32Builder::new(), Float64Builder::new());
    for h in &rows.drugs {
        for d in &h.drugs {
            pid.append_value(h.person.person_id);
            atc.append_value(d.atc);
            date.append_value(d.date);
            packages.append_value(d.packages);
            ddd.append_value(d.ddd);
        }
    }
    out.push((
        CdmTable::Drugs,
        batch(
            CdmTable::Drugs,
            vec![
                Arc::new(pid.finish()),
                Arc::new(atc.finish()),
                Arc::new(date.finish()),
                Arc::new(packages.finish()),
                Arc::new(ddd.finish()),
            ],
        )?,
    ));

    let (mut pid, mut kind, mut date, mut value, mut unit) =
        (Int64Builder::new(), StringBuilder::new(), Date32Builder::new(), Float64Builder::new(), StringBuilder::new());
    for h in &rows.measurements {
        for m in &h.measurements {
            pid.append_value(h.person.person_id);
            kind.append_value(m.kind);
            date.append_value(m.date);
            value.append_value(m.value);
            unit.append_value(m.unit);
        }
    }
    out.push((
        CdmTable::Measurements,
        batch(
            CdmTable::Measurements,
            vec![
                Arc::new(pid.finish()),
                Arc::new(kind.finish()),
                Arc::new(date.finish()),
                Arc::new(value.finish()),
                Arc::new(unit.finish()),
            ],
        )?,
    ));
    Ok(out)
}

/// The Parquet files of one region: one writer per CDM table, `DIR/<table>/part-0.parquet`.
pub struct RegionWriter {
    pub dir: PathBuf,
    writers: Vec<(CdmTable, ArrowWriter<File>, u64)>,
}

impl RegionWriter {
    pub fn create(dir: &Path) -> Result<RegionWriter, SynthError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| SynthError::Parquet(e.to_string()))?))
            .set_max_row_group_row_count(Some(256 * 1024))
            .set_created_by("norrsken synth".to_string())
            .build();
        let mut writers = Vec::new();
        for table in CdmTable::ALL {
            let tdir = dir.join(table.name());
            std::fs::create_dir_all(&tdir).map_err(|e| SynthError::Io(tdir.display().to_string(), e.to_string()))?;
            let path = tdir.join("part-0.parquet");
            let file = File::create(&path).map_err(|e| SynthError::Io(path.display().to_string(), e.to_string()))?;
            let w = ArrowWriter::try_new(file, table.schema(), Some(props.clone()))
                .map_err(|e| SynthError::Parquet(e.to_string()))?;
            writers.push((table, w, 0));
        }
        Ok(RegionWriter { dir: dir.to_path_buf(), writers })
    }

    pub fn write(&mut self, table: CdmTable, batch: &RecordBatch) -> Result<(), SynthError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (_, w, rows) = self
            .writers
            .iter_mut()
            .find(|(t, _, _)| *t == table)
            .ok_or_else(|| SynthError::Parquet(format!("no writer for {table}")))?;
        *rows += batch.num_rows() as u64;
        w.write(batch).map_err(|e| SynthError::Parquet(e.to_string()))
    }

    /// Closes every file; returns the row count per table.
    pub fn finish(self) -> Result<Vec<(CdmTable, u64)>, SynthError> {
        let mut counts = Vec::new();
        for (table, w, rows) in self.writers {
            w.close().map_err(|e| SynthError::Parquet(e.to_string()))?;
            counts.push((table, rows));
        }
        Ok(counts)
    }
}
