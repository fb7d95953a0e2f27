//! `neural_audio`: the caption and the image embedding (both from `caption`) → mel
//! generator → log-mel → vocoder → waveform, the original design's audio, conditioned on
//! the words it speaks.
//!
//! This folder is the stage's contract (settings, schemas); the running stage is the
//! model side's (`capstream_torch::stages::neural_audio`).
//!
//! The vocoder is the checkpoint's neural one, or Griffin-Lim from the generated
//! log-mel (mel → NNLS magnitudes → Griffin-Lim), which needs no trained vocoder. Rows
//! without an embedding or a caption (failed upstream) pass with null audio. An embedding whose
//! width differs from the model's is a configuration error (the audio model was trained
//! on another caption model) and stops the pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::schema::{append_fields, columns, neural_audio_fields, stage_input};
use crate::stages::{BuildContext, Stage};

/// The stage's name.
pub const NAME: &str = "neural_audio";

/// Which vocoder turns the generated log-mel into a waveform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VocoderKind {
    /// The checkpoint's trained vocoder.
    Neural,
    /// Griffin-Lim phase reconstruction (no training; the baseline).
    GriffinLim,
}

/// `[[stage]] type = "neural_audio"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuralAudioConfig {
    /// Audio checkpoint folder (config.json, model.safetensors), relative to the
    /// pipeline file; `--audio-model` overrides it.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// `neural` or `griffin_lim`.
    #[serde(default = "neural")]
    pub vocoder: VocoderKind,
    /// Griffin-Lim iterations.
    #[serde(default = "iters")]
    pub griffin_lim_iters: usize,
    /// auto, cpu, cuda or cuda:N.
    #[serde(default = "auto")]
    pub device: String,
}

fn neural() -> VocoderKind {
    VocoderKind::Neural
}
fn iters() -> usize {
    32
}
fn auto() -> String {
    "auto".into()
}

impl NeuralAudioConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.griffin_lim_iters == 0 && self.vocoder == VocoderKind::GriffinLim {
            return Err(Error::Config(
                "neural_audio: griffin_lim_iters must be at least 1".into(),
            ));
        }
        super::check_device(&self.device)
    }
}

/// What the stage reads: the caption and the image embedding.
pub fn input_schema() -> SchemaRef {
    stage_input(vec![
        Field::new(columns::CAPTION, DataType::Utf8, true),
        Field::new(
            columns::IMAGE_EMBEDDING,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ])
}

/// What the stage emits: its input plus the neural audio columns.
pub fn output_schema(input: &SchemaRef) -> SchemaRef {
    append_fields(input, neural_audio_fields())
}

impl crate::stages::StageSpec for NeuralAudioConfig {
    fn validate(&self) -> Result<()> {
        NeuralAudioConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        input_schema()
    }
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        output_schema(input)
    }
    fn model_dir(&self, cx: &BuildContext) -> Option<Result<PathBuf>> {
        Some(self.folder(cx))
    }
    fn runs_model(&self) -> bool {
        true
    }
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        crate::stages::model_stage(NAME, self, cx)
    }
}

impl NeuralAudioConfig {
    /// The audio checkpoint folder: `--audio-model`, else the stage's `model`.
    pub fn folder(&self, cx: &BuildContext) -> Result<PathBuf> {
        super::model_folder(
            cx.audio_model_override.as_ref(),
            self.model.as_ref(),
            cx,
            "neural_audio: no model; set `model` in the stage or pass --audio-model",
        )
    }
}
