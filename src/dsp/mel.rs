//! Mel filterbanks, mel spectrograms and decibels, as librosa 0.11 defines them
//! (`filters.mel`, `feature.melspectrogram`, `power_to_db`).
//!
//! This module owns [`MelExtractor`], the reusable log-mel front end: its FFT plan,
//! window, filterbank (stored sparse: each band is a contiguous run of bins) and
//! scratch buffers are built once, so that a worker extracting features from many clips
//! pays for them once. The free functions build one per call and give the same results.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::stft::{fill_frame, frame_count, window, StftParams};

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

/// Precision of the FFT.
type Real = f64;

/// One mel band: its weights over the contiguous bins `start..start + weights.len()`
/// (the triangle is zero everywhere else).
#[derive(Debug, Clone)]
struct Band {
    start: usize,
    weights: Vec<f32>,
}

/// The mel spectrogram front end for one [`MelParams`], reusable across signals.
///
/// Computes in f32, as librosa does for float32 audio (complex64 STFT, float32
/// filterbank and product); `tests/audio_parity.rs` holds it to librosa within 1e-5
/// relative and 1e-3 dB.
#[derive(Clone)]
pub struct MelExtractor {
    p: MelParams,
    fft: Arc<dyn RealToComplex<Real>>,
    win: Vec<Real>,
    bands: Vec<Band>,
    frame: Vec<Real>,
    spectrum: Vec<Complex<Real>>,
    scratch: Vec<Complex<Real>>,
    power: Vec<f32>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("params", &self.p)
            .finish()
    }
}

impl MelExtractor {
    /// Plans the FFT and builds the window and filterbank of `p`.
    pub fn new(p: &MelParams) -> Self {
        let n_fft = p.stft.n_fft;
        let bins = p.stft.bins();
        let fft = RealFftPlanner::<Real>::new().plan_fft_forward(n_fft);
        let fb = mel_filterbank(p.sr, n_fft, p.n_mels, p.fmin, p.fmax, p.htk, p.norm);
        let bands = fb
            .chunks_exact(bins)
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                Band {
                    start,
                    weights: row[start..end].to_vec(),
                }
            })
            .collect();
        MelExtractor {
            p: *p,
            win: window(&p.stft).into_iter().map(|w| w as Real).collect(),
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0f32; bins],
            fft,
            bands,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &MelParams {
        &self.p
    }

    /// Frames of a signal of `len` samples.
    pub fn frames(&self, len: usize) -> usize {
        frame_count(len, &self.p.stft)
    }

    /// The `[n_mels][frames]` mel spectrogram of `y` (row-major) and its frame count.
    pub fn mel(&mut self, y: &[f32]) -> (Vec<f32>, usize) {
        let frames = self.frames(y.len());
        let mut out = vec![0f32; self.p.n_mels * frames];
        self.mel_into(y, &mut out);
        (out, frames)
    }

    /// [`MelExtractor::mel`] then [`power_to_db`], in place.
    pub fn log_mel(
        &mut self,
        y: &[f32],
        reference: DbRef,
        amin: f64,
        top_db: Option<f64>,
    ) -> (Vec<f32>, usize) {
        let (mut mel, frames) = self.mel(y);
        power_to_db_in_place(&mut mel, reference, amin, top_db);
        (mel, frames)
    }

    /// Writes the mel spectrogram of `y` into `out`, which holds `n_mels * frames`.
    fn mel_into(&mut self, y: &[f32], out: &mut [f32]) {
        let frames = self.frames(y.len());
        debug_assert_eq!(out.len(), self.p.n_mels * frames);
        let power = self.p.power as f32;
        for t in 0..frames {
            fill_frame(&mut self.frame, y, &self.win, t, &self.p.stft);
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffer sizes come from the plan");
            // |X|² without hypot's overflow care: FFT outputs of audio are far from f32's
            // range.
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = (c.re * c.re + c.im * c.im) as f32;
            }
            if power == 1.0 {
                self.power.iter_mut().for_each(|p| *p = p.sqrt());
            } else if power != 2.0 {
                let e = power / 2.0;
                self.power.iter_mut().for_each(|p| *p = p.powf(e));
            }
            for (m, band) in self.bands.iter().enumerate() {
                let bins = &self.power[band.start..band.start + band.weights.len()];
                out[m * frames + t] = dot(&band.weights, bins);
            }
        }
    }
}

/// `Σ a·b` with eight independent partial sums, so the compiler can keep them in one
/// SIMD register (a single running sum would serialize every addition).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The `[n_mels][frames]` mel spectrogram of `y` (row-major) and its frame count
/// (a [`MelExtractor`] built for this call).
pub fn melspectrogram(y: &[f32], p: &MelParams) -> (Vec<f32>, usize) {
    MelExtractor::new(p).mel(y)
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
    let mut out = s.to_vec();
    power_to_db_in_place(&mut out, reference, amin, top_db);
    out
}

/// [`power_to_db`] in place. In f32 as librosa computes it for float32 input (numpy
/// keeps the array's dtype against Python scalars); f32 `log10` is within an ulp, about
/// 1e-5 dB at 100 dB.
pub fn power_to_db_in_place(s: &mut [f32], reference: DbRef, amin: f64, top_db: Option<f64>) {
    let amin = amin as f32;
    let r = match reference {
        DbRef::Value(v) => v.abs() as f32,
        DbRef::Max => s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)),
    };
    let offset = 10.0 * amin.max(r).log10();
    let mut max = f32::NEG_INFINITY;
    for v in s.iter_mut() {
        *v = 10.0 * amin.max(*v).log10() - offset;
        max = max.max(*v);
    }
    if let Some(top) = top_db {
        let floor = max - top as f32;
        for v in s.iter_mut() {
            *v = v.max(floor);
        }
    }
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
    fn a_reused_extractor_equals_a_fresh_one() {
        let sig =
            |f: f32, n: usize| -> Vec<f32> { (0..n).map(|i| (i as f32 * f).sin() * 0.3).collect() };
        let p = MelParams {
            stft: StftParams {
                win_length: 400,
                ..StftParams::new(512, 128)
            },
            ..MelParams::default_16k()
        };
        let mut ex = MelExtractor::new(&p);
        // Short signals (a single, fully padded frame) and long ones, in turn.
        for y in [sig(0.05, 5000), sig(0.3, 100), sig(0.01, 16000), vec![]] {
            let (mel, frames) = ex.mel(&y);
            assert_eq!(frames, 1 + y.len() / 128);
            assert_eq!((mel.clone(), frames), MelExtractor::new(&p).mel(&y));
            let db = ex.log_mel(&y, DbRef::Value(1.0), 1e-10, Some(80.0));
            assert_eq!(
                db.0,
                power_to_db(&mel, DbRef::Value(1.0), 1e-10, Some(80.0))
            );
        }
    }

    #[test]
    fn db_floors_at_top_db() {
        let db = power_to_db(&[1.0, 1e-12, 100.0], DbRef::Value(1.0), 1e-10, Some(80.0));
        assert_eq!(db, vec![0.0, -60.0, 20.0]);
        let db = power_to_db(&[1.0, 100.0], DbRef::Max, 1e-10, None);
        assert_eq!(db, vec![-20.0, 0.0]);
    }
}
