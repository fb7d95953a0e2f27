//! `caption`: the image at model size → a BLIP caption, its token ids, the model's
//! name and the pooled image embedding.
//!
//! Each worker thread loads its own copy of the checkpoint when the runtime builds the
//! stage (a model's tensors never cross threads) and captions whole micro-batches under
//! `no_grad`. Rows that failed upstream pass through untouched. A row whose image is
//! not at the model's size means the pipeline is misconfigured, which stops it.

mod config;
mod stage;

pub use config::CaptionConfig;
pub use stage::Caption;

use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::pipeline::{BuildContext, Stage};
use crate::schema::Edge;
use crate::stages::Hints;

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
        let dir = self.folder(cx)?;
        let cfg = crate::models::blip::Config::from_file(&dir.join("config.json"))?;
        Ok(Hints {
            image_size: Some(cfg.vision_config.image_size as u32),
        })
    }
    fn model_dir(&self, cx: &BuildContext) -> Option<Result<std::path::PathBuf>> {
        Some(self.folder(cx))
    }
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(Caption::new(self, self.folder(cx)?)?))
    }
}

impl CaptionConfig {
    /// The checkpoint folder: `--model`, else the stage's `model` relative to the
    /// pipeline file.
    fn folder(&self, cx: &BuildContext) -> Result<std::path::PathBuf> {
        super::model_folder(
            cx.model_override.as_ref(),
            self.model.as_ref(),
            cx,
            "caption: no model; set `model` in the stage or pass --model",
        )
    }
}
