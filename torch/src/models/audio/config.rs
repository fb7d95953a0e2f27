//! `config.json` of a neural audio checkpoint: the mel definition the models were
//! trained on, the normalization of log-mel values, and both networks' shapes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use capstream::error::{Error, Result};

/// The value of `model_type` in a capstream neural audio `config.json`.
pub const MODEL_TYPE: &str = "capstream_neural_audio";

/// The log-mel both networks speak: librosa definitions (`dsp::mel`), dB with ref 1,
/// amin 1e-10 and `top_db`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MelConfig {
    /// Waveform sample rate, Hz.
    pub sample_rate: u32,
    /// FFT size.
    pub n_fft: usize,
    /// Hop between frames, samples; also the vocoder's upsampling factor.
    pub hop: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Frames the generator emits.
    pub frames: usize,
    /// Lowest mel frequency, Hz.
    pub fmin: f64,
    /// Highest mel frequency, Hz (`None`: sample_rate / 2).
    pub fmax: Option<f64>,
    /// dB floor below each clip's maximum.
    pub top_db: f64,
}

impl MelConfig {
    /// Samples of the clip a `frames`-frame mel describes with centred frames.
    pub fn clip_samples(&self) -> usize {
        (self.frames - 1) * self.hop
    }

    /// Clip length in seconds.
    pub fn clip_seconds(&self) -> f64 {
        self.clip_samples() as f64 / f64::from(self.sample_rate)
    }
}

/// The generator: image embedding → normalized log-mel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Width of the image embedding (the caption model's vision hidden size).
    pub embed_dim: usize,
    /// Channels of the seed grid and after each ×2 upsampling block; the number of
    /// blocks is `channels.len() - 1`.
    pub channels: Vec<usize>,
}

/// The vocoder: normalized log-mel → waveform in [-1, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderConfig {
    /// Channels after the input convolution; each upsampling stage halves them.
    pub channels: usize,
    /// Upsampling factor of each stage; their product is the hop.
    pub upsample: Vec<usize>,
    /// Dilations of the residual units after each upsampling stage.
    pub dilations: Vec<usize>,
}

/// A neural audio checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Always [`MODEL_TYPE`].
    pub model_type: String,
    /// The log-mel definition.
    pub mel: MelConfig,
    /// Mean of the training log-mels, dB; networks see `(dB - mean) / std`.
    pub mel_mean: f32,
    /// Standard deviation of the training log-mels, dB.
    pub mel_std: f32,
    /// Generator shape.
    pub generator: GeneratorConfig,
    /// Vocoder shape.
    pub vocoder: VocoderConfig,
    /// The caption model whose embeddings the generator was trained on (informative).
    #[serde(default)]
    pub embedding_source: Option<String>,
}

impl Config {
    /// The default shapes for an embedding width: 80 × 64 mels at 16 kHz with hop 512
    /// (a 2.02 s clip), a three-block generator and an 8·8·8 vocoder.
    pub fn new(embed_dim: usize) -> Self {
        Config {
            model_type: MODEL_TYPE.into(),
            mel: MelConfig {
                sample_rate: 16000,
                n_fft: 1024,
                hop: 512,
                n_mels: 80,
                frames: 64,
                fmin: 0.0,
                fmax: None,
                top_db: 80.0,
            },
            mel_mean: -40.0,
            mel_std: 20.0,
            generator: GeneratorConfig {
                embed_dim,
                channels: vec![128, 64, 32, 16],
            },
            vocoder: VocoderConfig {
                channels: 128,
                upsample: vec![8, 8, 8],
                dilations: vec![1, 3, 9],
            },
            embedding_source: None,
        }
    }

    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Config = serde_json::from_str(&text).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            message: format!("config.json: {e}"),
        })?;
        cfg.validate().map_err(|message| Error::Model {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Writes `config.json` (pretty, stable key order).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Checks that the shapes fit together.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.model_type != MODEL_TYPE {
            return Err(format!(
                "model_type {:?} is not {MODEL_TYPE:?}",
                self.model_type
            ));
        }
        let m = &self.mel;
        if m.sample_rate < 1000 || m.n_fft < 16 || m.hop == 0 || m.n_mels == 0 || m.frames < 2 {
            return Err(
                "mel: need sample_rate >= 1000, n_fft >= 16, hop, n_mels > 0, frames >= 2".into(),
            );
        }
        let blocks = self.generator.channels.len().saturating_sub(1);
        if self.generator.channels.is_empty() || self.generator.channels.contains(&0) {
            return Err("generator.channels must be non-empty and non-zero".into());
        }
        let scale = 1usize << blocks;
        if !m.n_mels.is_multiple_of(scale) || !m.frames.is_multiple_of(scale) {
            return Err(format!(
                "generator: {blocks} upsampling blocks need n_mels ({}) and frames ({}) divisible by {scale}",
                m.n_mels, m.frames
            ));
        }
        if self.generator.embed_dim == 0 {
            return Err("generator.embed_dim must be positive".into());
        }
        let v = &self.vocoder;
        let product: usize = v.upsample.iter().product();
        if v.upsample.is_empty() || v.upsample.contains(&0) || product != m.hop {
            return Err(format!(
                "vocoder.upsample {:?} must multiply to the hop ({})",
                v.upsample, m.hop
            ));
        }
        if v.channels >> v.upsample.len() == 0 {
            return Err(format!(
                "vocoder.channels {} cannot be halved {} times",
                v.channels,
                v.upsample.len()
            ));
        }
        if self.mel_std.is_nan() || self.mel_std <= 0.0 || !self.mel_mean.is_finite() {
            return Err("mel_std must be positive and mel_mean finite".into());
        }
        Ok(())
    }
}
