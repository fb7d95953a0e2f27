//! Audio comparison metrics between a reference `x` and an estimate `x̂`.
//!
//! There is no canonical package for these, so the definitions are pinned here (see
//! `shared/reference/metrics.md` §4c for the sources):
//! - **MSE** = mean((x − x̂)²), **MAE** = mean(|x − x̂|).
//! - **SNR** = 10·log10((Σx² + ε) / (Σ(x − x̂)² + ε)) dB with ε = f32 machine epsilon,
//!   as torchmetrics' `signal_noise_ratio` (`zero_mean=False`): finite everywhere; an
//!   exact estimate of a non-silent reference gives a large positive value, silence
//!   against silence 0 dB.
//! - **Spectral convergence** = ‖|S| − |Ŝ|‖_F / ‖|S|‖_F over STFT magnitudes, the
//!   reference in the denominator (auraloss). Undefined (NaN, reported as `null`) when the
//!   reference is silent.
//! - **LSD** = mean over frames of sqrt(mean over bins of (10·log10(|S|² + ε) −
//!   10·log10(|Ŝ|² + ε))²) dB, ε = 1e-10.
//! - **MCD** (mel-cepstral distortion) = mean over frames of
//!   (10√2 / ln 10)·sqrt(Σ_{d=1..13} (c_d − ĉ_d)²), where c = DCT-II (orthonormal) of the
//!   natural log of the mel power spectrum (Slaney mels, `n_mels` bands, floor 1e-10);
//!   c0 (energy) is excluded; frames compared one to one (no time warping).
//! - **Power floor of LSD and MCD.** The pinned definitions above floor powers at
//!   1e-10 absolute ([`PowerFloor::Absolute`], the default, kept for the record and
//!   for parity). A zero-padded tail then scores as a 100 dB gap against any faint
//!   noise in the estimate, so padding dominates short clips. [`PowerFloor::BelowPeak`]
//!   floors both spectra at the *reference's* peak power minus `db` decibels (per
//!   metric: the peak STFT bin for LSD, the peak mel band for MCD), so everything
//!   quieter than that counts as equal silence. capstream's pipelines and model
//!   reports use `BelowPeak(80.0)`, librosa's `top_db`.
//! - **Log-mel metrics** ([`log_mel_scores`]): the original design's four figures (MSE
//!   0.0014, SNR 26.8 dB, spectral convergence 0.043), which only fit values in [0, 1],
//!   so they are pinned on log-mels normalized that way: `n = clamp((dB − (peak −
//!   range)) / range, 0, 1)` with `peak` the reference's loudest bin and `range` its
//!   `top_db` (80), for both matrices. Then MSE and MAE over the matrix, SNR =
//!   10·log10(Σn² / Σ(n − n̂)²) and spectral convergence ‖n − n̂‖_F / ‖n‖_F, each
//!   treating the matrix as one signal (ε as for waveforms).
//!
//! STFTs: periodic Hann, `center` with zero padding (librosa), `n_fft`/`hop` from
//! [`AudioMetricParams`] (default 1024/256). Signals of different lengths are compared
//! over the shorter one's length; callers report both lengths.

use crate::dsp::mel::{melspectrogram, MelParams, MelScaleNorm};
use crate::dsp::stft::{stft, StftParams};

const LSD_EPS: f64 = 1e-10;
const SNR_EPS: f64 = f32::EPSILON as f64;
const MEL_FLOOR: f64 = 1e-10;
/// `10·√2 / ln 10`: MCD's constant for natural-log cepstra.
pub const MCD_K: f64 = 6.141_851_463_713_754;

/// What LSD and MCD floor powers at before taking logs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PowerFloor {
    /// 1e-10 absolute: the pinned definition.
    #[default]
    Absolute,
    /// The reference's peak power minus this many dB, for both spectra.
    BelowPeak(f64),
}

impl PowerFloor {
    /// The floor for spectra whose reference peak power is `peak`.
    fn floor(self, peak: f64) -> f64 {
        match self {
            PowerFloor::Absolute => LSD_EPS,
            // A silent reference keeps the absolute floor: there is no peak to be
            // relative to.
            PowerFloor::BelowPeak(db) if peak > 0.0 => peak * 10f64.powf(-db / 10.0),
            PowerFloor::BelowPeak(_) => LSD_EPS,
        }
    }

    /// `power + 1e-10` (the pinned form) or `max(power, floor)`.
    fn apply(self, power: f64, floor: f64) -> f64 {
        match self {
            PowerFloor::Absolute => power + floor,
            PowerFloor::BelowPeak(_) => power.max(floor),
        }
    }
}

/// Analysis settings of the spectral metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioMetricParams {
    /// FFT size (window = FFT size).
    pub n_fft: usize,
    /// Hop.
    pub hop: usize,
    /// Mel bands of the MCD's mel spectrum.
    pub n_mels: usize,
    /// Cepstral coefficients compared by MCD (c1..=c_n).
    pub n_mcd: usize,
    /// Power floor of LSD and MCD.
    pub floor: PowerFloor,
}

impl Default for AudioMetricParams {
    fn default() -> Self {
        AudioMetricParams {
            n_fft: 1024,
            hop: 256,
            n_mels: 80,
            n_mcd: 13,
            floor: PowerFloor::Absolute,
        }
    }
}

/// Every audio metric of one estimate against one reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioScores {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Signal-to-noise ratio, dB.
    pub snr_db: f64,
    /// Spectral convergence (NaN for a silent reference).
    pub spectral_convergence: f64,
    /// Log-spectral distance, dB.
    pub lsd_db: f64,
    /// Mel-cepstral distortion, dB.
    pub mcd: f64,
    /// Samples compared (the shorter length).
    pub compared_samples: usize,
}

impl AudioScores {
    /// Short names of [`AudioScores::values`], in its order; the score stage's columns
    /// and the training reports follow this order.
    pub const NAMES: [&'static str; 6] = ["mse", "mae", "snr_db", "sc", "lsd_db", "mcd"];

    /// The six metrics in [`AudioScores::NAMES`] order.
    pub fn values(&self) -> [f64; 6] {
        [
            self.mse,
            self.mae,
            self.snr_db,
            self.spectral_convergence,
            self.lsd_db,
            self.mcd,
        ]
    }
}

/// All metrics of `estimate` against `reference` at sample rate `sr`.
pub fn score_audio(
    reference: &[f32],
    estimate: &[f32],
    sr: u32,
    p: &AudioMetricParams,
) -> AudioScores {
    let (x, y) = common(reference, estimate);
    let stft_p = StftParams::new(p.n_fft, p.hop);
    AudioScores {
        mse: mse(x, y),
        mae: mae(x, y),
        snr_db: snr_db(x, y),
        spectral_convergence: spectral_convergence(x, y, &stft_p),
        lsd_db: lsd_db_floored(x, y, &stft_p, p.floor),
        mcd: mcd(x, y, sr, p),
        compared_samples: x.len(),
    }
}

fn common<'a>(x: &'a [f32], y: &'a [f32]) -> (&'a [f32], &'a [f32]) {
    let n = x.len().min(y.len());
    (&x[..n], &y[..n])
}

/// Mean squared error; 0 for empty input.
pub fn mse(x: &[f32], y: &[f32]) -> f64 {
    let (x, y) = common(x, y);
    if x.is_empty() {
        return 0.0;
    }
    x.iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / x.len() as f64
}

/// Mean absolute error; 0 for empty input.
pub fn mae(x: &[f32], y: &[f32]) -> f64 {
    let (x, y) = common(x, y);
    if x.is_empty() {
        return 0.0;
    }
    x.iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
        .sum::<f64>()
        / x.len() as f64
}

/// Signal-to-noise ratio of `estimate` against `reference`, dB (torchmetrics' ε form).
pub fn snr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let (x, y) = common(reference, estimate);
    let signal: f64 = x.iter().map(|&a| f64::from(a).powi(2)).sum();
    let noise: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * ((signal + SNR_EPS) / (noise + SNR_EPS)).log10()
}

fn magnitudes(y: &[f32], p: &StftParams) -> Vec<f64> {
    stft(y, p).magnitude_pow(1.0)
}

/// Spectral convergence of `estimate` against `reference` with STFT `p`; NaN when the
/// reference is silent.
pub fn spectral_convergence(reference: &[f32], estimate: &[f32], p: &StftParams) -> f64 {
    let (x, y) = common(reference, estimate);
    let (s, e) = (magnitudes(x, p), magnitudes(y, p));
    let num: f64 = s.iter().zip(&e).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = s.iter().map(|a| a * a).sum();
    if den == 0.0 {
        return f64::NAN;
    }
    (num / den).sqrt()
}

/// Log-spectral distance of `estimate` against `reference` with STFT `p`, dB (the
/// pinned 1e-10 floor).
pub fn lsd_db(reference: &[f32], estimate: &[f32], p: &StftParams) -> f64 {
    lsd_db_floored(reference, estimate, p, PowerFloor::Absolute)
}

/// Log-spectral distance with the power floor `floor`, dB.
pub fn lsd_db_floored(
    reference: &[f32],
    estimate: &[f32],
    p: &StftParams,
    floor: PowerFloor,
) -> f64 {
    let (x, y) = common(reference, estimate);
    let (a, b) = (stft(x, p).magnitude_pow(2.0), stft(y, p).magnitude_pow(2.0));
    let bins = p.bins();
    let frames = a.len() / bins.max(1);
    if frames == 0 {
        return 0.0;
    }
    let eps = floor.floor(a.iter().copied().fold(0.0, f64::max));
    // magnitude_pow is bin-major: [bins][frames].
    let mut total = 0.0;
    for t in 0..frames {
        let mut acc = 0.0;
        for f in 0..bins {
            let (u, v) = (a[f * frames + t], b[f * frames + t]);
            acc +=
                (10.0 * floor.apply(u, eps).log10() - 10.0 * floor.apply(v, eps).log10()).powi(2);
        }
        total += (acc / bins as f64).sqrt();
    }
    total / frames as f64
}

/// The mel power spectrum `[n_mels][frames]` the MCD reads, and its frame count.
fn mcd_mel(y: &[f32], sr: u32, p: &AudioMetricParams) -> (Vec<f32>, usize) {
    let mp = MelParams {
        sr,
        stft: StftParams::new(p.n_fft, p.hop),
        n_mels: p.n_mels,
        fmin: 0.0,
        fmax: None,
        htk: false,
        norm: MelScaleNorm::Slaney,
        power: 2.0,
    };
    melspectrogram(y, &mp)
}

/// Mel cepstra `[frames][n_mcd + 1]` (c0 first) of a mel power spectrum, powers
/// clamped at `floor` below.
fn mel_cepstra(mel: &[f32], frames: usize, p: &AudioMetricParams, floor: f64) -> Vec<Vec<f64>> {
    let m = p.n_mels;
    let n = (p.n_mcd + 1).min(m);
    // Orthonormal DCT-II basis, as scipy.fft.dct(type=2, norm="ortho").
    let basis: Vec<f64> = (0..n)
        .flat_map(|k| {
            let scale = if k == 0 {
                (1.0 / m as f64).sqrt()
            } else {
                (2.0 / m as f64).sqrt()
            };
            (0..m).map(move |i| {
                scale
                    * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * m) as f64).cos()
            })
        })
        .collect();
    (0..frames)
        .map(|t| {
            let logmel: Vec<f64> = (0..m)
                .map(|b| f64::from(mel[b * frames + t]).max(floor).ln())
                .collect();
            (0..n)
                .map(|k| (0..m).map(|i| basis[k * m + i] * logmel[i]).sum())
                .collect()
        })
        .collect()
}

/// Mel-cepstral distortion, dB (c0 excluded; frames compared one to one).
pub fn mcd(reference: &[f32], estimate: &[f32], sr: u32, p: &AudioMetricParams) -> f64 {
    let (x, y) = common(reference, estimate);
    let ((mx, fx), (my, fy)) = (mcd_mel(x, sr, p), mcd_mel(y, sr, p));
    mcd_of_mels(&mx, fx, &my, fy, p)
}

/// Mel-cepstral distortion of two mel power spectra (`[p.n_mels][frames]` each, as
/// [`mcd`] computes them from waveforms), frames compared one to one over the shorter;
/// `p.floor` applies as in [`mcd`]. For generated log-mels, whose waveform is not the
/// question.
pub fn mcd_of_mels(
    reference: &[f32],
    ref_frames: usize,
    estimate: &[f32],
    est_frames: usize,
    p: &AudioMetricParams,
) -> f64 {
    let floor = match p.floor {
        PowerFloor::Absolute => MEL_FLOOR,
        f => f.floor(reference.iter().map(|&v| f64::from(v)).fold(0.0, f64::max)),
    };
    let a = mel_cepstra(reference, ref_frames, p, floor);
    let b = mel_cepstra(estimate, est_frames, p, floor);
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let per_frame: f64 = a
        .iter()
        .zip(&b)
        .map(|(u, v)| {
            MCD_K
                * u.iter()
                    .zip(v)
                    .skip(1)
                    .map(|(c, d)| (c - d).powi(2))
                    .sum::<f64>()
                    .sqrt()
        })
        .sum();
    per_frame / n as f64
}

/// The original design's figures on normalized log-mels (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogMelScores {
    /// Mean squared error of the normalized matrices.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// SNR of the matrix as a signal, dB.
    pub snr_db: f64,
    /// ‖n − n̂‖_F / ‖n‖_F (NaN when the reference is all floor).
    pub spectral_convergence: f64,
}

/// Log-mel figures of `estimate_db` against `reference_db`: dB matrices of the same
/// layout (extra values in the longer one are ignored), normalized over `range` dB
/// below the reference's peak.
pub fn log_mel_scores(reference_db: &[f32], estimate_db: &[f32], range: f64) -> LogMelScores {
    let (x, y) = common(reference_db, estimate_db);
    let peak = x
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max);
    let norm = |v: f32| ((f64::from(v) - (peak - range)) / range).clamp(0.0, 1.0) as f32;
    let (nx, ny): (Vec<f32>, Vec<f32>) = x.iter().zip(y).map(|(&a, &b)| (norm(a), norm(b))).unzip();
    let signal: f64 = nx.iter().map(|&a| f64::from(a).powi(2)).sum();
    let noise: f64 = nx
        .iter()
        .zip(&ny)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    LogMelScores {
        mse: mse(&nx, &ny),
        mae: mae(&nx, &ny),
        snr_db: snr_db(&nx, &ny),
        spectral_convergence: if signal == 0.0 {
            f64::NAN
        } else {
            (noise / signal).sqrt()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of metrics.md §4c ("E-audio").
    fn e_audio() -> (Vec<f32>, Vec<f32>) {
        let sr = 22050.0;
        let tau = std::f64::consts::TAU;
        let y: Vec<f64> = (0..4096)
            .map(|n| {
                let n = n as f64;
                0.5 * (tau * 440.0 * n / sr).sin() + 0.25 * (tau * 3000.0 * n / sr).sin()
            })
            .collect();
        let yh: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(n, v)| v + 0.01 * (tau * 1000.0 * n as f64 / sr).cos())
            .collect();
        (
            y.iter().map(|&v| v as f32).collect(),
            yh.iter().map(|&v| v as f32).collect(),
        )
    }

    #[test]
    fn reference_values() {
        let (y, yh) = e_audio();
        let p = StftParams::new(2048, 512);
        assert!((mse(&y, &yh) - 5.0009645089e-05).abs() < 1e-9);
        assert!((mae(&y, &yh) - 6.3675475367e-03).abs() < 1e-8);
        // torchmetrics-eps style: 34.946442.
        assert!((snr_db(&y, &yh) - 34.946442).abs() < 1e-4);
        assert!((spectral_convergence(&y, &yh, &p) - 0.01665951).abs() < 1e-5);
        assert!((lsd_db(&y, &yh, &p) - 3.687879).abs() < 1e-3);
    }

    #[test]
    fn defined_at_the_edges() {
        let (y, _) = e_audio();
        let silence = vec![0f32; 4096];
        let p = StftParams::new(512, 128);
        assert_eq!(mse(&y, &y), 0.0);
        let exact = snr_db(&y, &y);
        assert!(exact.is_finite() && exact > 90.0, "{exact}");
        assert_eq!(snr_db(&silence, &silence), 0.0);
        assert!(snr_db(&silence, &y) < -90.0);
        assert_eq!(spectral_convergence(&y, &y, &p), 0.0);
        assert!(spectral_convergence(&silence, &y, &p).is_nan());
        assert_eq!(lsd_db(&silence, &silence, &p), 0.0);
        let q = AudioMetricParams::default();
        assert_eq!(mcd(&y, &y, 22050, &q), 0.0);
        assert!(mcd(&y, &silence, 22050, &q) > 0.0);
    }

    /// The reason for the relative floor: a tail of zeros in the reference against a
    /// faint hiss in the estimate. Under the absolute floor the tail dominates LSD and
    /// MCD; under BelowPeak(80) a hiss 100 dB under the peak counts as silence, so the
    /// padded pair scores as the unpadded one.
    #[test]
    fn relative_floor_ignores_silent_padding_below_the_range() {
        let (y, yh) = e_audio();
        let p = StftParams::new(1024, 256);
        let pad = |v: &[f32], hiss: f32| -> Vec<f32> {
            let mut out = v.to_vec();
            out.extend((0..8192).map(|n| hiss * if n % 2 == 0 { 1.0 } else { -1.0 }));
            out
        };
        let (ry, ryh) = (pad(&y, 0.0), pad(&yh, 1e-5));
        let rel = PowerFloor::BelowPeak(80.0);
        let short = lsd_db_floored(&y, &yh, &p, rel);
        let long = lsd_db_floored(&ry, &ryh, &p, rel);
        let long_abs = lsd_db_floored(&ry, &ryh, &p, PowerFloor::Absolute);
        // The padded frames add (near) zero distance, so the mean can only shrink.
        assert!(long <= short + 1e-9, "{long} vs {short}");
        assert!(
            long_abs > 2.0 * long,
            "absolute {long_abs} vs relative {long}"
        );
        let q = AudioMetricParams {
            floor: rel,
            ..AudioMetricParams::default()
        };
        let q_abs = AudioMetricParams::default();
        let m_rel = mcd(&ry, &ryh, 22050, &q);
        let m_abs = mcd(&ry, &ryh, 22050, &q_abs);
        assert!(m_rel <= mcd(&y, &yh, 22050, &q) + 1e-9, "{m_rel}");
        assert!(m_abs > 1.5 * m_rel, "absolute {m_abs} vs relative {m_rel}");
        // The absolute definition is the pinned one, unchanged.
        assert_eq!(lsd_db(&ry, &ryh, &p), long_abs);
    }

    #[test]
    fn log_mel_scores_normalize_below_the_reference_peak() {
        // Reference: peak 0 dB and a floor at -80; estimate 8 dB low everywhere
        // above the floor, clamped at it.
        let r = vec![0.0f32, -40.0, -80.0, -100.0];
        let e = vec![-8.0f32, -48.0, -88.0, -100.0];
        let s = log_mel_scores(&r, &e, 80.0);
        // Normalized: r = [1, .5, 0, 0], e = [.9, .4, 0, 0].
        assert!((s.mse - (0.01 + 0.01) / 4.0).abs() < 1e-6, "{s:?}");
        assert!((s.mae - 0.2 / 4.0).abs() < 1e-6);
        let sc = (0.02f64 / 1.25).sqrt();
        assert!((s.spectral_convergence - sc).abs() < 1e-6);
        assert!((s.snr_db - 10.0 * (1.25f64 / 0.02).log10()).abs() < 1e-4);
        assert_eq!(log_mel_scores(&r, &r, 80.0).mse, 0.0);
    }
}
