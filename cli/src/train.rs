//! `capstream train …`: training runs. Each subcommand reads its data, builds the
//! options and hands them to `capstream::train`.
//!
//! The arguments only: the command runs on the model side (`capstream-torch`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
    pub data: PathBuf,
    /// Output folder: a Hugging Face checkpoint of the latest epoch, checkpoint-epoch-N/,
    /// train_log.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// A BLIP checkpoint folder to fine-tune.
    #[arg(long, conflicts_with = "config", required_unless_present_any = ["config", "resume"])]
    pub init: Option<PathBuf>,
    /// A BlipConfig JSON to train from scratch; vocabulary size and special ids come
    /// from the tokenizer.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tokenizer folder for --config; without it a WordPiece vocabulary is built from
    /// the training captions into OUT/tokenizer.
    #[arg(long, requires = "config")]
    pub tokenizer: Option<PathBuf>,
    /// Words seen fewer times than this in the training captions stay out of a built
    /// vocabulary (they are spelt with ## pieces).
    #[arg(long, default_value_t = 2)]
    pub min_word_count: usize,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (BLIP fine-tuning: 1e-5; from scratch: ~1e-3).
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// The cosine schedule ends at lr × this.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr_ratio: f64,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Label smoothing (default: the config's text_config.label_smoothing; BLIP used 0.1).
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Prompt before every caption, masked out of the loss ("a picture of ").
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Longest training sequence in tokens.
    #[arg(long, default_value_t = 40)]
    pub max_tokens: usize,
    /// Train on every (image, reference) pair each epoch, not one reference per image.
    #[arg(long)]
    pub all_captions: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share held out for validation when no row has split "val".
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Validation images captioned for the metrics each epoch (0 = all).
    #[arg(long, default_value_t = 256)]
    pub val_caption_images: usize,
    /// Train each epoch on this many fresh synthetic scenes (`dataset synth` with
    /// --synth-seed) instead of the data's training rows, which still give the
    /// validation set and the vocabulary (0: off).
    #[arg(long, default_value_t = 0)]
    pub synth_per_epoch: usize,
    /// Seed of the fresh scenes; keep it apart from the seed of the evaluation data.
    #[arg(long, default_value_t = 1)]
    pub synth_seed: u64,
    /// Tokens per validation caption, written to the checkpoint's
    /// generation_config.json as max_new_tokens (default: max_tokens - 1).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Mixed precision: bf16 parameters and activations, f32 master weights, AdamW
    /// moments, softmax and loss (for CUDA; runs on CPU too). Checkpoints hold f32.
    #[arg(long)]
    pub bf16: bool,
    /// Continue from a checkpoint-epoch-N folder (model, optimizer state, options).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads; fix it for bit-identical reruns on CPU.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AudioArgs {
    /// Triplet Parquet file (id, image, captions, audio, split; see schemas/triplets.json).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: config.json + model.safetensors, checkpoint-epoch-N/, train_log.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// The BLIP checkpoint whose pooled image embeddings the generator learns from
    /// (the caption model the pipeline will run with).
    #[arg(long, default_value = "models/default")]
    pub caption_model: PathBuf,
    /// Total epochs (with --resume: up to this many in all).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Adam learning rate (both networks).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Frames of the vocoder's random training crops.
    #[arg(long, default_value_t = 32)]
    pub segment_frames: usize,
    /// eSpeak NG voice the reference clips were spoken with: the generator's durations
    /// come from speaking each word alone with it (`dataset synth`: en-us).
    #[arg(long, default_value = "en-us")]
    pub voice: String,
    /// Its rate, words per minute (`dataset synth`: 175).
    #[arg(long, default_value_t = 175)]
    pub rate: u32,
    /// Share held out for validation when no row has split "val".
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Reference audio longer than this is skipped.
    #[arg(long, default_value_t = 60.0)]
    pub max_audio_seconds: f64,
    /// Learn from the first N rows that are not held out (test) only; test rows are
    /// dropped either way. For a time budget: the vocoder is the slow part.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Network shapes and mel definition (a config.json of this model type); the
    /// embedding width always comes from --caption-model.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint-epoch-N folder (model, optimizer state, options).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads; fix it for bit-identical reruns on CPU.
    #[arg(long)]
    pub threads: Option<usize>,
}
