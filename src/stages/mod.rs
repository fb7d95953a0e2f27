//! Stages, one folder each, and the one registry that builds them.
//!
//! Adding a stage means: a folder here, one [`StageConfig`] variant and its match arms,
//! its schema under `schemas/` and an example in `pipelines/`. The runtime never changes.

pub mod decode_image;

use arrow::datatypes::SchemaRef;
use serde::Deserialize;

use crate::config::BatchConfig;
use crate::error::Result;
use crate::pipeline::{BuildContext, Stage};

/// A `[[stage]]` table: the stage's type and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StageConfig {
    /// Encoded bytes → the image at model size.
    DecodeImage(decode_image::DecodeImageConfig),
}

impl StageConfig {
    /// The stage's stable name: config `type`, metric label and log field.
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::DecodeImage(_) => decode_image::NAME,
        }
    }

    /// Worker threads for this stage (each holds its own built stage).
    pub fn workers(&self) -> usize {
        match self {
            StageConfig::DecodeImage(c) => c.workers,
        }
    }

    /// Micro-batching that overrides the pipeline's, if set.
    pub fn batch(&self) -> Option<BatchConfig> {
        match self {
            StageConfig::DecodeImage(c) => c.batch,
        }
    }

    /// Checks settings without building anything.
    pub fn validate(&self) -> Result<()> {
        match self {
            StageConfig::DecodeImage(c) => c.validate(),
        }
    }

    /// The columns this stage needs from its upstream.
    pub fn input_schema(&self) -> SchemaRef {
        match self {
            StageConfig::DecodeImage(_) => decode_image::input_schema(),
        }
    }

    /// The schema this stage emits, given a compatible input.
    pub fn output_schema(&self, _input: &SchemaRef) -> SchemaRef {
        match self {
            StageConfig::DecodeImage(_) => decode_image::output_schema(),
        }
    }

    /// Builds the runtime stage. Called on the thread that will run it.
    pub fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(match self {
            StageConfig::DecodeImage(c) => Box::new(decode_image::DecodeImage::new(c)),
        })
    }
}
