//! BENCHMARKS.md's tables from a benchmark run.

use super::*;

fn p(l: &Option<Latency>) -> (String, String) {
    match l {
        Some(l) => (fmt_ms(l.p50_ms), fmt_ms(l.p95_ms)),
        None => ("-".into(), "-".into()),
    }
}

fn ratio(a: &Option<Latency>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a.p50_ms / b),
        _ => "-".into(),
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".into(), |b| format!("{:.0}", b as f64 / 1024.0 / 1024.0))
}

impl BenchReport {
    /// The report as Markdown tables (what BENCHMARKS.md quotes).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let versions: Vec<String> = self.versions.values().cloned().collect();
        s.push_str(&format!(
            "Run {}: {}; {}. Scale {} ({} persons in all datalagers, {} contacts). Whole run {:.0} s.\n\n",
            self.started,
            self.machine,
            versions.join(", "),
            self.scale,
            self.persons,
            self.contacts,
            self.seconds
        ));
        if let Some(synth) = &self.synth {
            s.push_str(&format!("Generating the datalager took {:.0} s, peak memory {} MiB.\n\n", synth.seconds, mib(synth.peak_rss_bytes)));
        }
        s.push_str("End to end, milliseconds. Norrsken: through the coordinator over mutual TLS (cold = first answer after start; warm = caches bypassed; cached = coordinator cache). Agent = the slowest agent call in the warm runs. DuckDB and PostgreSQL: the same cells computed centrally; PG+idx with a b-tree index on the main diagnosis. Ratios: Norrsken warm p50 over DuckDB p50 and over the faster PostgreSQL p50.\n\n");
        s.push_str("| indicator | cells | cold | warm p50 | warm p95 | agent p50 | cached p50 | cached p95 | DuckDB p50 | DuckDB p95 | PG p50 | PG p95 | PG+idx p50 | PG+idx p95 | N/DuckDB | N/PG |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.indicators {
            let (w50, w95) = p(&r.warm);
            let (a50, _) = p(&r.warm_slowest_agent);
            let (c50, c95) = p(&r.cached);
            let (d50, d95) = p(&r.duckdb);
            let (g50, g95) = p(&r.postgres);
            let (i50, i95) = p(&r.postgres_indexed);
            let best_pg = [r.postgres, r.postgres_indexed].iter().flatten().map(|l| l.p50_ms).reduce(f64::min);
            s.push_str(&format!(
                "| {} | {} | {} | {w50} | {w95} | {a50} | {c50} | {c95} | {d50} | {d95} | {g50} | {g95} | {i50} | {i95} | {} | {} |\n",
                r.indicator,
                r.cells,
                if r.cold_ms > 0.0 { fmt_ms(r.cold_ms) } else { "failed".to_string() },
                ratio(&r.warm, r.duckdb.map(|d| d.p50_ms)),
                ratio(&r.warm, best_pg)
            ));
        }
        for r in self.indicators.iter().filter(|r| r.error.is_some()) {
            s.push_str(&format!("\n{} was not answered by the federation: {}\n", r.indicator, r.error.as_deref().unwrap_or_default()));
        }
        s.push_str("\nQueries: each indicator over the whole period by ");
        let shapes: std::collections::BTreeSet<String> = self.indicators.iter().map(|r| r.breakdowns.join(" × ")).collect();
        s.push_str(&shapes.into_iter().collect::<Vec<_>>().join("; or by "));
        s.push_str(".\n\nNumbers checked before timing (policy without perturbation, recipes' minimum cell sizes): every released cell equal to the central computation.\n\n");
        s.push_str("| indicator | kind | cells | released and compared | withheld | DuckDB | PostgreSQL |\n|---|---|---:|---:|---:|---|---|\n");
        let verdict = |a: &Option<Agreement>| match a {
            Some(a) if a.agrees() => "agree".to_string(),
            Some(a) => format!("{} differences", a.mismatch_count),
            None => "-".to_string(),
        };
        for r in &self.indicators {
            let a = r.agreement_duckdb.as_ref().or(r.agreement_postgres.as_ref());
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.indicator,
                r.kind,
                a.map_or(0, |a| a.cells),
                a.map_or(0, |a| a.released),
                a.map_or(0, |a| a.withheld),
                verdict(&r.agreement_duckdb),
                verdict(&r.agreement_postgres)
            ));
        }
        s.push_str("\nThroughput: concurrent clients, each on its own mutual-TLS connection, asking the indicators above in turn.\n\n");
        s.push_str("| mode | clients | seconds | queries | per second | p50 ms | p95 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for t in &self.throughput {
            let (p50, p95) = p(&t.latency);
            s.push_str(&format!("| {} | {} | {:.1} | {} | {:.0} | {p50} | {p95} | {} |\n", t.mode, t.clients, t.seconds, t.queries, t.per_second, t.errors));
        }
        if let Some(e) = self.throughput.iter().find_map(|t| t.first_error.as_ref()) {
            s.push_str(&format!("\nFirst error: {e}\n"));
        }
        if !self.fan_out.is_empty() {
            s.push_str("\nFan-out: one query answered from the agents' caches (coordinator cache off).\n\n| agents | runs | p50 ms | p95 ms |\n|---:|---:|---:|---:|\n");
            for f in &self.fan_out {
                let (p50, p95) = p(&f.latency);
                s.push_str(&format!("| {} | {} | {p50} | {p95} |\n", f.agents, f.latency.map_or(0, |l| l.runs)));
            }
        }
        s.push_str(&format!("\nPeak resident memory of the timing federation (MiB; each agent's engine pool: {} MiB).\n\n| process | peak RSS MiB |\n|---|---:|\n", self.memory_limit_mb));
        for (name, bytes) in &self.peak_rss {
            s.push_str(&format!("| {name} | {} |\n", mib(*bytes)));
        }
        s
    }
}
