//! `capstream train …`: training runs. Each subcommand reads its data, builds the
//! options and hands them to `capstream::train`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use capstream::datasets::read_triplets;
use capstream::models::audio::Config as AudioConfig;
use capstream::models::blip::Captioner;
use capstream::models::device::parse_device;
use capstream::train::audio::{prepare_examples, train_audio, AudioTrainOptions, LOG_FILE};

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// The neural audio path: mel generator (image embedding → log-mel) and vocoder
    /// (log-mel → waveform), on image–caption–audio triplets.
    Audio(AudioArgs),
}

#[derive(Debug, Args)]
pub struct AudioArgs {
    /// Triplet Parquet file (id, image, captions, audio, split; see schemas/triplets.json).
    #[arg(long)]
    data: PathBuf,
    /// Output folder: config.json + model.safetensors, checkpoint-epoch-N/, train_log.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// The BLIP checkpoint whose pooled image embeddings the generator learns from
    /// (the caption model the pipeline will run with).
    #[arg(long, default_value = "models/default")]
    caption_model: PathBuf,
    /// Total epochs (with --resume: up to this many in all).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam learning rate (both networks).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames of the vocoder's random training crops.
    #[arg(long, default_value_t = 16)]
    segment_frames: usize,
    /// Share held out for validation when no row has split "val".
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Reference audio longer than this is skipped.
    #[arg(long, default_value_t = 60.0)]
    max_audio_seconds: f64,
    /// Network shapes and mel definition (a config.json of this model type); the
    /// embedding width always comes from --caption-model.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from a checkpoint-epoch-N folder (model, optimizer state, options).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// libtorch intra-op threads; fix it for bit-identical reruns on CPU.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(cmd: TrainCommand) -> Result<ExitCode> {
    match cmd {
        TrainCommand::Audio(args) => audio(args),
    }
}

fn audio(args: AudioArgs) -> Result<ExitCode> {
    super::init_logging("info");
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = parse_device(&args.device)?;
    let triplets = read_triplets(&args.data)
        .with_context(|| format!("reading triplets from {}", args.data.display()))?;
    if triplets.is_empty() {
        bail!("{}: no triplets", args.data.display());
    }
    let captioner = Captioner::from_dir(&args.caption_model, device, tch::Kind::Float)
        .with_context(|| format!("caption model {}", args.caption_model.display()))?;
    let embed_dim = captioner.model().config().vision_config.hidden_size;
    let mut cfg = match &args.config {
        Some(p) => AudioConfig::from_file(p)?,
        None => AudioConfig::new(embed_dim),
    };
    cfg.generator.embed_dim = embed_dim;
    cfg.embedding_source = Some(args.caption_model.display().to_string());
    cfg.validate().map_err(anyhow::Error::msg)?;
    let opts = AudioTrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        segment_frames: args.segment_frames,
        val_fraction: args.val_fraction,
        max_audio_seconds: args.max_audio_seconds,
        ..Default::default()
    };
    let (examples, skipped) =
        prepare_examples(&triplets, &captioner, &cfg, opts.max_audio_seconds, 16)?;
    drop(captioner);
    for s in &skipped {
        tracing::warn!(id = %s.id, reason = %s.reason, "triplet skipped");
    }
    eprintln!(
        "train audio: {} triplets, {} with usable audio, {} skipped",
        triplets.len(),
        examples.len(),
        skipped.len()
    );
    let mut print = |v: &serde_json::Value| {
        if v["event"] == "epoch" {
            eprintln!("{v}");
        }
    };
    let summary = train_audio(
        &examples,
        &cfg,
        &opts,
        device,
        &args.out,
        args.resume.as_deref(),
        &mut print,
    )?;
    println!(
        "trained {} epochs ({} steps, {} train / {} val examples); model: {} (config.json, model.safetensors); log: {}",
        summary.epochs,
        summary.steps,
        summary.train_examples,
        summary.val_examples,
        summary.out.display(),
        summary.out.join(LOG_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}
