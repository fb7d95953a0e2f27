//! `capstream eval`: one split of a triplet dataset through the whole pipeline, scored
//! and reported.
//!
//! This command owns choosing the rows (split, limit), the folder layout of an
//! evaluation (`OUT/input.parquet`, `OUT/run/`) and `eval.json`. Running, scoring and
//! reporting are `capstream run` and `capstream report`'s own code, so that an evaluation
//! is exactly what those commands would produce on the same rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use capstream::config::PipelineConfig;
use capstream::datasets::{read_triplets, write_triplets};
use capstream::metrics::caption::corpus::best_constant;
use capstream::metrics::caption::mentions::mention_scores;
use capstream::pipeline::Plan;
use capstream::report::{build_report, read_run, ReportOptions, MEDIA_COLUMNS};
use capstream::schema::results_of;
use capstream::sinks::{part_files, Columns};
use capstream::stages::score::ScoreConfig;
use capstream::stages::score::METRICS_FILE;

/// The evaluation summary written into the run folder.
const EVAL_FILE: &str = "eval.json";

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Caption model folder (BLIP checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// Audio model folder for the neural_audio stage (default: the pipeline file's).
    #[arg(long)]
    audio_model: Option<PathBuf>,
    /// Triplet dataset (Parquet: id, image, captions, audio, split).
    #[arg(long)]
    data: PathBuf,
    /// The split to evaluate.
    #[arg(long, default_value = "test")]
    split: String,
    /// Evaluate only the first N rows of the split, in file order.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Pipeline file; it must read Parquet triplets and have a score stage.
    #[arg(long, default_value = "pipelines/backfill.toml")]
    pipeline: PathBuf,
    /// Output folder: input.parquet (the rows evaluated) and run/ (the run, its
    /// metrics.json, eval.json and report.html).
    #[arg(long)]
    out: PathBuf,
    /// Never draw a progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Score the N most frequent captions of the other splits (the training data) as a
    /// constant caption of every row, and report the best: the floor a model must beat
    /// (0 = off).
    #[arg(long, default_value_t = 50)]
    constant_baseline: usize,
}

/// `train (12), val (4)`: the splits of a dataset with their row counts.
fn splits_present(splits: &BTreeMap<Option<&str>, usize>) -> String {
    splits
        .iter()
        .map(|(s, n)| format!("{} ({n})", s.unwrap_or("no split")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `text` to `path` through a temporary file, so that a reader never sees half.
/// The result columns plus what the report draws from: an evaluation's output is read
/// by people, through its report.
fn report_columns(cfg: &PipelineConfig) -> Result<Columns> {
    let full = Plan::new(cfg.clone())?.output_schema();
    let names = results_of(&full)
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .chain(
            MEDIA_COLUMNS
                .iter()
                .filter(|c| full.field_with_name(c).is_ok())
                .map(|c| c.to_string()),
        )
        .collect();
    Ok(Columns::Exact(names))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    // Fail before the slow part: without a score stage there is no metrics.json.
    let cfg = PipelineConfig::load(&args.pipeline)?;
    if !cfg.stages.iter().any(|s| s.spec::<ScoreConfig>().is_some()) {
        bail!(
            "pipeline file {} has no score stage; eval needs one (e.g. pipelines/backfill.toml)",
            args.pipeline.display()
        );
    }
    super::handover::if_stages_need_it(&cfg.stages)?;
    let run_dir = args.out.join("run");
    if !part_files(&run_dir)?.is_empty() {
        bail!(
            "{} already holds a run; choose an empty --out",
            run_dir.display()
        );
    }

    let all = read_triplets(&args.data)?;
    let mut splits: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for t in &all {
        *splits.entry(t.split.as_deref()).or_default() += 1;
    }
    let present = splits_present(&splits);
    let limit = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let rows: Vec<_> = all
        .iter()
        .filter(|t| t.split.as_deref() == Some(args.split.as_str()))
        .take(limit)
        .cloned()
        .collect();
    if rows.is_empty() {
        bail!(
            "{} has no rows with split {:?}; splits present: {}",
            args.data.display(),
            args.split,
            if present.is_empty() {
                "none (no rows)".to_string()
            } else {
                present
            }
        );
    }
    // The most frequent captions of the rows the model could have learnt from.
    let mut freq: BTreeMap<&str, usize> = BTreeMap::new();
    for t in all
        .iter()
        .filter(|t| t.split.as_deref() != Some(args.split.as_str()))
    {
        for c in &t.captions {
            *freq.entry(c.as_str()).or_default() += 1;
        }
    }
    let mut by_freq: Vec<(&str, usize)> = freq.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let constant_candidates: Vec<String> = by_freq
        .iter()
        .take(args.constant_baseline)
        .map(|(c, _)| c.to_string())
        .collect();
    drop(all);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let input = args.out.join("input.parquet");
    write_triplets(&input, &rows)?;
    let selected = rows.len();
    drop(rows);

    let (code, metrics) = super::run::run_pipeline(super::run::RunArgs {
        pipeline: args.pipeline.clone(),
        input: input.to_string_lossy().into_owned(),
        output: run_dir.clone(),
        resume: false,
        metrics_addr: None,
        metrics_file: None,
        model: Some(args.model.clone()),
        audio_model: args.audio_model.clone(),
        no_progress: args.no_progress,
        columns: Some(report_columns(&cfg)?),
    })?;
    if code != ExitCode::SUCCESS {
        eprintln!("eval: the pipeline did not finish; no eval.json or report written");
        return Ok(code);
    }
    let metrics_path = run_dir.join(METRICS_FILE);
    let caption_metrics = metrics.with_context(|| {
        format!(
            "pipeline file {} wrote no {METRICS_FILE}",
            args.pipeline.display()
        )
    })?;

    // Media are not needed here: the report reads the run again with its own limits.
    let out_rows = read_run(&run_dir, 0)?;
    let ok: Vec<_> = out_rows.iter().filter(|r| r.status == "ok").collect();
    // An ok row without a caption names nothing, and is scored so.
    let candidates: Vec<&str> = ok
        .iter()
        .map(|r| r.caption.as_deref().unwrap_or(""))
        .collect();
    let references: Vec<Vec<String>> = ok.iter().map(|r| r.references.clone()).collect();
    let mentions = mention_scores(&candidates, &references);
    let constant = best_constant(&constant_candidates, &references)?.map(|(caption, scores)| {
        json!({"caption": caption, "candidates_tried": constant_candidates.len(),
               "cider_d": scores.cider_d, "bleu_4": scores.bleu_4, "rouge_l": scores.rouge_l})
    });

    let eval = json!({
        "model": args.model.display().to_string(),
        "audio_model": args.audio_model.as_ref().map(|p| p.display().to_string()),
        "data": args.data.display().to_string(),
        "split": args.split,
        "pipeline": args.pipeline.display().to_string(),
        "rows": out_rows.len(),
        "ok_rows": ok.len(),
        "error_rows": out_rows.len() - ok.len(),
        "caption_metrics": caption_metrics,
        "mentions": mentions,
        "best_constant_caption": constant,
    });
    let eval_path = run_dir.join(EVAL_FILE);
    write_atomic(&eval_path, &(serde_json::to_string_pretty(&eval)? + "\n"))?;

    // The same report as `capstream report RUN` with its default options.
    let html = build_report(&run_dir, &ReportOptions::default())?;
    let report_path = run_dir.join("report.html");
    write_atomic(&report_path, &html)?;

    println!(
        "eval: {} of {selected} row(s) of split {:?} ({} ok, {} errors)",
        out_rows.len(),
        args.split,
        ok.len(),
        out_rows.len() - ok.len()
    );
    println!(
        "  mentions over {} image(s) ({} skipped): object accuracy {:.3}, colour accuracy {:.3}",
        mentions.images, mentions.skipped, mentions.object_accuracy, mentions.colour_accuracy
    );
    if let Some(c) = &constant {
        println!(
            "  best constant caption of {}: {} (CIDEr-D {:.3})",
            c["candidates_tried"], c["caption"], c["cider_d"]
        );
    }
    println!("  input:   {}", input.display());
    println!("  run:     {}", run_dir.display());
    println!("  metrics: {}", metrics_path.display());
    println!("  eval:    {}", eval_path.display());
    println!("  report:  {}", report_path.display());
    Ok(ExitCode::SUCCESS)
}
