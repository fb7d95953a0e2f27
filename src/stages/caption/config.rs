use std::path::PathBuf;

use serde::Deserialize;

use super::generation::{
    model_max_new_tokens, EarlyStopping, GenerationConfig, DEFAULT_MAX_NEW_TOKENS,
};
use crate::error::{Error, Result};

/// `[[stage]] type = "caption"`. Generation defaults equal transformers 5.x's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionConfig {
    /// Checkpoint folder, relative to the pipeline file; `capstream run --model`
    /// overrides it.
    pub model: Option<PathBuf>,
    /// Conditional captioning prompt ("" for none), e.g. "a picture of".
    #[serde(default)]
    pub prompt: String,
    /// Drop the prompt from the caption text, as original BLIP does.
    #[serde(default)]
    pub strip_prompt: bool,
    /// Tokens generated after the prompt, at most. Unset: the model's
    /// `generation_config.json` `max_new_tokens`, else 20 (transformers' default).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// `[SEP]` is forbidden before this many new tokens.
    #[serde(default)]
    pub min_new_tokens: usize,
    /// Beam search width (1 = greedy).
    #[serde(default = "one")]
    pub num_beams: usize,
    /// Beam length penalty.
    #[serde(default = "one_f")]
    pub length_penalty: f64,
    /// Beam search stops once `num_beams` hypotheses are finished.
    #[serde(default)]
    pub early_stopping: bool,
    /// Sample instead of greedy/beam search.
    #[serde(default)]
    pub do_sample: bool,
    /// Sampling temperature.
    #[serde(default = "one_f")]
    pub temperature: f64,
    /// Sampling top-k.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Sampling nucleus.
    #[serde(default = "one_f")]
    pub top_p: f64,
    /// Sampling seed.
    #[serde(default)]
    pub seed: u64,
    /// Repetition penalty (1 = off).
    #[serde(default = "one_f")]
    pub repetition_penalty: f64,
    /// Forbid repeated n-grams of this size (0 = off).
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// `f32`, or `f16` / `bf16` on CUDA.
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// libtorch intra-op threads (process-wide; unset = libtorch's default).
    #[serde(default)]
    pub threads: Option<usize>,
}

fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_top_k() -> usize {
    50
}
fn default_device() -> String {
    "auto".into()
}
fn default_dtype() -> String {
    "f32".into()
}

impl CaptionConfig {
    /// The decoding settings, without the model: an unset `max_new_tokens` reads as
    /// transformers' default (enough to check the settings).
    pub fn generation(&self) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            min_new_tokens: self.min_new_tokens,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: if self.early_stopping {
                EarlyStopping::True
            } else {
                EarlyStopping::False
            },
            do_sample: self.do_sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            num_return_sequences: 1,
            seed: self.seed,
        }
    }

    /// The decoding settings for the checkpoint at `model_dir`: an unset
    /// `max_new_tokens` comes from its `generation_config.json`, as transformers'
    /// `generate` takes it.
    pub fn generation_for(&self, model_dir: &std::path::Path) -> Result<GenerationConfig> {
        let mut g = self.generation();
        if self.max_new_tokens.is_none() {
            if let Some(n) = model_max_new_tokens(model_dir)? {
                g.max_new_tokens = n;
            }
        }
        g.validate()?;
        Ok(g)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.generation().validate()?;
        // Every process of a pipeline checks it, not only the caption worker.
        crate::stages::check_device(&self.device)?;
        if self.threads == Some(0) {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        Ok(())
    }
}
