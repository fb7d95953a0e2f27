//! `config.json` of a `BlipForConditionalGeneration` checkpoint.
//!
//! Field names are the JSON keys. Missing keys take transformers' class defaults
//! (`BlipTextConfig`, `BlipVisionConfig`), and `text_config.encoder_hidden_size` is
//! derived from the vision width as `BlipConfig.__post_init__` does, which is what
//! makes the large checkpoint (vision 1024, text 768) load.

use std::path::Path;

use serde::Deserialize;

use capstream::error::{Error, Result};

/// The vision tower (a ViT).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct VisionConfig {
    /// Width of the tower.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon (1e-5).
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact erf) is used by BLIP.
    pub hidden_act: String,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 384,
            patch_size: 16,
            layer_norm_eps: 1e-5,
            hidden_act: "gelu".into(),
        }
    }
}

impl VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens out of the tower: the class token plus one per patch.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// The BERT-style text decoder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct TextConfig {
    /// Vocabulary size (30524 in real checkpoints: BERT's plus `[DEC]`, `[ENC]`).
    pub vocab_size: usize,
    /// Width of the decoder.
    pub hidden_size: usize,
    /// Width of the image tokens that cross-attention reads; derived when absent.
    pub encoder_hidden_size: Option<usize>,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads (the class default is 8; real checkpoints say 12).
    pub num_attention_heads: usize,
    /// Longest sequence.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact erf) is used by BLIP.
    pub hidden_act: String,
    /// `[DEC]`: the first token of every caption.
    pub bos_token_id: i64,
    /// `[PAD]`.
    pub pad_token_id: i64,
    /// `[SEP]`: generation stops here.
    pub sep_token_id: i64,
    /// An unused slot in real checkpoints (2); generation does not stop on it.
    pub eos_token_id: i64,
    /// Label smoothing of the training loss (BLIP used 0.1; the default is 0).
    pub label_smoothing: f64,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            vocab_size: 30524,
            hidden_size: 768,
            encoder_hidden_size: None,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 512,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            bos_token_id: 30522,
            pad_token_id: 0,
            sep_token_id: 102,
            eos_token_id: 2,
            label_smoothing: 0.0,
        }
    }
}

/// A whole `config.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// The vision tower.
    pub vision_config: VisionConfig,
    /// The text decoder.
    pub text_config: TextConfig,
    /// Standard deviation of freshly initialized weights (transformers: 0.02).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_initializer_range() -> f64 {
    0.02
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vision_config: VisionConfig::default(),
            text_config: TextConfig::default(),
            initializer_range: default_initializer_range(),
        }
    }
}

impl Config {
    /// Reads and completes a `config.json`.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Reads and completes the text of a `config.json`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut cfg: Config = serde_json::from_str(text).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            message: format!("invalid config.json: {e}"),
        })?;
        cfg.complete();
        cfg.validate().map_err(|message| Error::Model {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Fills derived fields, as transformers does after loading.
    pub fn complete(&mut self) {
        // BlipConfig: text cross-attention reads vision-width tokens.
        self.text_config.encoder_hidden_size = Some(self.vision_config.hidden_size);
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let v = &self.vision_config;
        let t = &self.text_config;
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "vision hidden_size {} is not a multiple of {} heads",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(format!(
                "text hidden_size {} is not a multiple of {} heads",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        for (side, act) in [("vision", &v.hidden_act), ("text", &t.hidden_act)] {
            if act != "gelu" {
                return Err(format!("{side} hidden_act {act:?} is not supported (gelu)"));
            }
        }
        Ok(())
    }

    /// The text side's cross-attention input width.
    pub fn encoder_hidden_size(&self) -> usize {
        self.text_config
            .encoder_hidden_size
            .unwrap_or(self.vision_config.hidden_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_layout_derives_cross_attention_width() {
        let json = r#"{"text_config": {"num_attention_heads": 12},
                       "vision_config": {"hidden_size": 1024, "intermediate_size": 4096,
                                         "num_hidden_layers": 24, "num_attention_heads": 16}}"#;
        let mut cfg: Config = serde_json::from_str(json).unwrap();
        cfg.complete();
        assert_eq!(cfg.encoder_hidden_size(), 1024);
        assert_eq!(cfg.text_config.hidden_size, 768);
        assert_eq!(cfg.vision_config.num_positions(), 577);
        assert_eq!(cfg.text_config.sep_token_id, 102);
    }
}
