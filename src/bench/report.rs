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
        if !self.exploration.is_empty() {
            s.push_str(&self.exploration_markdown());
        }
        if !self.prepared.is_empty() {
            s.push_str(&self.prepared_markdown());
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

    /// The exploration series: per indicator the median over its breakdown combinations,
    /// and the p50 over every question.
    fn exploration_markdown(&self) -> String {
        let mut s = String::from("\nExploration: each indicator with up to 8 breakdown combinations over the whole period, caches bypassed (each question's median of 3), as a dashboard asks them; DuckDB: the same questions on the pooled Parquet files.\n\n");
        s.push_str("| indicator | questions | Norrsken p50 ms | DuckDB p50 ms | N/DuckDB |\n|---|---:|---:|---:|---:|\n");
        let p50 = |v: &mut Vec<f64>| -> Option<f64> {
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| v[v.len() / 2])
        };
        let mut indicators: Vec<&str> = self.exploration.iter().map(|e| e.indicator.as_str()).collect();
        indicators.dedup();
        let cell = |x: Option<f64>| x.map_or_else(|| "-".to_string(), fmt_ms);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        for ind in indicators {
            let rows: Vec<&ExplorationResult> = self.exploration.iter().filter(|e| e.indicator == ind).collect();
            let n = p50(&mut rows.iter().filter_map(|e| e.federation_ms).collect());
            let d = p50(&mut rows.iter().filter_map(|e| e.duckdb_ms).collect());
            s.push_str(&format!("| {ind} | {} | {} | {} | {} |\n", rows.len(), cell(n), cell(d), ratio(n, d)));
        }
        let n = p50(&mut self.exploration.iter().filter_map(|e| e.federation_ms).collect());
        let d = p50(&mut self.exploration.iter().filter_map(|e| e.duckdb_ms).collect());
        s.push_str(&format!("| **all {} questions** | | **{}** | **{}** | **{}** |\n", self.exploration.len(), cell(n), cell(d), ratio(n, d)));
        s
    }

    /// Building the prepared unit tables after a data reload, per region.
    fn prepared_markdown(&self) -> String {
        let mut s = String::from("\nPrepared unit tables: building every measured recipe's table in each region's engine (provider perspective), as after a data reload.\n\n");
        s.push_str("| region | tables | rows | MiB | build s | largest |\n|---|---:|---:|---:|---:|---|\n");
        let mut regions: Vec<&str> = self.prepared.iter().map(|p| p.region.as_str()).collect();
        regions.dedup();
        for region in regions {
            let builds: Vec<&PreparedBuild> = self.prepared.iter().filter(|p| p.region == region).collect();
            let largest = builds.iter().max_by_key(|p| p.bytes).map(|p| format!("{} ({:.0} MiB, {})", p.indicator, p.bytes as f64 / 1048576.0, fmt_ms(p.build_ms))).unwrap_or_default();
            s.push_str(&format!(
                "| {region} | {} | {} | {:.0} | {:.1} | {largest} |\n",
                builds.iter().filter(|p| p.rows > 0).count(),
                builds.iter().map(|p| p.rows).sum::<usize>(),
                builds.iter().map(|p| p.bytes).sum::<usize>() as f64 / 1048576.0,
                builds.iter().map(|p| p.build_ms).sum::<f64>() / 1000.0
            ));
        }
        s
    }
}
