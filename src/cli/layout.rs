//! `norrsken layout`: rewrites a Parquet datalager sorted for the recipes.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use norrsken::layout::{lay_out, sort_keys, LayoutOptions};
use norrsken_model::cdm::CdmTable;

#[derive(Args)]
pub struct LayoutArgs {
    /// Datalager folders (one sub-folder per CDM table with Parquet files).
    #[arg(required = true)]
    folders: Vec<PathBuf>,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 64 * 1024)]
    row_group_rows: usize,
    /// Memory the sort may hold before it spills to disk, in MiB.
    #[arg(long, default_value_t = 768)]
    memory_limit_mb: u64,
    /// Folder for the sort's spill files (default: the system's temporary folder).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
}

/// Lays out each folder in turn, printing what it did.
pub async fn lay_out_all(folders: &[PathBuf], options: &LayoutOptions) -> anyhow::Result<()> {
    for folder in folders {
        let tables = lay_out(folder, options).await.with_context(|| format!("laying out {}", folder.display()))?;
        let summary: Vec<String> = tables.iter().map(|t| format!("{} {} rows in {} row groups", t.table, t.rows, t.row_groups)).collect();
        eprintln!("{}: {}", folder.display(), summary.join(", "));
    }
    Ok(())
}

pub fn run(args: LayoutArgs) -> anyhow::Result<()> {
    if args.row_group_rows == 0 {
        anyhow::bail!("--row-group-rows must be at least 1");
    }
    let options = LayoutOptions { row_group_rows: args.row_group_rows, memory_limit_mb: args.memory_limit_mb, spill_dir: args.spill_dir };
    println!("Sort orders:");
    for t in CdmTable::ALL {
        println!("  {:<13} {}", t.name(), sort_keys(t).join(", "));
    }
    tokio::runtime::Runtime::new()?.block_on(lay_out_all(&args.folders, &options))
}
