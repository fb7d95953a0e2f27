//! `capstream run`: one pipeline, embedded mode.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use capstream::config::PipelineConfig;
use capstream::metrics::caption::meteor::Meteor;
use capstream::metrics::caption::wordnet::WordNet;
use capstream::pipeline::{Plan, Progress, Shutdown};
use capstream::sinks::{committed_ids, lock_output, part_files, Columns, SinkConfig};
use capstream::sources::SourceInput;
use capstream::stages::score::ScoreConfig;
use capstream::stages::score::{write_run_metrics, METRICS_FILE};
use capstream::telemetry::{self, Metrics};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (see `pipelines/`).
    #[arg(long)]
    pub(super) pipeline: PathBuf,
    /// A folder, glob, file, or `-` for a list of paths on stdin.
    #[arg(long)]
    pub(super) input: String,
    /// Output folder for Parquet part files.
    #[arg(long)]
    pub(super) output: PathBuf,
    /// Skip records whose id is already committed in the output folder.
    #[arg(long)]
    pub(super) resume: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9184).
    #[arg(long)]
    pub(super) metrics_addr: Option<SocketAddr>,
    /// Write the final Prometheus metrics to this file when the run ends (the text
    /// format node exporter's textfile collector reads), whole or not at all.
    #[arg(long)]
    pub(super) metrics_file: Option<PathBuf>,
    /// Model folder for model stages, overriding the pipeline file.
    #[arg(long)]
    pub(super) model: Option<PathBuf>,
    /// Audio model folder for the neural_audio stage, overriding the pipeline file.
    #[arg(long)]
    pub(super) audio_model: Option<PathBuf>,
    /// Never draw a progress bar, even on a terminal.
    #[arg(long)]
    pub(super) no_progress: bool,
    /// Overrides `[sink] columns` (for `capstream eval`, which keeps what its report
    /// draws from).
    #[arg(skip)]
    pub(super) columns: Option<Columns>,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    Ok(run_pipeline(args)?.0)
}

/// Writes `metrics` to `--metrics-file`, when one was given: every command that takes
/// the flag writes its final figures this way, after its run and before its error.
pub(super) fn write_metrics_file(path: Option<&std::path::Path>, metrics: &Metrics) -> Result<()> {
    if let Some(path) = path {
        metrics.write_textfile(path)?;
    }
    Ok(())
}

/// The ids already committed in `output` when resuming; otherwise `output` must hold
/// no committed part file (a second run would write every id again).
pub(super) fn ids_to_skip(output: &std::path::Path, resume: bool) -> Result<HashSet<String>> {
    if resume {
        return Ok(committed_ids(output)?);
    }
    let existing = part_files(output)?;
    if !existing.is_empty() {
        bail!(
            "{} already holds {} committed part file(s); pass --resume to continue that run, or choose an empty folder",
            output.display(),
            existing.len()
        );
    }
    Ok(HashSet::new())
}

/// Runs one pipeline to its end and scores it: the exit code, and the content of
/// `metrics.json` where the pipeline has a score stage. `capstream eval` runs its
/// pipeline through here too, so that an evaluation is exactly what `capstream run`
/// would do, and takes the metrics as written rather than reading the file back (which
/// could change the last digit of a float).
pub(super) fn run_pipeline(args: RunArgs) -> Result<(ExitCode, Option<serde_json::Value>)> {
    let show_bar = !args.no_progress && std::io::stderr().is_terminal();
    super::init_logging(if show_bar { "warn" } else { "info" });
    let mut cfg = PipelineConfig::load(&args.pipeline)?;
    if let Some(columns) = &args.columns {
        match &mut cfg.sink {
            SinkConfig::Parquet(p) => p.columns = columns.clone(),
            SinkConfig::Response(_) => {}
        }
    }
    let name = cfg.name.clone();
    let score_cfg = cfg
        .stages
        .iter()
        .find_map(|s| s.spec::<ScoreConfig>().cloned());
    let mut plan =
        Plan::new(cfg).with_context(|| format!("pipeline file {}", args.pipeline.display()))?;
    plan.model_override = args.model.clone();
    plan.audio_model_override = args.audio_model.clone();

    // Taken before anything reads the folder: a second run must fail here, at once,
    // not after loading a model or deleting the first run's open part.
    let lock = lock_output(&args.output)?;
    let skip = ids_to_skip(&args.output, args.resume)?;
    if args.resume {
        tracing::info!(
            committed = skip.len(),
            "Resuming: committed ids will be skipped."
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async move {
        let pipeline = plan.open(SourceInput::parse(&args.input), lock, Arc::new(skip))?;
        let metrics = Metrics::new(&name);
        // Held until the run ends: dropping it would not stop it, shutting it down does.
        let server = match args.metrics_addr {
            Some(addr) => {
                let s = telemetry::serve(addr, metrics.clone(), telemetry::Health::default()).await?;
                tracing::info!(address = %s.addr, "Serving /metrics, /healthz and /readyz.");
                Some(s)
            }
            None => None,
        };
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let progress = Arc::new(Progress::default());
        let bar = show_bar.then(|| spawn_bar(progress.clone()));
        let result = pipeline.run(shutdown, metrics.clone(), progress).await;
        write_metrics_file(args.metrics_file.as_deref(), &metrics)?;
        if let Some((bar, task)) = bar {
            task.abort();
            bar.finish_and_clear();
        }
        drop(server);
        let summary = match result {
            Ok(s) => s,
            Err(capstream::Error::Aborted) => {
                eprintln!("aborted: uncommitted rows were discarded; rerun with --resume to finish");
                return Ok::<_, anyhow::Error>((ExitCode::from(130), None));
            }
            Err(e) => return Err(e.into()),
        };
        println!(
            "{}: {} rows ({} ok, {} errors, {} skipped as committed) in {} file(s) under {} in {:.1}s",
            if summary.interrupted { "interrupted" } else { "done" },
            summary.rows,
            summary.rows - summary.failed,
            summary.failed,
            summary.skipped,
            summary.files.len(),
            args.output.display(),
            summary.seconds
        );
        for f in &summary.files {
            println!("  {}", f.display());
        }
        let mut run_metrics = None;
        if let Some(c) = &score_cfg {
            // Corpus scores (CIDEr-D needs every row) from everything committed so far.
            let meteor = if c.meteor {
                Some(Meteor::new(WordNet::open(&c.wordnet_dir)?))
            } else {
                None
            };
            let m = write_run_metrics(&args.output, meteor.as_ref())?;
            println!(
                "  {} ({} items scored)",
                args.output.join(METRICS_FILE).display(),
                m["items_scored"]
            );
            run_metrics = Some(m);
        }
        if summary.interrupted {
            eprintln!("the run was stopped before the input ended; rerun with --resume to finish");
            return Ok((ExitCode::from(130), run_metrics));
        }
        Ok((ExitCode::SUCCESS, run_metrics))
    })?;
    Ok(outcome)
}

fn spawn_bar(progress: Arc<Progress>) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} records {per_sec} ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            b.set_length(progress.total.load(Ordering::Relaxed));
            b.set_position(
                progress.done.load(Ordering::Relaxed) + progress.skipped.load(Ordering::Relaxed),
            );
            let failed = progress.failed.load(Ordering::Relaxed);
            if failed > 0 {
                b.set_message(format!("({failed} errors)"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, task)
}
