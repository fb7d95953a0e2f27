//! `capstream train …`: training runs. Each subcommand reads its data, builds the
//! options and hands them to `capstream::train`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use capstream::datasets::read_triplets;
use capstream::datasets::triplets::splits;
use capstream::imaging::Limits;
use capstream::models::audio::Config as AudioConfig;
use capstream::models::blip::Captioner;
use capstream::models::blip::Config as BlipConfig;
use capstream::models::device::parse_device;
use capstream::train::audio::{prepare_examples, train_audio, AudioTrainOptions, LOG_FILE};
use capstream::train::caption::{
    prepare_caption_examples, train_caption, CaptionInit, CaptionTrainOptions,
    LOG_FILE as CAPTION_LOG,
};
use capstream::train::tokenizer::build_caption_tokenizer;

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// The neural audio path: mel generator (image embedding → log-mel) and vocoder
    /// (log-mel → waveform), on image–caption–audio triplets.
    Audio(AudioArgs),
    /// The caption model: fine-tune a BLIP checkpoint (`--init`) or train one from a
    /// config (`--config`), on image–caption triplets.
    Caption(CaptionArgs),
}

#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// Triplet Parquet file (id, image, captions, split; see schemas/triplets.json).
    #[arg(long)]
    data: PathBuf,
    /// Output folder: a Hugging Face checkpoint of the latest epoch, checkpoint-epoch-N/,
    /// train_log.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// A BLIP checkpoint folder to fine-tune.
    #[arg(long, conflicts_with = "config", required_unless_present_any = ["config", "resume"])]
    init: Option<PathBuf>,
    /// A BlipConfig JSON to train from scratch; vocabulary size and special ids come
    /// from the tokenizer.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Tokenizer folder for --config; without it a WordPiece vocabulary is built from
    /// the training captions into OUT/tokenizer.
    #[arg(long, requires = "config")]
    tokenizer: Option<PathBuf>,
    /// Words seen fewer times than this in the training captions stay out of a built
    /// vocabulary (they are spelt with ## pieces).
    #[arg(long, default_value_t = 2)]
    min_word_count: usize,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate (BLIP fine-tuning: 1e-5; from scratch: ~1e-3).
    #[arg(long, default_value_t = 1e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup_steps: usize,
    /// The cosine schedule ends at lr × this.
    #[arg(long, default_value_t = 0.0)]
    min_lr_ratio: f64,
    #[arg(long, default_value_t = 0.05)]
    weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Label smoothing (default: the config's text_config.label_smoothing; BLIP used 0.1).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Prompt before every caption, masked out of the loss ("a picture of ").
    #[arg(long, default_value = "")]
    prompt: String,
    /// Longest training sequence in tokens.
    #[arg(long, default_value_t = 40)]
    max_tokens: usize,
    /// Train on every (image, reference) pair each epoch, not one reference per image.
    #[arg(long)]
    all_captions: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share held out for validation when no row has split "val".
    #[arg(long, default_value_t = 0.05)]
    val_fraction: f64,
    /// Validation images captioned for the metrics each epoch (0 = all).
    #[arg(long, default_value_t = 256)]
    val_caption_images: usize,
    /// Mixed precision: bf16 parameters and activations, f32 master weights, AdamW
    /// moments, softmax and loss (for CUDA; runs on CPU too). Checkpoints hold f32.
    #[arg(long)]
    bf16: bool,
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
    /// Learn from the first N rows that are not held out (test) only; test rows are
    /// dropped either way. For a time budget: the vocoder is the slow part.
    #[arg(long)]
    limit: Option<usize>,
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
        TrainCommand::Caption(args) => caption(args),
    }
}

/// What every training command does first: logging, threads, the device and the data.
fn setup(
    threads: Option<usize>,
    device: &str,
    data: &std::path::Path,
) -> Result<(tch::Device, Vec<capstream::datasets::Triplet>)> {
    super::init_logging("info");
    if let Some(n) = threads {
        tch::set_num_threads(n as i32);
    }
    let device = parse_device(device)?;
    let triplets =
        read_triplets(data).with_context(|| format!("reading triplets from {}", data.display()))?;
    if triplets.is_empty() {
        bail!("{}: no triplets", data.display());
    }
    Ok((device, triplets))
}

fn caption(args: CaptionArgs) -> Result<ExitCode> {
    let (device, triplets) = setup(args.threads, &args.device, &args.data)?;
    let init = match (&args.init, &args.config, &args.resume) {
        (Some(dir), _, _) => CaptionInit::Pretrained(dir.clone()),
        (None, Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let tokenizer = match &args.tokenizer {
                Some(t) => t.clone(),
                None => {
                    // The vocabulary of the captions the model learns from: never the
                    // held-out ones.
                    let dir = args.out.join("tokenizer");
                    let train_caps = triplets
                        .iter()
                        .filter(|t| t.split.as_deref() != Some(splits::TEST))
                        .flat_map(|t| t.captions.iter().map(String::as_str));
                    let info = build_caption_tokenizer(train_caps, args.min_word_count, &dir)?;
                    eprintln!(
                        "train caption: built a {}-token vocabulary in {}",
                        info.vocab_size,
                        dir.display()
                    );
                    dir
                }
            };
            CaptionInit::Config { config, tokenizer }
        }
        (None, None, Some(dir)) => CaptionInit::Pretrained(dir.clone()),
        (None, None, None) => bail!("train caption: give --init, --config or --resume"),
    };
    let image_size = match &init {
        CaptionInit::Pretrained(dir) => {
            BlipConfig::from_file(&dir.join("config.json"))?
                .vision_config
                .image_size
        }
        CaptionInit::Config { config, .. } => {
            BlipConfig::parse(
                &config.to_string(),
                args.config.as_deref().unwrap_or(&args.out),
            )?
            .vision_config
            .image_size
        }
    };
    let (examples, skipped) =
        prepare_caption_examples(&triplets, image_size as u32, &Limits::default());
    for s in &skipped {
        tracing::warn!(id = %s.id, reason = %s.reason, "triplet skipped");
    }
    let opts = CaptionTrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        min_lr_ratio: args.min_lr_ratio,
        weight_decay: args.weight_decay,
        grad_clip: args.grad_clip,
        label_smoothing: args.label_smoothing,
        prompt: args.prompt.clone(),
        max_tokens: args.max_tokens,
        all_captions: args.all_captions,
        seed: args.seed,
        val_fraction: args.val_fraction,
        val_caption_images: args.val_caption_images,
        bf16: args.bf16,
        ..Default::default()
    };
    eprintln!(
        "train caption: {} triplets, {} usable, {} skipped",
        triplets.len(),
        examples.len(),
        skipped.len()
    );
    let mut print = |v: &serde_json::Value| {
        if v["event"] == "epoch" {
            eprintln!("{v}");
        } else if v["event"] == "step" && v["step"].as_u64().is_some_and(|s| s % 50 == 0) {
            eprintln!("step {} loss {} lr {}", v["step"], v["loss"], v["lr"]);
        }
    };
    let summary = train_caption(
        &examples,
        &init,
        &opts,
        device,
        &args.out,
        args.resume.as_deref(),
        &mut print,
    )?;
    println!(
        "trained {} epochs ({} steps, {} train / {} val images); checkpoint: {} (Hugging Face layout); log: {}",
        summary.epochs,
        summary.steps,
        summary.train_images,
        summary.val_images,
        summary.out.display(),
        summary.out.join(CAPTION_LOG).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn audio(args: AudioArgs) -> Result<ExitCode> {
    let (device, triplets) = setup(args.threads, &args.device, &args.data)?;
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
    let triplets = match args.limit {
        Some(n) => triplets
            .into_iter()
            .filter(|t| t.split.as_deref() != Some(splits::TEST))
            .take(n)
            .collect(),
        None => triplets,
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
