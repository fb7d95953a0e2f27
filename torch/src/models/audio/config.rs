//! `config.json` of a neural audio checkpoint: the mel definition the models were
//! trained on, the normalization of log-mel values, both networks' shapes and the
//! generator's alphabet. Also the text → character-id mapping the generator reads, so
//! that the alphabet and its use live in one place.

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
    /// Longest log-mel the generator emits and training reads, frames; longer
    /// reference clips are cut.
    pub max_frames: usize,
    /// Lowest mel frequency, Hz.
    pub fmin: f64,
    /// Highest mel frequency, Hz (`None`: sample_rate / 2).
    pub fmax: Option<f64>,
    /// dB floor below each clip's maximum.
    pub top_db: f64,
}

impl MelConfig {
    /// Samples of the clip a `frames`-frame mel describes with centred frames.
    pub fn samples(&self, frames: usize) -> usize {
        frames.saturating_sub(1) * self.hop
    }

    /// Frames of the centred log-mel of `samples` samples.
    pub fn frames_of(&self, samples: usize) -> usize {
        1 + samples / self.hop
    }
}

/// Character ids the generator reserves before the alphabet's.
pub const PAD_ID: i64 = 0;
/// A character outside the alphabet.
pub const UNKNOWN_ID: i64 = 1;
/// The silence before and after an utterance.
pub const SILENCE_ID: i64 = 2;
const FIRST_CHAR_ID: i64 = 3;

/// The generator: caption text (characters) and image embedding → normalized log-mel,
/// FastSpeech-style (`models::audio::generator`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Width of the image embedding (the caption model's vision hidden size).
    pub embed_dim: usize,
    /// Characters the text encoder knows; character `k` has id `k + 3` (0: padding,
    /// 1: unknown, 2: silence). Text is lowercased first.
    pub alphabet: String,
    /// Width of the encoder, the duration predictor and the decoder.
    pub dim: usize,
    /// Convolution blocks of the text encoder.
    pub encoder_layers: usize,
    /// Convolution blocks of the duration predictor.
    pub duration_layers: usize,
    /// Convolution blocks of the mel decoder.
    pub decoder_layers: usize,
    /// Kernel width of every convolution (odd).
    pub kernel: usize,
}

impl GeneratorConfig {
    /// Vocabulary size of the character embedding.
    pub fn vocab_size(&self) -> usize {
        FIRST_CHAR_ID as usize + self.alphabet.chars().count()
    }

    /// The ids of `text`: silence, each character (lowercased; runs of whitespace as
    /// one space; outside the alphabet: unknown), silence. Returns the ids and, for
    /// each id, the index of the word it belongs to (`None` for the silences and the
    /// spaces between words).
    pub fn encode(&self, text: &str) -> (Vec<i64>, Vec<Option<usize>>) {
        let mut ids = vec![SILENCE_ID];
        let mut words = vec![None];
        let lower = text.to_lowercase();
        for (w, word) in lower.split_whitespace().enumerate() {
            if w > 0 {
                ids.push(self.char_id(' '));
                words.push(None);
            }
            for c in word.chars() {
                ids.push(self.char_id(c));
                words.push(Some(w));
            }
        }
        ids.push(SILENCE_ID);
        words.push(None);
        (ids, words)
    }

    fn char_id(&self, c: char) -> i64 {
        self.alphabet
            .chars()
            .position(|a| a == c)
            .map_or(UNKNOWN_ID, |k| FIRST_CHAR_ID + k as i64)
    }
}

/// The alphabet of the default generator: what English captions are spelt with.
pub const DEFAULT_ALPHABET: &str = " abcdefghijklmnopqrstuvwxyz0123456789',.-";

/// The vocoder: normalized log-mel → waveform, a small Vocos (ConvNeXt backbone,
/// inverse-STFT head; `models::audio::vocoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderConfig {
    /// Width of the ConvNeXt backbone.
    pub dim: usize,
    /// Hidden width of each block's pointwise MLP.
    pub intermediate: usize,
    /// ConvNeXt blocks.
    pub layers: usize,
    /// STFT frames the head predicts per mel frame: the inverse STFT's hop is
    /// `hop / head_upsample` (its FFT size the mel's `n_fft`).
    pub head_upsample: usize,
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
    /// The default shapes for an embedding width: 80 mels at 16 kHz with hop 512, up to
    /// 320 frames (10.2 s), a 128-wide generator and a 6-block, 128-wide Vocos whose
    /// inverse STFT runs at hop 256 (75% overlap).
    pub fn new(embed_dim: usize) -> Self {
        Config {
            model_type: MODEL_TYPE.into(),
            mel: MelConfig {
                sample_rate: 16000,
                n_fft: 1024,
                hop: 512,
                n_mels: 80,
                max_frames: 320,
                fmin: 0.0,
                fmax: None,
                top_db: 80.0,
            },
            mel_mean: -40.0,
            mel_std: 20.0,
            generator: GeneratorConfig {
                embed_dim,
                alphabet: DEFAULT_ALPHABET.into(),
                dim: 128,
                encoder_layers: 3,
                duration_layers: 2,
                decoder_layers: 4,
                kernel: 5,
            },
            vocoder: VocoderConfig {
                dim: 128,
                intermediate: 384,
                layers: 6,
                head_upsample: 2,
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
        if m.sample_rate < 1000 || m.n_fft < 16 || m.hop == 0 || m.n_mels == 0 || m.max_frames < 2 {
            return Err(
                "mel: need sample_rate >= 1000, n_fft >= 16, hop, n_mels > 0, max_frames >= 2"
                    .into(),
            );
        }
        let g = &self.generator;
        if g.embed_dim == 0 || g.dim == 0 || g.alphabet.is_empty() {
            return Err("generator: embed_dim, dim and alphabet must be non-empty".into());
        }
        if g.kernel.is_multiple_of(2) {
            return Err(format!("generator.kernel {} must be odd", g.kernel));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(c) = g.alphabet.chars().find(|c| !seen.insert(*c)) {
            return Err(format!("generator.alphabet has {c:?} twice"));
        }
        let v = &self.vocoder;
        if v.dim == 0 || v.intermediate == 0 {
            return Err("vocoder.dim and vocoder.intermediate must be positive".into());
        }
        if v.head_upsample == 0 || !m.hop.is_multiple_of(v.head_upsample) {
            return Err(format!(
                "vocoder.head_upsample {} must divide the hop ({})",
                v.head_upsample, m.hop
            ));
        }
        // The inverse STFT needs its windows to overlap everywhere (NOLA).
        if m.hop / v.head_upsample > m.n_fft / 2 {
            return Err(format!(
                "vocoder: the inverse STFT hop ({}) must be at most n_fft / 2 ({})",
                m.hop / v.head_upsample,
                m.n_fft / 2
            ));
        }
        if self.mel_std.is_nan() || self.mel_std <= 0.0 || !self.mel_mean.is_finite() {
            return Err("mel_std must be positive and mel_mean finite".into());
        }
        Ok(())
    }
}
