//! `norrsken audit`: verify, review, reconcile and fetch audit logs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use norrsken::audit_review::{self as review, Filter};
use norrsken_common::audit::{read_public_key, write_chunks, write_key_pair, AuditRecord};

use super::client::ConnectArgs;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a log's hash chain and signatures; names the first bad record, exits 1.
    Verify {
        /// Log files or folders, in any order (they are read in chain order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The node's public key (PEM). Without it signatures are checked against the key
        /// the log names, which proves integrity but not origin.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Accept records after the last seal (the log of a running node).
        #[arg(long)]
        allow_unsealed_tail: bool,
        /// Accept a log that does not begin with its genesis record (its oldest files were
        /// archived); verify the archive separately.
        #[arg(long)]
        allow_missing_start: bool,
    },
    /// List or summarise records.
    Show {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// From this time on (RFC 3339 or a date, e.g. 2026-11-01).
        #[arg(long)]
        from: Option<String>,
        /// Up to this time.
        #[arg(long)]
        to: Option<String>,
        /// Requester common name, subject part or fingerprint.
        #[arg(long)]
        requester: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        indicator: Option<String>,
        /// A region (county code) the request concerned.
        #[arg(long)]
        region: Option<String>,
        /// ok, partial, refused, invalid, error.
        #[arg(long)]
        outcome: Option<String>,
        /// Include seals and start records.
        #[arg(long)]
        all: bool,
        /// Queries per requester, indicator and month instead of records.
        #[arg(long)]
        summary: bool,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Check that the coordinator's and the agents' logs tell the same story: each chain
    /// against the anchors the other nodes hold of it, and every query at an agent against
    /// what the coordinator sent. Exits 1 on any difference.
    Reconcile {
        /// The coordinator's log (file or folder).
        coordinator: PathBuf,
        /// The agents' logs (one folder, or file, per agent).
        #[arg(required = true)]
        agents: Vec<PathBuf>,
    },
    /// Fetch an audit log over Flight: the coordinator's (auditors) or your region's agent's
    /// (region admins).
    Fetch {
        /// coordinator or agent.
        #[arg(long, default_value = "coordinator")]
        node: String,
        /// For --node agent: the county code of your region.
        #[arg(long)]
        region: Option<String>,
        /// Folder to write the files to.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Create an Ed25519 signing key (PKCS#8 PEM) and its public key (`<out>.pub`).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

fn records(files: &[PathBuf]) -> anyhow::Result<Vec<AuditRecord>> {
    let files = review::expand(files)?;
    if files.is_empty() {
        bail!("no audit log files (audit-*.jsonl) found");
    }
    Ok(review::records(&files)?)
}

fn node_log(path: &std::path::Path) -> anyhow::Result<review::NodeLog> {
    let files = review::expand(&[path.to_path_buf()])?;
    if files.is_empty() {
        bail!("no audit log files (audit-*.jsonl) found in {}", path.display());
    }
    Ok(review::NodeLog::read(&files)?)
}

fn time_bound(s: &Option<String>, end: bool) -> Option<String> {
    s.as_ref().map(|t| if t.len() == 10 { format!("{t}T{}", if end { "23:59:59.999Z" } else { "00:00:00.000Z" }) } else { t.clone() })
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { files, key, allow_unsealed_tail, allow_missing_start } => {
            let files = review::expand(&files)?;
            if files.is_empty() {
                bail!("no audit log files (audit-*.jsonl) found");
            }
            let key = key.as_deref().map(read_public_key).transpose()?;
            let v = review::verify_from(&files, key.as_ref(), allow_unsealed_tail, allow_missing_start)?;
            for note in &v.notes {
                println!("note: {note}");
            }
            match &v.problem {
                None => {
                    println!(
                        "OK: {} records (seq {}..{}) of node {}{}, {} seals{}, {} file(s)",
                        v.records,
                        v.first_seq.unwrap_or(0),
                        v.last_seq.unwrap_or(0),
                        v.node.clone().unwrap_or_default(),
                        v.created.as_ref().map(|t| format!(" created {t}")).unwrap_or_default(),
                        v.seals,
                        if v.key_checked { " signed by the given key" } else { "" },
                        files.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(p) => {
                    println!(
                        "INVALID: {}:{}{}: {}",
                        p.file,
                        p.line,
                        p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
                        p.message
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Show { files, from, to, requester, role, indicator, region, outcome, all, summary, format } => {
            let all_records = records(&files)?;
            let filter = Filter { from: time_bound(&from, false), to: time_bound(&to, true), requester, role, indicator, region, outcome, all_kinds: all };
            let chosen: Vec<AuditRecord> = all_records.into_iter().filter(|r| filter.matches(r)).collect();
            if summary {
                let s = review::summary(&chosen);
                match format.as_str() {
                    "json" => {
                        let rows: Vec<_> = s
                            .iter()
                            .map(|((who, what, month), (n, refused))| serde_json::json!({"requester": who, "indicator": what, "month": month, "queries": n, "refused": refused}))
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    }
                    "csv" => {
                        println!("requester,indicator,month,queries,refused");
                        for ((who, what, month), (n, refused)) in &s {
                            println!("{who},{what},{month},{n},{refused}");
                        }
                    }
                    _ => {
                        println!("{:<20} {:<30} {:<8} {:>7} {:>8}", "requester", "indicator", "month", "queries", "refused");
                        for ((who, what, month), (n, refused)) in &s {
                            println!("{who:<20} {what:<30} {month:<8} {n:>7} {refused:>8}");
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&chosen)?),
                "csv" => {
                    println!("seq,time,node,kind,outcome,query_id,requester,role,indicator,regions,released,withheld,perturbed,reason");
                    for r in &chosen {
                        let e = &r.event;
                        let c = e.cells.unwrap_or_default();
                        println!(
                            "{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
                            r.seq,
                            r.time,
                            r.node,
                            e.kind,
                            e.outcome,
                            e.query_id.clone().unwrap_or_default(),
                            e.requester.as_ref().map(|w| w.cn.clone()).unwrap_or_default(),
                            e.role.clone().unwrap_or_default(),
                            e.indicator.clone().unwrap_or_default(),
                            e.regions.join(" "),
                            c.released,
                            c.withheld,
                            c.perturbed,
                            e.reason.clone().unwrap_or_default().replace('"', "'")
                        );
                    }
                }
                _ => {
                    println!("{:>5} {:<24} {:<12} {:<8} {:<36} {:<16} {:<28} {}", "seq", "time", "kind", "outcome", "query_id", "requester", "indicator", "cells r/w/p or reason");
                    for r in &chosen {
                        let e = &r.event;
                        let detail = match (&e.cells, &e.reason) {
                            (Some(c), _) => format!("{}/{}/{}", c.released, c.withheld, c.perturbed),
                            (None, Some(reason)) => reason.chars().take(80).collect(),
                            _ => String::new(),
                        };
                        println!(
                            "{:>5} {:<24} {:<12} {:<8} {:<36} {:<16} {:<28} {}",
                            r.seq,
                            r.time,
                            e.kind,
                            e.outcome,
                            e.query_id.clone().unwrap_or_default(),
                            e.requester.as_ref().map(|w| w.cn.clone()).unwrap_or_default(),
                            e.indicator.clone().unwrap_or_default(),
                            detail
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Reconcile { coordinator, agents } => {
            let coord = node_log(&coordinator)?;
            if coord.node() != "coordinator" {
                bail!("{} is not the coordinator's log (its records are of '{}')", coordinator.display(), coord.node());
            }
            let mut agent_logs = Vec::new();
            for a in &agents {
                let log = node_log(a)?;
                let region = review::region_of(&log).with_context(|| format!("{} is not an agent's log", a.display()))?;
                agent_logs.push((region, log));
            }
            let diffs = review::reconcile(&coord, &agent_logs);
            let coordinator_queries = coord.records.iter().filter(|r| r.event.kind == "query").count();
            if diffs.is_empty() {
                println!("OK: {coordinator_queries} coordinator queries and {} agent logs agree", agent_logs.len());
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} difference(s):", diffs.len());
            for d in &diffs {
                let place = match (&d.node, d.seq) {
                    (Some(n), Some(seq)) => format!("{n} seq {seq}"),
                    _ => format!("query {} region {}", review::show_id(&d.query_id), d.region.clone().unwrap_or_default()),
                };
                println!("  {place}: {}", d.problem);
            }
            Ok(ExitCode::FAILURE)
        }
        AuditCommand::Fetch { node, region, out, connect } => {
            let connection = connect.resolve()?;
            let body = serde_json::json!({"node": node, "region": region}).to_string();
            let chunks = tokio::runtime::Runtime::new()?.block_on(connection.action_all("audit-log", body.into_bytes()))?;
            let files = write_chunks(&out, &chunks)?;
            println!("wrote {} file(s) to {}", files.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Keygen { out } => {
            let mut secret = [0u8; 32];
            rustls::crypto::ring::default_provider().secure_random.fill(&mut secret).map_err(|_| anyhow::anyhow!("no random source"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&secret);
            write_key_pair(&key, &out)?;
            println!("wrote {} (keep it secret) and {}.pub (give it to your auditors)", out.display(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
