//! `neural_audio`: the image embedding (from `caption`) → mel generator → log-mel →
//! vocoder → waveform, the original design's audio.
//!
//! The vocoder is the checkpoint's neural one, or Griffin-Lim from the generated
//! log-mel (mel → NNLS magnitudes → Griffin-Lim), which needs no trained vocoder. Rows
//! without an embedding (failed upstream) pass with null audio. An embedding whose
//! width differs from the model's is a configuration error (the audio model was trained
//! on another caption model) and stops the pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, Float32Array, Float32Builder, ListArray, ListBuilder,
    RecordBatch, StringArray, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use serde::Deserialize;

use crate::dsp::mel_inverse::mel_db_to_audio;
use crate::dsp::wav::write_wav_pcm16;
use crate::error::{Error, Result};
use crate::models::audio::NeuralAudio;
use crate::models::device::parse_device;
use crate::pipeline::{BuildContext, Stage};
use crate::schema::{
    append_fields, column, columns, neural_audio_fields, stage_input, with_columns,
};

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
        parse_device(&self.device).map(|_| ())
    }
}

/// What the stage reads: the image embedding.
pub fn input_schema() -> SchemaRef {
    stage_input(vec![Field::new(
        columns::IMAGE_EMBEDDING,
        DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
        true,
    )])
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
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(NeuralAudioStage::new(self, &self.folder(cx)?)?))
    }
}

impl NeuralAudioConfig {
    /// The audio checkpoint folder: `--audio-model`, else the stage's `model`.
    fn folder(&self, cx: &BuildContext) -> Result<PathBuf> {
        super::model_folder(
            cx.audio_model_override.as_ref(),
            self.model.as_ref(),
            cx,
            "neural_audio: no model; set `model` in the stage or pass --audio-model",
        )
    }
}

/// The running stage.
#[derive(Debug)]
pub struct NeuralAudioStage {
    model: NeuralAudio,
    vocoder: VocoderKind,
    griffin_lim_iters: usize,
}

impl NeuralAudioStage {
    /// Loads the checkpoint at `dir`.
    pub fn new(cfg: &NeuralAudioConfig, dir: &std::path::Path) -> Result<Self> {
        let device = parse_device(&cfg.device)?;
        Ok(NeuralAudioStage {
            model: NeuralAudio::from_dir(dir, device)?,
            vocoder: cfg.vocoder,
            griffin_lim_iters: cfg.griffin_lim_iters,
        })
    }

    fn griffin_lim(&self, mel_db: &[f32]) -> Vec<f32> {
        let c = &self.model.config().mel;
        mel_db_to_audio(
            mel_db,
            c.frames,
            &self.model.mel_params(),
            self.griffin_lim_iters,
            Some(c.clip_samples()),
        )
    }
}

impl Stage for NeuralAudioStage {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = crate::schema::ok_mask(&batch)?;
        let emb = column::<ListArray>(&batch, columns::IMAGE_EMBEDDING)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let rows: Vec<usize> = (0..n).filter(|&i| ok[i] && emb.is_valid(i)).collect();
        let lists: Vec<ArrayRef> = rows.iter().map(|&i| emb.value(i)).collect();
        let mut vectors: Vec<&[f32]> = Vec::with_capacity(rows.len());
        for (&i, l) in rows.iter().zip(&lists) {
            let values = l.as_any().downcast_ref::<Float32Array>().ok_or_else(|| {
                Error::Runtime(format!(
                    "record {}: image_embedding is not float32",
                    ids.value(i)
                ))
            })?;
            vectors.push(values.values());
        }
        let synthesized = self.model.synthesize(&vectors).map_err(|e| Error::Stage {
            stage: NAME.into(),
            message: format!("{e} (was the audio model trained on this caption model?)"),
        })?;
        let c = self.model.config().mel.clone();
        let mut mel_col = ListBuilder::new(Float32Builder::new());
        let mut frames_col = UInt32Builder::with_capacity(n);
        let mut wav_col = BinaryBuilder::new();
        let mut rate_col = UInt32Builder::with_capacity(n);
        let mut next = rows.iter().zip(synthesized).peekable();
        for i in 0..n {
            match next.peek() {
                Some((&r, _)) if r == i => {
                    let (_, s) = next.next().expect("peeked");
                    let wave = match self.vocoder {
                        VocoderKind::Neural => s.waveform,
                        VocoderKind::GriffinLim => self.griffin_lim(&s.mel_db),
                    };
                    mel_col.values().append_slice(&s.mel_db);
                    mel_col.append(true);
                    frames_col.append_value(c.frames as u32);
                    wav_col.append_value(write_wav_pcm16(&wave, c.sample_rate));
                    rate_col.append_value(c.sample_rate);
                }
                _ => {
                    mel_col.append(false);
                    frames_col.append_null();
                    wav_col.append_null();
                    rate_col.append_null();
                }
            }
        }
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::NEURAL_MEL, Arc::new(mel_col.finish())),
            (columns::NEURAL_MEL_FRAMES, Arc::new(frames_col.finish())),
            (columns::NEURAL_WAV, Arc::new(wav_col.finish())),
            (columns::NEURAL_SAMPLE_RATE, Arc::new(rate_col.finish())),
        ];
        out.push(with_columns(
            &batch,
            output_schema(&batch.schema()),
            replace,
        )?);
        Ok(())
    }
}
