//! `capstream report RUN_DIR`: the run's self-contained HTML report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use capstream::report::{build_report, ReportOptions};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder: pipeline output (part-*.parquet, metrics.json) and/or training
    /// output (train_log.jsonl, here or one level down).
    run_dir: PathBuf,
    /// Output HTML file (default RUN_DIR/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rows shown in the image/caption grid.
    #[arg(long, default_value_t = 500)]
    grid_rows: usize,
    /// Rows with audio players and plots.
    #[arg(long, default_value_t = 6)]
    audio_rows: usize,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let opts = ReportOptions {
        grid_rows: args.grid_rows,
        audio_rows: args.audio_rows,
        ..Default::default()
    };
    let html = build_report(&args.run_dir, &opts)?;
    let out = args.out.unwrap_or_else(|| args.run_dir.join("report.html"));
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
    println!("report: {}", out.display());
    Ok(ExitCode::SUCCESS)
}
