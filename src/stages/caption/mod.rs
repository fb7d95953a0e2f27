//! `caption`: the image at model size → a BLIP caption, its token ids, the model's
//! name and the pooled image embedding.
//!
//! This folder is the stage's contract, which every process of a pipeline reads: its
//! settings, schemas and the image size it asks `decode_image` for (read from the
//! checkpoint's `config.json`, no model loaded). The running stage is the model side's
//! (`capstream_torch::stages::caption`): each worker thread loads its own copy of the
//! checkpoint (a model's tensors never cross threads) and captions whole micro-batches.

mod config;
mod generation;

pub use config::CaptionConfig;
pub use generation::{
    model_max_new_tokens, EarlyStopping, GenerationConfig, DEFAULT_MAX_NEW_TOKENS,
    GENERATION_CONFIG_FILE,
};

use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::schema::Edge;
use crate::stages::Hints;
use crate::stages::{BuildContext, Stage};

/// The stage's name.
pub const NAME: &str = "caption";

/// What the stage reads.
pub fn input_schema() -> SchemaRef {
    Edge::Decoded.schema()
}

/// What the stage emits.
pub fn output_schema() -> SchemaRef {
    Edge::Captioned.schema()
}

impl crate::stages::StageSpec for CaptionConfig {
    fn validate(&self) -> Result<()> {
        CaptionConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        input_schema()
    }
    fn output_schema(&self, _input: &SchemaRef) -> SchemaRef {
        output_schema()
    }
    /// The image side the checkpoint's vision tower takes, so that `decode_image`
    /// resizes once, straight to it.
    fn upstream_hints(&self, cx: &BuildContext) -> Result<Hints> {
        /// The one key of a BLIP `config.json` planning needs; the model side reads
        /// and checks the whole file when it loads the checkpoint.
        #[derive(serde::Deserialize)]
        struct Blip {
            #[serde(default)]
            vision_config: Vision,
        }
        #[derive(serde::Deserialize)]
        struct Vision {
            #[serde(default = "blip_image_size")]
            image_size: u32,
        }
        impl Default for Vision {
            fn default() -> Self {
                Vision {
                    image_size: blip_image_size(),
                }
            }
        }
        let path = self.folder(cx)?.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| crate::error::Error::io(&path, e))?;
        let cfg: Blip = serde_json::from_str(&text).map_err(|e| crate::error::Error::Model {
            path: path.clone(),
            message: format!("invalid config.json: {e}"),
        })?;
        Ok(Hints {
            image_size: Some(cfg.vision_config.image_size),
        })
    }
    fn model_dir(&self, cx: &BuildContext) -> Option<Result<std::path::PathBuf>> {
        Some(self.folder(cx))
    }
    fn runs_model(&self) -> bool {
        true
    }
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        crate::stages::model_stage(NAME, self, cx)
    }
}

/// BLIP base's and large's input side (transformers' `BlipVisionConfig` default).
fn blip_image_size() -> u32 {
    384
}

impl CaptionConfig {
    /// The checkpoint folder: `--model`, else the stage's `model` relative to the
    /// pipeline file.
    pub fn folder(&self, cx: &BuildContext) -> Result<std::path::PathBuf> {
        super::model_folder(
            cx.model_override.as_ref(),
            self.model.as_ref(),
            cx,
            "caption: no model; set `model` in the stage or pass --model",
        )
    }
}
