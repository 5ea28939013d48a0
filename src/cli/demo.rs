//! `norrsken demo`: four regional agents and a coordinator on this machine, a few
//! cross-region comparisons, and a clean shutdown.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use norrsken::local::{tls_files, LocalFederation, LocalOptions};
use norrsken_model::cdm::Manifest;
use norrsken_model::geography::NORRA;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator, IndicatorQuery, QueryOptions};
use norrsken_synth::{generate, SynthOptions};

use super::analyse::analysis_text;
use super::client::Connection;
use super::render::{comparison_table, Lang};

#[derive(Args)]
pub struct DemoArgs {
    /// Working folder for the synthetic datalager and the development certificates.
    #[arg(long, default_value = "demo-run")]
    dir: PathBuf,
    /// Scale of the synthetic datalager (1.0 = the real populations).
    #[arg(long, default_value_t = 0.25)]
    scale: f64,
    /// Keep the federation running after the comparisons (Ctrl-C stops it).
    #[arg(long)]
    keep_running: bool,
    /// Coordinator address (port 0 picks a free one; with --keep-running the default is 50050).
    #[arg(long)]
    listen: Option<String>,
}

fn demo_queries() -> Vec<IndicatorQuery> {
    let q = |indicator: &str, by: &[&str], period: &str| IndicatorQuery {
        indicator: indicator.into(),
        breakdowns: by.iter().map(|s| s.to_string()).collect(),
        period: period.into(),
        options: QueryOptions::default(),
        ..Default::default()
    };
    let analysed = |mut query: IndicatorQuery, spec: AnalysisSpec| {
        query.options.analysis = Some(spec);
        query
    };
    let mut standardised = q("diabetes_statin", &["sex"], "2021..2025");
    standardised.options.standardise = Some("esp2013".into());
    vec![
        q("stroke_reperfusion", &["year"], "2021..2025"),
        q("hip_fracture_surgery_24h", &["sex"], "2021..2024"),
        // A standardised comparison with significance against the pooled value.
        analysed(standardised, AnalysisSpec { kind: AnalysisKind::Compare, against: Comparator::Pooled, dimension: None, units: None }),
        // An equity gap: the share with HbA1c over 70 by education, SII and RII.
        analysed(
            q("diabetes_hba1c_over_70", &[], "2021..2025"),
            AnalysisSpec { kind: AnalysisKind::Equity, against: Comparator::Pooled, dimension: Some("education".into()), units: None },
        ),
        q("hf_hospitalisation_rate", &["age_band"], "2024"),
        q("kpp_cost", &["care_type"], "2025"),
        // An evaluation across the regions: the simulated mobile team's effect on inpatient
        // stays against its comparison group, and whether it is general.
        analysed(
            q("mobile_team_inpatient", &[], "2023..2025"),
            AnalysisSpec { kind: AnalysisKind::Evaluate, against: Comparator::Pooled, dimension: None, units: None },
        ),
    ]
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let datalager = args.dir.join("datalager");
    let certs = args.dir.join("certs");
    let options = LocalOptions {
        coordinator_listen: args.listen.clone().unwrap_or_else(|| if args.keep_running { "127.0.0.1:50050".into() } else { "127.0.0.1:0".into() }),
        // Pooled rows and home regions' rows by secure sums between the agents.
        secure_sum: true,
        ..LocalOptions::default()
    };
    let fresh = NORRA.iter().all(|r| Manifest::read(&datalager.join(r.slug)).is_ok_and(|m| (m.scale - args.scale).abs() < 1e-12));
    let runtime = tokio::runtime::Runtime::new()?;
    if !fresh {
        println!("Generating a synthetic datalager for the four regions (scale {}) in {} ...", args.scale, datalager.display());
        generate(&SynthOptions { out: datalager.clone(), scale: args.scale, seed: 1, progress: true, ..Default::default() })
            .context("generating the synthetic datalager")?;
        let folders: Vec<PathBuf> = NORRA.iter().map(|r| datalager.join(r.slug)).collect();
        runtime.block_on(super::layout::lay_out_all(&folders, &Default::default()))?;
    }
    runtime.block_on(async {
        let federation = LocalFederation::start(&datalager, &args.dir, &options).await?;
        println!("Started agents for");
        for a in &federation.agents {
            println!("  {:<20} https://{}  (datalager version {})", a.node.region.name, a.server.addr, a.node.engine().data_version());
        }
        println!("and a coordinator at {} (mutual TLS, development certificates in {}).", federation.coordinator_url(), certs.display());
        if let Some(web) = federation.web_url() {
            let port = web.rsplit(':').next().unwrap_or("");
            println!("Web app (mutual TLS; docs/web.md): https://localhost:{port}/  and its JSON API, POST {web}/api/query (docs/protocol.md); e.g.");
            println!(
                "  curl --cacert {c}/ca.pem --cert {c}/analyst.pem --key {c}/analyst.key --resolve {name}:{port}:127.0.0.1 https://{name}:{port}/api/regions",
                c = certs.display(),
                name = norrsken_common::pki::COORDINATOR_DNS_NAME,
            );
        }
        if let Some(sql) = federation.sql_url() {
            println!("SQL tools (Arrow Flight SQL: ADBC, JDBC, ODBC) connect to {sql}; see docs/sql.md. From Python:");
            println!("  import adbc_driver_flightsql.dbapi as fs; from adbc_driver_flightsql import DatabaseOptions as O");
            println!(
                "  conn = fs.connect(\"{sql}\", db_kwargs={{O.TLS_ROOT_CERTS.value: open(\"{c}/ca.pem\").read(), O.MTLS_CERT_CHAIN.value: open(\"{c}/analyst.pem\").read(), O.MTLS_PRIVATE_KEY.value: open(\"{c}/analyst.key\").read(), O.TLS_OVERRIDE_HOSTNAME.value: \"{}\"}})",
                norrsken_common::pki::COORDINATOR_DNS_NAME,
                c = certs.display()
            );
            println!("  conn.cursor().execute(\"SELECT region_name, year, value FROM diabetes_statin WHERE year >= 2023\")");
        }
        println!(
            "Each agent applies its region's policy ({}): cells under 5 persons withheld, counts perturbed with the cell key method.\n",
            args.dir.join("policies").display()
        );
        let connection = Connection {
            url: federation.coordinator_url(),
            tls: tls_files(&certs, "analyst"),
            server_name: norrsken_common::pki::COORDINATOR_DNS_NAME.to_string(),
        };
        for q in demo_queries() {
            let (schema, batches) = connection.fetch(q.encode_ticket(None)).await?;
            if schema.metadata().contains_key("norrsken.analysis") {
                println!("{}", analysis_text(&schema, &batches, Lang::from_locale()));
            } else {
                println!("{}", comparison_table(&schema, &batches, Lang::from_locale()));
            }
        }
        if args.keep_running {
            let c = &certs;
            println!("The federation keeps running. Query it from another terminal:\n");
            println!("  export NORRSKEN_COORDINATOR={}", federation.coordinator_url());
            println!("  export NORRSKEN_CERT={}/analyst.pem NORRSKEN_KEY={}/analyst.key NORRSKEN_CA={}/ca.pem", c.display(), c.display(), c.display());
            println!("  norrsken query stroke_reperfusion --by sex,age_band --period 2023..2025");
            println!("  norrsken compare diabetes_statin --period 2021..2025 --standardise esp2013");
            println!("  norrsken trend stroke_reperfusion --period 2021..2025");
            println!("  norrsken equity diabetes_hba1c_over_70 --period 2023..2025 --dimension education");
            println!("  norrsken funnel hip_fracture_surgery_24h --period 2021..2025 --units kommun");
            println!("  norrsken evaluate mobile_team_cost --period 2023..2025");
            println!("  norrsken quality kpp_cost --period 2021..2025\n");
            if let Some(web) = federation.web_url() {
                let port = web.rsplit(':').next().unwrap_or("");
                println!("The web app: https://localhost:{port}/ (catalog, indicator view, regional report).");
                println!("Your browser needs the development analyst certificate and must trust the development CA:");
                println!("  openssl pkcs12 -export -in {c}/analyst.pem -inkey {c}/analyst.key -certfile {c}/ca.pem -out {c}/analyst.p12 -passout pass:norrsken", c = c.display());
                println!("  Firefox: Settings > Privacy & Security > Certificates > View Certificates: Your Certificates > Import {}/analyst.p12 (password norrsken),", c.display());
                println!("           Authorities > Import {}/ca.pem (trust for websites).", c.display());
                println!("  Chrome/Edge: Settings > Privacy and security > Security > Manage certificates: import analyst.p12 under Your certificates, ca.pem under Trusted authorities.");
                println!("  A browser without the certificate, or with one from another CA, gets no page (the TLS handshake fails).\n");
            }
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c().await?;
        }
        let audit_dir = federation.dir.join("audit");
        federation.stop().await?;
        println!("Stopped the coordinator and the four agents.\n");
        println!("Every node kept its own signed audit log in {}:", audit_dir.display());
        for node in std::iter::once("coordinator".to_string()).chain(NORRA.iter().map(|r| format!("agent-{}", r.code))) {
            let files = norrsken_common::audit::log_files(&audit_dir.join(&node))?;
            let key = args.dir.join("keys").join(format!("{node}.ed25519.pem.pub"));
            let v = norrsken::audit_review::verify(&files, Some(&norrsken_common::audit::read_public_key(&key)?), false)?;
            println!(
                "  {node:<14} {} records, {} seals: {}",
                v.records,
                v.seals,
                if v.ok() { "verified".to_string() } else { format!("NOT VALID: {:?}", v.problem) }
            );
        }
        let d = args.dir.display();
        println!("\nReview them yourself:");
        println!("  norrsken audit verify {d}/audit/coordinator --key {d}/keys/coordinator.ed25519.pem.pub");
        println!("  norrsken audit show {d}/audit/coordinator --summary");
        println!("  norrsken audit reconcile {d}/audit/coordinator {d}/audit/agent-22 {d}/audit/agent-23 {d}/audit/agent-24 {d}/audit/agent-25");
        Ok(())
    })
}
