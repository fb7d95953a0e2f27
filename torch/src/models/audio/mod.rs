//! The neural audio path of the original design: image embedding → [`MelGenerator`] →
//! 80 × 64 log-mel → [`Vocoder`] → waveform.
//!
//! One checkpoint folder holds both networks: `config.json` ([`Config`]) and
//! `model.safetensors` with parameters under `generator.` and `vocoder.`. Both networks
//! work on normalized log-mel, `(dB − mel_mean) / mel_std`, with dB as librosa's
//! `power_to_db(ref=1, amin=1e-10, top_db)` of the mel power spectrogram. Training lives
//! in `train::audio`; this module only builds, loads, saves and runs the networks.

pub mod config;
pub mod generator;
pub mod vocoder;

pub use config::{Config, GeneratorConfig, MelConfig, VocoderConfig};
pub use generator::MelGenerator;
pub use vocoder::Vocoder;

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::TorchResult;
use capstream::dsp::{MelParams, MelScaleNorm, StftParams};
use capstream::error::{Error, Result};

/// Prefix of the generator's parameters.
pub const GENERATOR: &str = "generator";
/// Prefix of the vocoder's parameters.
pub const VOCODER: &str = "vocoder";
/// The weights file of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The config file of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";

/// Both networks and their config.
#[derive(Debug)]
pub struct NeuralAudio {
    vs: nn::VarStore,
    config: Config,
    generator: MelGenerator,
    vocoder: Vocoder,
}

/// What [`NeuralAudio::synthesize`] returns for one embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesized {
    /// Log-mel in dB, `[n_mels][frames]` row-major.
    pub mel_db: Vec<f32>,
    /// Waveform at `config.mel.sample_rate`, `(frames − 1) · hop` samples.
    pub waveform: Vec<f32>,
}

impl NeuralAudio {
    /// Fresh networks for `cfg`, initialised from libtorch's global generator (seed it
    /// with `tch::manual_seed` for reproducible training).
    pub fn new(cfg: &Config, device: Device) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let generator = MelGenerator::new(&root / GENERATOR, cfg);
        let vocoder = Vocoder::new(&root / VOCODER, cfg);
        Ok(NeuralAudio {
            vs,
            config: cfg.clone(),
            generator,
            vocoder,
        })
    }

    /// Loads a checkpoint folder (`config.json`, `model.safetensors`).
    pub fn from_dir(dir: &Path, device: Device) -> Result<Self> {
        let cfg = Config::from_file(&dir.join(CONFIG_FILE))?;
        let model = Self::new(&cfg, device)?;
        crate::models::weights::load(&model.vs, &dir.join(WEIGHTS_FILE))?;
        Ok(model)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg_path = dir.join(CONFIG_FILE);
        std::fs::write(&cfg_path, self.config.to_json()? + "\n")
            .map_err(|e| Error::io(&cfg_path, e))?;
        crate::models::weights::save(
            &crate::models::weights::named_variables(&self.vs),
            &dir.join(WEIGHTS_FILE),
        )
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the normalization statistics (set by training from its data).
    pub fn set_normalization(&mut self, mean: f32, std: f32) {
        self.config.mel_mean = mean;
        self.config.mel_std = std;
    }

    /// The variables (for optimizers and checkpoints).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The device the networks live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The generator.
    pub fn generator(&self) -> &MelGenerator {
        &self.generator
    }

    /// The vocoder.
    pub fn vocoder(&self) -> &Vocoder {
        &self.vocoder
    }

    /// dB → what the networks see.
    pub fn normalize(&self, db: &Tensor) -> Tensor {
        (db - f64::from(self.config.mel_mean)) / f64::from(self.config.mel_std)
    }

    /// What the networks see → dB.
    pub fn denormalize(&self, x: &Tensor) -> Tensor {
        x * f64::from(self.config.mel_std) + f64::from(self.config.mel_mean)
    }

    /// The mel definition as DSP parameters (for reference features and Griffin-Lim).
    pub fn mel_params(&self) -> MelParams {
        mel_params(&self.config.mel)
    }

    /// Embeddings → log-mel (dB) and waveform, without gradients. Every embedding must
    /// have `generator.embed_dim` values.
    pub fn synthesize(&self, embeddings: &[&[f32]]) -> Result<Vec<Synthesized>> {
        let dim = self.config.generator.embed_dim;
        if let Some(bad) = embeddings.iter().find(|e| e.len() != dim) {
            return Err(Error::Config(format!(
                "image embedding has {} values; the audio model needs {dim}",
                bad.len()
            )));
        }
        if embeddings.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        let flat: Vec<f32> = embeddings.iter().flat_map(|e| e.iter().copied()).collect();
        let x = Tensor::from_slice(&flat)
            .reshape([embeddings.len() as i64, dim as i64])
            .to_device(self.device());
        let mel = self.generator.forward(&x);
        let wave = self.vocoder.forward(&mel);
        let samples = self.config.mel.clip_samples() as i64;
        let mel_db = self
            .denormalize(&mel)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        let wave = wave
            .narrow(1, 0, samples)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        (0..embeddings.len() as i64)
            .map(|i| {
                Ok(Synthesized {
                    mel_db: Vec::<f32>::try_from(mel_db.get(i).flatten(0, -1)).torch()?,
                    waveform: Vec::<f32>::try_from(wave.get(i)).torch()?,
                })
            })
            .collect()
    }
}

impl NeuralAudio {
    /// The vocoder alone on a log-mel in dB, `[n_mels][frames]` row-major, of any
    /// length: `(frames − 1) · hop` samples (the clip a centred STFT of that many frames
    /// describes).
    pub fn vocode(&self, mel_db: &[f32], frames: usize) -> Result<Vec<f32>> {
        let n_mels = self.config.mel.n_mels;
        if frames == 0 || mel_db.len() != n_mels * frames {
            return Err(Error::Config(format!(
                "log-mel has {} values; the vocoder needs {n_mels} bands x {frames} frames",
                mel_db.len()
            )));
        }
        let _guard = tch::no_grad_guard();
        let x = Tensor::from_slice(mel_db)
            .reshape([1, n_mels as i64, frames as i64])
            .to_device(self.device());
        let samples = ((frames - 1) * self.config.mel.hop) as i64;
        let y = self
            .vocoder
            .forward(&self.normalize(&x))
            .narrow(1, 0, samples)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        Vec::<f32>::try_from(y.get(0)).torch()
    }
}

/// The DSP parameters of a [`MelConfig`]: Slaney mels, power 2, centred frames.
pub fn mel_params(m: &MelConfig) -> MelParams {
    MelParams {
        sr: m.sample_rate,
        stft: StftParams::new(m.n_fft, m.hop),
        n_mels: m.n_mels,
        fmin: m.fmin,
        fmax: m.fmax,
        htk: false,
        norm: MelScaleNorm::Slaney,
        power: 2.0,
    }
}
