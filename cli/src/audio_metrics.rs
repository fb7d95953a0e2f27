//! `capstream audio-metrics REF.wav EST.wav`: every audio metric of an estimate
//! against a reference (definitions in `capstream::metrics::audio`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use capstream::dsp::resample::{resample, Quality};
use capstream::dsp::wav::read_wav;
use capstream::metrics::audio::{score_audio, AudioMetricParams, PowerFloor};
use capstream::train::log::num;

#[derive(Debug, Args)]
pub struct AudioMetricsArgs {
    /// The reference WAV.
    reference: PathBuf,
    /// The estimate WAV; resampled to the reference's rate when they differ.
    estimate: PathBuf,
    /// STFT size of the spectral metrics.
    #[arg(long, default_value_t = 1024)]
    n_fft: usize,
    /// STFT hop.
    #[arg(long, default_value_t = 256)]
    hop: usize,
    /// Mel bands of the MCD's mel spectrum.
    #[arg(long, default_value_t = 80)]
    n_mels: usize,
    /// Cepstral coefficients compared by MCD (c1..=cN; c0 excluded).
    #[arg(long, default_value_t = 13)]
    n_mcd: usize,
    /// LSD and MCD floor both spectra this many dB below the reference's peak (default:
    /// the pinned 1e-10 absolute floor).
    #[arg(long)]
    floor_db: Option<f64>,
    /// Longer files are refused (seconds).
    #[arg(long, default_value_t = 600.0)]
    max_seconds: f64,
    /// One JSON object instead of lines of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AudioMetricsArgs) -> Result<ExitCode> {
    let read = |p: &PathBuf| -> Result<(Vec<f32>, u32)> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let a = read_wav(&bytes, args.max_seconds).with_context(|| format!("{}", p.display()))?;
        Ok((a.mono(), a.sample_rate))
    };
    let (x, sr) = read(&args.reference)?;
    let (mut y, est_sr) = read(&args.estimate)?;
    let (x_len, y_len) = (x.len(), y.len());
    if est_sr != sr {
        y = resample(&[y], est_sr, sr, Quality::High)
            .map_err(anyhow::Error::msg)?
            .remove(0);
    }
    let p = AudioMetricParams {
        n_fft: args.n_fft,
        hop: args.hop,
        n_mels: args.n_mels,
        n_mcd: args.n_mcd,
        floor: match args.floor_db {
            Some(db) if db.is_finite() && db > 0.0 => PowerFloor::BelowPeak(db),
            Some(db) => anyhow::bail!("--floor-db must be a positive number of dB, not {db}"),
            None => PowerFloor::Absolute,
        },
    };
    if p.n_fft < 2 || p.hop == 0 || p.n_mels == 0 || p.n_mcd == 0 || p.n_mcd >= p.n_mels {
        anyhow::bail!("need n_fft >= 2, hop > 0, 0 < n_mcd < n_mels");
    }
    let s = score_audio(&x, &y, sr, &p);
    let out = serde_json::json!({
        "mse": num(s.mse),
        "mae": num(s.mae),
        "snr_db": num(s.snr_db),
        "spectral_convergence": num(s.spectral_convergence),
        "lsd_db": num(s.lsd_db),
        "mcd": num(s.mcd),
        "sample_rate": sr,
        "estimate_sample_rate": est_sr,
        "estimate_resampled": est_sr != sr,
        "reference_samples": x_len,
        "estimate_samples": y.len(),
        "estimate_samples_before_resampling": y_len,
        "compared_samples": s.compared_samples,
    });
    if args.json {
        println!("{out}");
    } else if let Some(obj) = out.as_object() {
        for (k, v) in obj {
            println!("{k}: {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
