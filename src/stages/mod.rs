//! Stages, one folder each, and the one registry that builds them.
//!
//! Adding a stage means: a folder here, one [`StageConfig`] variant and its match arms,
//! its schema under `schemas/` and an example in `pipelines/`. The runtime never changes.

mod audio_limits;
pub mod caption;
pub mod decode_image;
pub mod features;
pub mod neural_audio;
pub mod score;
pub mod speak;

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
    /// The image at model size → BLIP caption, token ids, image embedding.
    Caption(caption::CaptionConfig),
    /// Reference audio → log-mel features.
    Features(features::FeaturesConfig),
    /// Caption → spoken description (eSpeak NG).
    Speak(speak::SpeakConfig),
    /// Image embedding → generated log-mel → vocoded waveform.
    NeuralAudio(neural_audio::NeuralAudioConfig),
    /// Caption and audio scores against the references.
    Score(score::ScoreConfig),
}

impl StageConfig {
    /// The stage's stable name: config `type`, metric label and log field.
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::DecodeImage(_) => decode_image::NAME,
            StageConfig::Caption(_) => caption::NAME,
            StageConfig::Features(_) => features::NAME,
            StageConfig::Speak(_) => speak::NAME,
            StageConfig::NeuralAudio(_) => neural_audio::NAME,
            StageConfig::Score(_) => score::NAME,
        }
    }

    /// Worker threads for this stage (each holds its own built stage).
    pub fn workers(&self) -> usize {
        match self {
            StageConfig::DecodeImage(c) => c.workers,
            StageConfig::Caption(c) => c.workers,
            StageConfig::Features(c) => c.workers,
            StageConfig::Speak(c) => c.workers,
            StageConfig::NeuralAudio(c) => c.workers,
            StageConfig::Score(c) => c.workers,
        }
    }

    /// Whether the stage runs inside the previous stage's worker (distributed mode).
    pub fn chained(&self) -> bool {
        match self {
            StageConfig::DecodeImage(c) => c.chain,
            StageConfig::Caption(c) => c.chain,
            StageConfig::Features(c) => c.chain,
            StageConfig::Speak(c) => c.chain,
            StageConfig::NeuralAudio(c) => c.chain,
            StageConfig::Score(c) => c.chain,
        }
    }

    /// Micro-batching that overrides the pipeline's, if set.
    pub fn batch(&self) -> Option<BatchConfig> {
        match self {
            StageConfig::DecodeImage(c) => c.batch,
            StageConfig::Caption(c) => c.batch,
            StageConfig::Features(c) => c.batch,
            StageConfig::Speak(c) => c.batch,
            StageConfig::NeuralAudio(c) => c.batch,
            StageConfig::Score(c) => c.batch,
        }
    }

    /// Checks settings without building anything.
    pub fn validate(&self) -> Result<()> {
        match self {
            StageConfig::DecodeImage(c) => c.validate(),
            StageConfig::Caption(c) => c.validate(),
            StageConfig::Features(c) => c.validate(),
            StageConfig::Speak(c) => c.validate(),
            StageConfig::NeuralAudio(c) => c.validate(),
            StageConfig::Score(c) => c.validate(),
        }
    }

    /// The columns this stage needs from its upstream.
    pub fn input_schema(&self) -> SchemaRef {
        match self {
            StageConfig::DecodeImage(_) => decode_image::input_schema(),
            StageConfig::Caption(_) => caption::input_schema(),
            StageConfig::Features(_) => features::input_schema(),
            StageConfig::Speak(_) => speak::input_schema(),
            StageConfig::NeuralAudio(_) => neural_audio::input_schema(),
            StageConfig::Score(c) => c.input_schema(),
        }
    }

    /// The schema this stage emits, given a compatible input.
    pub fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        match self {
            StageConfig::DecodeImage(_) => decode_image::output_schema(),
            StageConfig::Caption(_) => caption::output_schema(),
            StageConfig::Features(_) => features::output_schema(input),
            StageConfig::Speak(_) => speak::output_schema(input),
            StageConfig::NeuralAudio(_) => neural_audio::output_schema(input),
            StageConfig::Score(_) => score::output_schema(input),
        }
    }

    /// The caption model's checkpoint folder: `--model`, else the stage's `model`
    /// relative to the pipeline file. `None` for other stages.
    pub fn model_dir(&self, cx: &BuildContext) -> Option<Result<std::path::PathBuf>> {
        match self {
            StageConfig::Caption(c) => Some(resolve(
                cx.model_override.as_ref(),
                c.model.as_ref(),
                cx,
                "caption: no model; set `model` in the stage or pass --model",
            )),
            _ => None,
        }
    }

    /// Builds the runtime stage. Called on the thread that will run it.
    pub fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(match self {
            StageConfig::DecodeImage(c) => {
                Box::new(decode_image::DecodeImage::new(c, cx.model_image_size))
            }
            StageConfig::Caption(c) => {
                let dir = self.model_dir(cx).expect("caption has a model")?;
                Box::new(caption::Caption::new(c, dir)?)
            }
            StageConfig::Features(c) => Box::new(features::Features::new(c)),
            StageConfig::Speak(c) => Box::new(speak::Speak::new(c)),
            StageConfig::Score(c) => Box::new(score::Score::new(c)?),
            StageConfig::NeuralAudio(c) => Box::new(neural_audio::NeuralAudioStage::new(
                c,
                &resolve(
                    cx.audio_model_override.as_ref(),
                    c.model.as_ref(),
                    cx,
                    "neural_audio: no model; set `model` in the stage or pass --audio-model",
                )?,
            )?),
        })
    }
}

/// A model folder: the command line's, else the pipeline file's (relative to the file).
fn resolve(
    overridden: Option<&std::path::PathBuf>,
    configured: Option<&std::path::PathBuf>,
    cx: &BuildContext,
    missing: &str,
) -> Result<std::path::PathBuf> {
    match (overridden, configured) {
        (Some(m), _) => Ok(m.clone()),
        (None, Some(m)) if m.is_absolute() => Ok(m.clone()),
        (None, Some(m)) => Ok(cx.base_dir.join(m)),
        (None, None) => Err(crate::error::Error::Config(missing.into())),
    }
}
