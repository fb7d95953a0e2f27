//! `capstream features`: the audio front end from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use capstream::dsp::mel::DbRef;
use capstream::dsp::npy::encode_f32;
use capstream::dsp::resample::{Quality, ResamplerCache};
use capstream::dsp::wav::read_wav_mono;
use capstream::dsp::{MelExtractor, MelParams, MelScaleNorm, StftParams};

/// Log-mel features of a WAV file, written as a float32 `.npy` of shape (n_mels, frames).
/// Definitions follow librosa 0.11 (`feature.melspectrogram`, `power_to_db`).
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Input WAV files (PCM 8/16/24/32 or float; channels are averaged).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output `.npy` (one input).
    #[arg(long, conflicts_with = "out_dir")]
    out: Option<PathBuf>,
    /// Output folder: `<stem>.npy` per input (several inputs).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Analysis rate; the file is resampled first when it differs.
    #[arg(long, default_value_t = 16000)]
    sr: u32,
    #[arg(long, default_value_t = 1024)]
    n_fft: usize,
    #[arg(long, default_value_t = 256)]
    hop: usize,
    /// Window length (default: n_fft), centred in the frame.
    #[arg(long)]
    win: Option<usize>,
    #[arg(long, default_value_t = 80)]
    n_mels: usize,
    #[arg(long, default_value_t = 0.0)]
    fmin: f64,
    /// Default: sr / 2.
    #[arg(long)]
    fmax: Option<f64>,
    /// HTK mel scale instead of Slaney.
    #[arg(long)]
    htk: bool,
    /// Filter normalization: slaney or none.
    #[arg(long, default_value = "slaney")]
    norm: String,
    /// 2 = power, 1 = magnitude.
    #[arg(long, default_value_t = 2.0)]
    power: f64,
    /// Convert to decibels (`power_to_db`, ref 1, amin 1e-10).
    #[arg(long)]
    db: bool,
    /// With --db: floor at max - top_db.
    #[arg(long, default_value_t = 80.0)]
    top_db: f64,
    /// Longest accepted input, seconds.
    #[arg(long, default_value_t = 600.0)]
    max_seconds: f64,
    /// Resampling: fft (rubato's FFT resampler: the fastest, and the closest to
    /// librosa's soxr_hq in benches/audio) or fast, balanced, high (64/128/256-tap sinc).
    #[arg(long, default_value = "fft")]
    resample_quality: Quality,
}

pub fn features(a: FeaturesArgs) -> Result<ExitCode> {
    let win = a.win.unwrap_or(a.n_fft);
    if win > a.n_fft || a.n_fft == 0 || a.hop == 0 || a.n_mels == 0 {
        bail!("need 0 < n_fft, 0 < hop, 0 < n_mels and win <= n_fft");
    }
    let norm = match a.norm.as_str() {
        "slaney" => MelScaleNorm::Slaney,
        "none" => MelScaleNorm::None,
        other => bail!("--norm {other:?}: expected slaney or none"),
    };
    let p = MelParams {
        sr: a.sr,
        stft: StftParams {
            n_fft: a.n_fft,
            hop: a.hop,
            win_length: win,
            center: true,
        },
        n_mels: a.n_mels,
        fmin: a.fmin,
        fmax: a.fmax,
        htk: a.htk,
        norm,
        power: a.power,
    };
    let outputs: Vec<PathBuf> = match (&a.out, &a.out_dir) {
        (Some(o), None) if a.inputs.len() == 1 => vec![o.clone()],
        (None, Some(d)) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            a.inputs
                .iter()
                .map(|i| {
                    d.join(i.file_stem().unwrap_or_default())
                        .with_extension("npy")
                })
                .collect()
        }
        _ => bail!("give --out for one input or --out-dir for several"),
    };
    // Built once for the whole run: FFT plan, window, filterbank, and one resampler per
    // source rate met.
    let mut front = Front {
        mel: MelExtractor::new(&p),
        resamplers: ResamplerCache::new(),
    };
    let mut failures = 0;
    for (input, out) in a.inputs.iter().zip(&outputs) {
        match one_file(&a, &mut front, input, out) {
            Ok(frames) => println!("{}: ({}, {frames}) float32", out.display(), a.n_mels),
            Err(e) => {
                failures += 1;
                eprintln!("{}: {e:#}", input.display());
            }
        }
    }
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `features` reuses from one input to the next.
struct Front {
    mel: MelExtractor,
    resamplers: ResamplerCache,
}

fn one_file(
    a: &FeaturesArgs,
    front: &mut Front,
    input: &std::path::Path,
    out: &std::path::Path,
) -> Result<usize> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let (rate, y) = read_wav_mono(&bytes, a.max_seconds)?;
    drop(bytes);
    let y = front
        .resamplers
        .resample_mono(y, rate, a.sr, a.resample_quality)
        .map_err(anyhow::Error::msg)?;
    let (mel, frames) = if a.db {
        front
            .mel
            .log_mel(&y, DbRef::Value(1.0), 1e-10, Some(a.top_db))
    } else {
        front.mel.mel(&y)
    };
    std::fs::write(out, encode_f32(&mel, &[a.n_mels, frames]))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(frames)
}
