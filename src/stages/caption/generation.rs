//! Decoding settings: what a caption stage, `capstream caption` and training's
//! validation captions ask of generation. Plain data, so that every process that plans a
//! pipeline can check them without loading a model.

use std::path::Path;

use crate::error::{Error, Result};

/// transformers' `max_new_tokens` when neither the caller nor the model's
/// `generation_config.json` sets one.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;
/// A checkpoint folder's generation defaults, as transformers reads them.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The `max_new_tokens` a checkpoint folder's `generation_config.json` asks for:
/// `None` when the file or the key is absent (transformers then falls back to
/// [`DEFAULT_MAX_NEW_TOKENS`]). A file that is there but unreadable is an error, so that
/// a broken checkpoint is not silently decoded with other settings.
pub fn model_max_new_tokens(model_dir: &Path) -> Result<Option<usize>> {
    let path = model_dir.join(GENERATION_CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Model {
        path: path.clone(),
        message: format!("{GENERATION_CONFIG_FILE}: {e}"),
    })?;
    match v.get("max_new_tokens") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => match n.as_u64() {
            Some(n) if n > 0 => Ok(Some(n as usize)),
            _ => Err(Error::Model {
                path,
                message: format!(
                    "{GENERATION_CONFIG_FILE}: max_new_tokens {n} is not a positive integer"
                ),
            }),
        },
    }
}

/// When beam search may stop (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Stop when `num_beams` hypotheses are finished.
    True,
    /// Stop when no running beam can beat the worst finished one at its current length.
    #[default]
    False,
    /// Canonical beam search: assume running beams could reach `max_length`.
    Never,
}

/// Decoding settings. Defaults equal transformers 5.x generation defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Tokens generated after the prompt, at most.
    pub max_new_tokens: usize,
    /// `[SEP]` is forbidden before this many new tokens.
    pub min_new_tokens: usize,
    /// 1 = greedy or sampling; more = beam search.
    pub num_beams: usize,
    /// Beam scores are divided by `length ** length_penalty`.
    pub length_penalty: f64,
    /// Beam search stopping rule.
    pub early_stopping: EarlyStopping,
    /// Sample instead of taking the best token.
    pub do_sample: bool,
    /// Sampling temperature.
    pub temperature: f64,
    /// Sampling keeps the `top_k` best tokens (0 = all).
    pub top_k: usize,
    /// Sampling keeps the smallest set of tokens with this much probability.
    pub top_p: f64,
    /// CTRL repetition penalty on tokens already in the sequence (1 = off).
    pub repetition_penalty: f64,
    /// Forbids repeating any n-gram of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Sequences returned per image (≤ `num_beams` with beam search).
    pub num_return_sequences: usize,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            num_return_sequences: 1,
            seed: 0,
        }
    }
}

impl GenerationConfig {
    /// Rejects contradictory settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("generation: {m}")));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1");
        }
        if self.min_new_tokens > self.max_new_tokens {
            return bad("min_new_tokens is above max_new_tokens");
        }
        if self.num_beams == 0 || self.num_return_sequences == 0 {
            return bad("num_beams and num_return_sequences must be at least 1");
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return bad("num_return_sequences must not exceed num_beams");
        }
        if self.num_beams > 1 && self.do_sample {
            return bad("beam sampling is not supported; use num_beams = 1 with sampling");
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return bad("greedy search returns one sequence; use beams or sampling");
        }
        if self.temperature <= 0.0
            || !(0.0..=1.0).contains(&self.top_p)
            || self.repetition_penalty <= 0.0
        {
            return bad("temperature and repetition_penalty must be > 0 and top_p in [0, 1]");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_max_new_tokens_is_read_when_there_and_refused_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(model_max_new_tokens(dir.path()).unwrap(), None, "no file");
        let file = dir.path().join(GENERATION_CONFIG_FILE);
        std::fs::write(&file, r#"{"bos_token_id": 1}"#).unwrap();
        assert_eq!(model_max_new_tokens(dir.path()).unwrap(), None, "no key");
        std::fs::write(&file, r#"{"max_new_tokens": 39, "eos_token_id": 102}"#).unwrap();
        assert_eq!(model_max_new_tokens(dir.path()).unwrap(), Some(39));
        for bad in [
            r#"{"max_new_tokens": 0}"#,
            r#"{"max_new_tokens": "many"}"#,
            "{",
        ] {
            std::fs::write(&file, bad).unwrap();
            let e = model_max_new_tokens(dir.path()).unwrap_err().to_string();
            assert!(e.contains(GENERATION_CONFIG_FILE), "{bad}: {e}");
        }
    }

    #[test]
    fn a_pipeline_setting_wins_over_the_model_and_unset_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(GENERATION_CONFIG_FILE),
            r#"{"max_new_tokens": 39}"#,
        )
        .unwrap();
        let unset: crate::stages::caption::CaptionConfig = toml::from_str("").unwrap();
        assert_eq!(unset.generation().max_new_tokens, DEFAULT_MAX_NEW_TOKENS);
        assert_eq!(unset.generation_for(dir.path()).unwrap().max_new_tokens, 39);
        let set: crate::stages::caption::CaptionConfig =
            toml::from_str("max_new_tokens = 12").unwrap();
        assert_eq!(set.generation_for(dir.path()).unwrap().max_new_tokens, 12);
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(
            unset
                .generation_for(elsewhere.path())
                .unwrap()
                .max_new_tokens,
            DEFAULT_MAX_NEW_TOKENS
        );
    }
}
