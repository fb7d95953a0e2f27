//! `capstream train …`: training runs. Each subcommand reads its data, builds the
//! options and hands them to `capstream::train`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::models::audio::Config as AudioConfig;
use crate::models::blip::Captioner;
use crate::models::blip::Config as BlipConfig;
use crate::models::device::parse_device;
use crate::train::audio::{prepare_examples, train_audio, AudioTrainOptions, LOG_FILE};
use crate::train::caption::{
    prepare_caption_examples, train_caption, CaptionInit, CaptionTrainOptions,
    LOG_FILE as CAPTION_LOG,
};
use crate::train::tokenizer::build_caption_tokenizer;
use capstream::datasets::read_triplets;
use capstream::datasets::triplets::splits;
use capstream::imaging::Limits;
use capstream::speech::Speaker;

use capstream_cli::train::{AudioArgs, CaptionArgs, TrainCommand};

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
    capstream_cli::init_logging("info");
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
        synth_per_epoch: args.synth_per_epoch,
        synth_seed: args.synth_seed,
        max_new_tokens: args.max_new_tokens,
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
    let speaker = Speaker {
        voice: args.voice.clone(),
        rate: args.rate,
        sample_rate: cfg.mel.sample_rate,
        ..Speaker::default()
    };
    speaker.validate()?;
    let (examples, skipped) = prepare_examples(
        &triplets,
        &captioner,
        &cfg,
        &speaker,
        opts.max_audio_seconds,
        16,
    )?;
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
