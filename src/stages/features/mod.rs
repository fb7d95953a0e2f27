//! `features`: the reference audio of a record (WAV bytes) → resampled → log-mel.
//!
//! Definitions follow librosa 0.11 (see `dsp`). Records without reference audio pass
//! with null features; unreadable or over-long audio makes the record an error row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float32Builder, ListBuilder, RecordBatch, StringArray,
    UInt32Builder,
};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;

use crate::dsp::mel::DbRef;
use crate::dsp::resample::{Quality, ResamplerCache};
use crate::dsp::wav::{read_wav_mono, AudioError, WavLimits};
use crate::dsp::{MelExtractor, MelParams, MelScaleNorm, StftParams};
use crate::error::{Error, Result};
use crate::schema::{
    append_fields, column, columns, error_columns, feature_fields, ok_mask, with_columns, Edge,
    ErrorKind, RowError,
};
use crate::stages::Stage;

/// The stage's name.
pub const NAME: &str = "features";

/// `[[stage]] type = "features"`. Defaults: 16 kHz, n_fft 1024, hop 256, 80 Slaney mels, dB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Analysis rate; audio at other rates is resampled first.
    #[serde(default = "sr")]
    pub sample_rate: u32,
    /// FFT size.
    #[serde(default = "n_fft")]
    pub n_fft: usize,
    /// Hop.
    #[serde(default = "hop")]
    pub hop: usize,
    /// Window length (default n_fft).
    #[serde(default)]
    pub win_length: Option<usize>,
    /// Mel bands.
    #[serde(default = "n_mels")]
    pub n_mels: usize,
    /// Lowest frequency.
    #[serde(default)]
    pub fmin: f64,
    /// Highest frequency (default sr / 2).
    #[serde(default)]
    pub fmax: Option<f64>,
    /// HTK mel scale.
    #[serde(default)]
    pub htk: bool,
    /// Slaney filter normalization (false = none).
    #[serde(default = "yes")]
    pub slaney_norm: bool,
    /// Magnitude exponent.
    #[serde(default = "two")]
    pub power: f64,
    /// Convert to dB (ref 1, amin 1e-10, top_db).
    #[serde(default = "yes")]
    pub db: bool,
    /// dB floor below the maximum.
    #[serde(default = "top_db")]
    pub top_db: f64,
    /// Longer reference audio becomes a `too_large` error row.
    #[serde(default = "max_seconds")]
    pub max_seconds: f64,
    /// Reference audio with more channels is an `invalid_audio` error row.
    #[serde(default = "super::audio_limits::max_audio_channels")]
    pub max_audio_channels: u16,
    /// Reference audio below this sample rate (Hz) is an `invalid_audio` error row.
    #[serde(default = "super::audio_limits::min_audio_rate")]
    pub min_audio_rate: u32,
    /// Reference audio above this sample rate (Hz) is an `invalid_audio` error row: a
    /// crafted header must not size a resampler's output.
    #[serde(default = "super::audio_limits::max_audio_rate")]
    pub max_audio_rate: u32,
}

fn sr() -> u32 {
    16000
}
fn n_fft() -> usize {
    1024
}
fn hop() -> usize {
    256
}
fn n_mels() -> usize {
    80
}
fn yes() -> bool {
    true
}
fn two() -> f64 {
    2.0
}
fn top_db() -> f64 {
    80.0
}
fn max_seconds() -> f64 {
    60.0
}

impl FeaturesConfig {
    /// What reference audio may declare; `None` until validated values are sane.
    fn reference_limits(&self) -> Option<WavLimits> {
        super::audio_limits::limits(
            self.max_seconds,
            self.max_audio_channels,
            self.min_audio_rate,
            self.max_audio_rate,
        )
    }

    /// What reference audio may declare.
    pub fn audio_limits(&self) -> WavLimits {
        self.reference_limits()
            .unwrap_or_else(|| WavLimits::from(self.max_seconds))
    }

    /// The mel definition.
    pub fn mel(&self) -> MelParams {
        MelParams {
            sr: self.sample_rate,
            stft: StftParams {
                n_fft: self.n_fft,
                hop: self.hop,
                win_length: self.win_length.unwrap_or(self.n_fft),
                center: true,
            },
            n_mels: self.n_mels,
            fmin: self.fmin,
            fmax: self.fmax,
            htk: self.htk,
            norm: if self.slaney_norm {
                MelScaleNorm::Slaney
            } else {
                MelScaleNorm::None
            },
            power: self.power,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.hop == 0
            || self.n_fft == 0
            || self.n_mels == 0
            || self.win_length.unwrap_or(self.n_fft) > self.n_fft
            || self.sample_rate < 1000
            || self.max_seconds <= 0.0
            || self.reference_limits().is_none()
        {
            return Err(Error::Config(
                "need hop, n_fft, n_mels > 0, win_length <= n_fft, sample_rate >= 1000, \
                 max_seconds > 0, max_audio_channels > 0, 0 < min_audio_rate <= max_audio_rate"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What the stage reads: the envelope with its reference audio.
pub fn input_schema() -> SchemaRef {
    let src = Edge::Source.schema();
    let keep = [
        columns::ID,
        columns::REFERENCE_AUDIO,
        columns::STATUS,
        columns::ERROR_KIND,
        columns::ERROR,
    ];
    Arc::new(
        src.project(&keep.map(|c| src.index_of(c).expect("source has the envelope")))
            .expect("valid projection"),
    )
}

/// What the stage emits: its input plus the feature columns.
pub fn output_schema(input: &SchemaRef) -> SchemaRef {
    append_fields(input, feature_fields())
}

impl crate::stages::StageSpec for FeaturesConfig {
    fn validate(&self) -> Result<()> {
        FeaturesConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        input_schema()
    }
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        output_schema(input)
    }
    fn build(&self, _cx: &crate::stages::BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(Features::new(self)))
    }
}

/// The running stage. Each worker builds its own, so the mel front end (FFT plan,
/// window, filterbank, scratch) and the resamplers are built once per worker, not per
/// record.
#[derive(Debug)]
pub struct Features {
    cfg: FeaturesConfig,
    mel: MelExtractor,
    resamplers: ResamplerCache,
}

impl Features {
    /// Builds the stage.
    pub fn new(cfg: &FeaturesConfig) -> Self {
        Features {
            cfg: cfg.clone(),
            mel: MelExtractor::new(&cfg.mel()),
            resamplers: ResamplerCache::new(),
        }
    }

    fn one(&mut self, bytes: &[u8]) -> std::result::Result<(Vec<f32>, usize), (ErrorKind, String)> {
        let (rate, y) = read_wav_mono(bytes, self.cfg.audio_limits()).map_err(|e| match e {
            AudioError::TooLong(_) => (ErrorKind::TooLarge, e.to_string()),
            other => (ErrorKind::InvalidAudio, other.to_string()),
        })?;
        let y = self
            .resamplers
            .resample_mono(y, rate, self.cfg.sample_rate, Quality::Balanced)
            .map_err(|e| (ErrorKind::InvalidAudio, e))?;
        Ok(if self.cfg.db {
            self.mel
                .log_mel(&y, DbRef::Value(1.0), 1e-10, Some(self.cfg.top_db))
        } else {
            self.mel.mel(&y)
        })
    }
}

impl Stage for Features {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = ok_mask(&batch)?;
        let audio = column::<BinaryArray>(&batch, columns::REFERENCE_AUDIO)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let mut mel_col = ListBuilder::new(Float32Builder::new());
        let mut frames_col = UInt32Builder::with_capacity(n);
        let mut errors: Vec<Option<RowError>> = vec![None; n];
        for i in 0..n {
            if ok[i] && audio.is_valid(i) {
                match self.one(audio.value(i)) {
                    Ok((mel, frames)) => {
                        mel_col.values().append_slice(&mel);
                        mel_col.append(true);
                        frames_col.append_value(frames as u32);
                        continue;
                    }
                    Err((kind, msg)) => {
                        errors[i] = Some(RowError::new(
                            kind,
                            format!("record {}: reference audio: {msg}", ids.value(i)),
                        ));
                    }
                }
            }
            mel_col.append(false);
            frames_col.append_null();
        }
        let [status, kind, message] = error_columns(&batch, &errors)?;
        let schema = output_schema(&batch.schema());
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::STATUS, status),
            (columns::ERROR_KIND, kind),
            (columns::ERROR, message),
            (columns::REFERENCE_MEL, Arc::new(mel_col.finish())),
            (columns::REFERENCE_MEL_FRAMES, Arc::new(frames_col.finish())),
        ];
        out.push(with_columns(&batch, schema, replace)?);
        Ok(())
    }
}
