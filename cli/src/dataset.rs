//! `capstream dataset`: make triplet datasets (`synth`, `import-coco`) and split them
//! (`split`). The work is in `capstream::datasets`; this file only parses arguments and
//! prints what was done.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use capstream::datasets::coco::{import_coco, ImportOptions};
use capstream::datasets::split::{split_file, SplitOptions};
use capstream::datasets::synth::{synthesize, SynthOptions};
use capstream::datasets::write_triplets;
use capstream::speech::Speaker;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Procedurally drawn scenes with five true captions each and spoken audio.
    Synth(SynthArgs),
    /// Assign train/val/test per row, stratified by a column or derived key.
    Split(SplitArgs),
    /// COCO captions JSON (and Karpathy's split file) into triplets.
    ImportCoco(CocoArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Png,
    Jpeg,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of images (the original dataset had 8,475).
    #[arg(long, default_value_t = 8475)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output Parquet file (triplet layout).
    #[arg(long)]
    out: PathBuf,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Image encoding.
    #[arg(long, value_enum, default_value = "png")]
    format: Format,
    /// Speak one caption per image with eSpeak NG (the default).
    #[arg(long, overrides_with = "no_speak")]
    speak: bool,
    /// No audio column values.
    #[arg(long)]
    no_speak: bool,
    /// Worker threads (default: all cores); the output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Input triplet Parquet file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output triplet Parquet file (may be the input).
    #[arg(long)]
    out: PathBuf,
    /// A Utf8 column of the file, or a derived key for synth data: `shape` or `colour`
    /// (first such word of the first caption).
    #[arg(long, default_value = "shape")]
    by: String,
    /// Test fraction per class.
    #[arg(long, default_value_t = 0.1)]
    test: f64,
    /// Validation fraction per class.
    #[arg(long, default_value_t = 0.0)]
    val: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Args)]
pub struct CocoArgs {
    /// Folder of the images (`file_name` is relative to it).
    #[arg(long)]
    images: PathBuf,
    /// `captions_*.json`.
    #[arg(long)]
    annotations: PathBuf,
    /// Karpathy's `dataset_coco.json`: sets each row's split.
    #[arg(long)]
    karpathy: Option<PathBuf>,
    /// Speak the first caption of each image with eSpeak NG.
    #[arg(long)]
    speak: bool,
    /// Skip images whose file is missing instead of failing.
    #[arg(long)]
    skip_missing: bool,
    /// An image file larger than this stops the import, naming it.
    #[arg(long, default_value_t = capstream::datasets::coco::DEFAULT_MAX_IMAGE_BYTES)]
    max_image_bytes: u64,
    /// Output Parquet file (triplet layout).
    #[arg(long)]
    out: PathBuf,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(cmd: DatasetCommand) -> Result<ExitCode> {
    super::init_logging("warn");
    match cmd {
        DatasetCommand::Synth(a) => {
            let t0 = Instant::now();
            let opts = SynthOptions {
                count: a.count,
                seed: a.seed,
                size: a.size,
                speaker: (!a.no_speak || a.speak).then(Speaker::default),
                format: match a.format {
                    Format::Png => image::ImageFormat::Png,
                    Format::Jpeg => image::ImageFormat::Jpeg,
                },
                threads: a.threads.unwrap_or_else(cores),
            };
            let rows = synthesize(&opts)?;
            let triplets: Vec<_> = rows.into_iter().map(|r| r.triplet).collect();
            write_triplets(&a.out, &triplets)
                .with_context(|| format!("writing {}", a.out.display()))?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "wrote {} synthetic triplets to {} in {secs:.1} s ({:.1} images/s)",
                triplets.len(),
                a.out.display(),
                triplets.len() as f64 / secs.max(1e-9)
            );
        }
        DatasetCommand::Split(a) => {
            let opts = SplitOptions {
                test: a.test,
                val: a.val,
                seed: a.seed,
            };
            let counts = split_file(&a.input, &a.out, &a.by, &opts)?;
            let (mut tr, mut va, mut te) = (0, 0, 0);
            for (k, c) in &counts {
                println!(
                    "{:<16} train {:>6}  val {:>6}  test {:>6}",
                    if k.is_empty() { "(none)" } else { k },
                    c.train,
                    c.val,
                    c.test
                );
                (tr, va, te) = (tr + c.train, va + c.val, te + c.test);
            }
            println!(
                "wrote {} ({} classes by {:?}): train {tr}, val {va}, test {te}",
                a.out.display(),
                counts.len(),
                a.by
            );
        }
        DatasetCommand::ImportCoco(a) => {
            let opts = ImportOptions {
                images: a.images,
                annotations: a.annotations,
                karpathy: a.karpathy,
                speaker: a.speak.then(Speaker::default),
                skip_missing: a.skip_missing,
                threads: cores(),
                max_image_bytes: a.max_image_bytes,
            };
            let (rows, s) = import_coco(&opts)?;
            write_triplets(&a.out, &rows)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!(
                "wrote {} triplets to {} ({} with a Karpathy split; skipped {} without \
                 captions, {} missing files)",
                s.rows,
                a.out.display(),
                s.with_split,
                s.no_captions,
                s.missing
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
