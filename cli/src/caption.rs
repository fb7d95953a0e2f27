//! `capstream caption`: caption image files directly, outside a pipeline.
//!
//! The arguments only: the command runs on the model side (`capstream-torch`).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// A Hugging Face BLIP captioning checkpoint folder (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Conditional captioning prompt, e.g. "a picture of".
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Drop the prompt from the caption text, as original BLIP does.
    #[arg(long)]
    pub strip_prompt: bool,
    /// Beam search with N beams (1 = greedy).
    #[arg(long, default_value_t = 1)]
    pub beams: usize,
    /// Beam scores are divided by length ** length_penalty.
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f64,
    /// Beam search: stop as soon as N hypotheses are finished.
    #[arg(long)]
    pub early_stopping: bool,
    /// Captions returned per image.
    #[arg(long, default_value_t = 1)]
    pub num_return_sequences: usize,
    /// Tokens generated after the prompt, at most (default: the model's
    /// generation_config.json, else 20 as in transformers).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Sample instead of greedy or beam search.
    #[arg(long)]
    pub sample: bool,
    #[arg(long, default_value_t = 50)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// f32, bf16 (CPU or CUDA), or f16 (CUDA).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// One JSON object per image per line.
    #[arg(long)]
    pub json: bool,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}
