//! Mel filterbanks, mel spectrograms and decibels, as librosa 0.11 defines them
//! (`filters.mel`, `feature.melspectrogram`, `power_to_db`).

use super::stft::{stft, StftParams};

/// Filter normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScaleNorm {
    /// Each triangle divided by its width in Hz (`norm='slaney'`): constant energy.
    Slaney,
    /// Peak 1 (`norm=None`).
    None,
}

/// Everything that defines a mel spectrogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelParams {
    /// Sample rate of the input.
    pub sr: u32,
    /// Frames of the STFT.
    pub stft: StftParams,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest frequency, Hz.
    pub fmin: f64,
    /// Highest frequency, Hz (`None` = `sr / 2`).
    pub fmax: Option<f64>,
    /// HTK's mel formula instead of Slaney's.
    pub htk: bool,
    /// Filter normalization.
    pub norm: MelScaleNorm,
    /// Exponent of the magnitude: 2 = power, 1 = magnitude.
    pub power: f64,
}

impl MelParams {
    /// The original design's features: 16 kHz, n_fft 1024, hop 256, 80 Slaney bands.
    pub fn default_16k() -> Self {
        MelParams {
            sr: 16000,
            stft: StftParams::new(1024, 256),
            n_mels: 80,
            fmin: 0.0,
            fmax: None,
            htk: false,
            norm: MelScaleNorm::Slaney,
            power: 2.0,
        }
    }
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz → mel (Slaney: linear below 1 kHz, logarithmic above; or HTK).
pub fn hz_to_mel(f: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + f / 700.0).log10();
    }
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep()
    } else {
        f / F_SP
    }
}

/// Mel → Hz.
pub fn mel_to_hz(m: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    }
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// `n` frequencies evenly spaced in mel between `fmin` and `fmax` (numpy `linspace`).
pub fn mel_frequencies(n: usize, fmin: f64, fmax: f64, htk: bool) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
    let step = if n > 1 {
        (hi - lo) / (n - 1) as f64
    } else {
        0.0
    };
    (0..n)
        .map(|i| {
            let m = if i + 1 == n && n > 1 {
                hi
            } else {
                i as f64 * step + lo
            };
            mel_to_hz(m, htk)
        })
        .collect()
}

/// The `[n_mels][n_fft/2 + 1]` filterbank, row-major, f32 as librosa stores it.
pub fn mel_filterbank(
    sr: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: Option<f64>,
    htk: bool,
    norm: MelScaleNorm,
) -> Vec<f32> {
    let fmax = fmax.unwrap_or(f64::from(sr) / 2.0);
    let bins = n_fft / 2 + 1;
    let val = 1.0 / (n_fft as f64 * (1.0 / f64::from(sr)));
    let fftfreqs: Vec<f64> = (0..bins).map(|k| k as f64 * val).collect();
    let mel_f = mel_frequencies(n_mels + 2, fmin, fmax, htk);
    let mut w = vec![0f32; n_mels * bins];
    for i in 0..n_mels {
        let (d0, d1) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (k, &f) in fftfreqs.iter().enumerate() {
            let lower = -(mel_f[i] - f) / d0;
            let upper = (mel_f[i + 2] - f) / d1;
            // librosa computes the triangle in f64, stores it in f32, then scales the
            // f32 array by the f64 norm in place.
            let tri = 0f64.max(lower.min(upper)) as f32;
            w[i * bins + k] = match norm {
                MelScaleNorm::Slaney => (f64::from(tri) * enorm) as f32,
                MelScaleNorm::None => tri,
            };
        }
    }
    w
}

/// The `[n_mels][frames]` mel spectrogram of `y` (row-major) and its frame count.
pub fn melspectrogram(y: &[f32], p: &MelParams) -> (Vec<f32>, usize) {
    let spec = stft(y, &p.stft);
    let s = spec.magnitude_pow(p.power);
    let fb = mel_filterbank(p.sr, p.stft.n_fft, p.n_mels, p.fmin, p.fmax, p.htk, p.norm);
    let (bins, frames) = (spec.bins, spec.frames);
    let mut out = vec![0f32; p.n_mels * frames];
    let mut acc = vec![0f64; frames];
    for m in 0..p.n_mels {
        acc.fill(0.0);
        for f in 0..bins {
            let w = f64::from(fb[m * bins + f]);
            if w == 0.0 {
                continue;
            }
            let row = &s[f * frames..(f + 1) * frames];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += w * v;
            }
        }
        for (o, &a) in out[m * frames..(m + 1) * frames].iter_mut().zip(&acc) {
            *o = a as f32;
        }
    }
    (out, frames)
}

/// Reference of [`power_to_db`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DbRef {
    /// A fixed reference power.
    Value(f64),
    /// The largest value of the input (`ref=np.max`).
    Max,
}

/// `10 log10(max(amin, S) / max(amin, ref))`, floored at `max - top_db` when given.
pub fn power_to_db(s: &[f32], reference: DbRef, amin: f64, top_db: Option<f64>) -> Vec<f32> {
    let r = match reference {
        DbRef::Value(v) => v.abs(),
        DbRef::Max => s
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v))),
    };
    let offset = 10.0 * amin.max(r).log10();
    let mut out: Vec<f64> = s
        .iter()
        .map(|&v| 10.0 * amin.max(f64::from(v)).log10() - offset)
        .collect();
    if let Some(top) = top_db {
        let max = out.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        for v in &mut out {
            *v = v.max(max - top);
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_frequencies_match_librosa_values() {
        // metrics.md §4a: first values of mel_frequencies(130, 0, 11025).
        let s = mel_frequencies(130, 0.0, 11025.0, false);
        assert!((s[1] - 25.793589).abs() < 1e-5, "{}", s[1]);
        let h = mel_frequencies(130, 0.0, 11025.0, true);
        assert!((h[1] - 15.461925).abs() < 1e-5, "{}", h[1]);
        assert!((s[129] - 11025.0).abs() < 1e-6);
    }

    #[test]
    fn db_floors_at_top_db() {
        let db = power_to_db(&[1.0, 1e-12, 100.0], DbRef::Value(1.0), 1e-10, Some(80.0));
        assert_eq!(db, vec![0.0, -60.0, 20.0]);
        let db = power_to_db(&[1.0, 100.0], DbRef::Max, 1e-10, None);
        assert_eq!(db, vec![-20.0, 0.0]);
    }
}
