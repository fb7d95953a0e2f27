//! `capstream vocode`: log-mel `.npy` files → WAV, with a neural audio checkpoint's
//! vocoder or with Griffin-Lim. The log-mels must follow the checkpoint's definition
//! (`config.json` `mel`), e.g. `capstream features --sr 16000 --n-fft 1024 --hop 512
//! --n-mels 80 --db` for the default one.
//!
//! The arguments only: the command runs on the model side (`capstream-torch`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Vocoder {
    Neural,
    GriffinLim,
}

#[derive(Debug, Args)]
pub struct VocodeArgs {
    /// Neural audio checkpoint folder (config.json, model.safetensors); its `mel`
    /// section defines the expected log-mel.
    #[arg(long)]
    pub model: PathBuf,
    /// `neural` (the checkpoint's vocoder) or `griffin-lim`.
    #[arg(long, value_enum, default_value = "neural")]
    pub vocoder: Vocoder,
    #[arg(long, default_value_t = 32)]
    pub griffin_lim_iters: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder: IN.npy → DIR/IN.wav.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// float32 or float64 `.npy` files of shape (n_mels, frames), dB.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}
