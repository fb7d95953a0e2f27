//! The neural audio path of the original design, conditioned on the caption as well:
//! caption text + image embedding → [`MelGenerator`] → 80-band log-mel → [`Vocoder`] →
//! waveform.
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
pub use generator::{FramePlan, MelGenerator};
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

/// What [`NeuralAudio::synthesize`] returns for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesized {
    /// Log-mel in dB, `[n_mels][frames]` row-major.
    pub mel_db: Vec<f32>,
    /// Its frames.
    pub frames: usize,
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

    /// Caption texts and their image embeddings → log-mel (dB) and waveform, without
    /// gradients. Every embedding must have `generator.embed_dim` values; each item's
    /// length is the generator's choice, at most `mel.max_frames` frames.
    pub fn synthesize(&self, items: &[(&[f32], &str)]) -> Result<Vec<Synthesized>> {
        let dim = self.config.generator.embed_dim;
        if let Some((bad, _)) = items.iter().find(|(e, _)| e.len() != dim) {
            return Err(Error::Config(format!(
                "image embedding has {} values; the audio model needs {dim}",
                bad.len()
            )));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        let dev = self.device();
        let g = &self.config.generator;
        let encoded: Vec<Vec<i64>> = items.iter().map(|(_, t)| g.encode(t).0).collect();
        let batch = TextBatch::new(&encoded, dev);
        let flat: Vec<f32> = items.iter().flat_map(|(e, _)| e.iter().copied()).collect();
        let emb = Tensor::from_slice(&flat)
            .reshape([items.len() as i64, dim as i64])
            .to_device(dev);
        let states = self.generator.encode(&batch.ids, &emb, &batch.mask);
        let log_d = self.generator.log_durations(&states, &batch.mask);
        let durations =
            MelGenerator::durations_from(&log_d, &batch.lengths, self.config.mel.max_frames);
        let plan = FramePlan::new(&durations, dev);
        let mel = self.generator.decode(&states, &plan);
        let n_mels = self.config.mel.n_mels as i64;
        let mut out = Vec::with_capacity(items.len());
        for (i, &frames) in plan.frames.iter().enumerate() {
            let m = mel.get(i as i64).narrow(1, 0, frames as i64);
            let wave = self.vocoder.forward(&m.unsqueeze(0)).get(0);
            let db = self
                .denormalize(&m)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            debug_assert_eq!(db.size(), [n_mels, frames as i64]);
            out.push(Synthesized {
                mel_db: Vec::<f32>::try_from(db.flatten(0, -1)).torch()?,
                frames,
                waveform: Vec::<f32>::try_from(wave.to_kind(Kind::Float).to_device(Device::Cpu))
                    .torch()?,
            });
        }
        Ok(out)
    }
}

/// Character ids of a batch of texts, right-padded with [`config::PAD_ID`].
#[derive(Debug)]
pub struct TextBatch {
    /// `[batch, chars]`.
    pub ids: Tensor,
    /// `[batch, chars, 1]`: 1 for real characters.
    pub mask: Tensor,
    /// Real characters of each item.
    pub lengths: Vec<usize>,
}

impl TextBatch {
    /// Pads `encoded` (from [`GeneratorConfig::encode`]) into tensors on `device`.
    pub fn new(encoded: &[Vec<i64>], device: Device) -> Self {
        let lengths: Vec<usize> = encoded.iter().map(Vec::len).collect();
        let l = lengths.iter().copied().max().unwrap_or(0).max(1);
        let b = encoded.len();
        let mut ids = vec![config::PAD_ID; b * l];
        let mut mask = vec![0f32; b * l];
        for (r, e) in encoded.iter().enumerate() {
            ids[r * l..r * l + e.len()].copy_from_slice(e);
            mask[r * l..r * l + e.len()].fill(1.0);
        }
        TextBatch {
            ids: Tensor::from_slice(&ids)
                .reshape([b as i64, l as i64])
                .to_device(device),
            mask: Tensor::from_slice(&mask)
                .reshape([b as i64, l as i64, 1])
                .to_device(device),
            lengths,
        }
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
