//! STFT and inverse STFT as librosa computes them (`center=True` pads `n_fft / 2` zeros
//! on each side, periodic Hann window centre-padded to `n_fft`, unscaled real FFT).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// Frame settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftParams {
    /// FFT size.
    pub n_fft: usize,
    /// Samples between frames.
    pub hop: usize,
    /// Window length (≤ `n_fft`), centred in the frame.
    pub win_length: usize,
    /// Pad `n_fft / 2` zeros at both ends so frame `t` is centred on sample `t * hop`.
    pub center: bool,
}

impl StftParams {
    /// `n_fft`, `hop`, window = `n_fft`, centred.
    pub fn new(n_fft: usize, hop: usize) -> Self {
        StftParams {
            n_fft,
            hop,
            win_length: n_fft,
            center: true,
        }
    }

    /// Frequency bins per frame.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }
}

/// A complex spectrogram, frame-major: `data[t * bins + f]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    /// Frames.
    pub frames: usize,
    /// Bins per frame.
    pub bins: usize,
    /// Values.
    pub data: Vec<Complex<f64>>,
}

impl Spectrogram {
    /// `|X|^power`, bin-major `[bins][frames]` as librosa lays it out.
    pub fn magnitude_pow(&self, power: f64) -> Vec<f64> {
        let mut out = vec![0f64; self.bins * self.frames];
        for t in 0..self.frames {
            for f in 0..self.bins {
                let c = self.data[t * self.bins + f];
                // |X|² without hypot's overflow care: FFT outputs of audio are far
                // from f64's range, and this is the hot loop of every mel spectrogram.
                let p2 = c.re * c.re + c.im * c.im;
                out[f * self.frames + t] = if power == 2.0 {
                    p2
                } else if power == 1.0 {
                    p2.sqrt()
                } else {
                    p2.powf(power / 2.0)
                };
            }
        }
        out
    }
}

/// The periodic Hann window of `win_length`, zero-padded to `n_fft` in the middle
/// (scipy's `get_window('hann', N, fftbins=True)` then `util.pad_center`).
pub fn window(p: &StftParams) -> Vec<f64> {
    let n = p.win_length;
    let mut w = vec![0f64; p.n_fft];
    let off = (p.n_fft - n) / 2;
    for i in 0..n {
        w[off + i] = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
    }
    w
}

/// The number of frames of a signal of `len` samples.
pub fn frame_count(len: usize, p: &StftParams) -> usize {
    let pad = if p.center { p.n_fft / 2 } else { 0 };
    let len = len + 2 * pad;
    if len >= p.n_fft {
        1 + (len - p.n_fft) / p.hop
    } else {
        0
    }
}

/// Copies frame `t` of `y` into `frame`, zero outside the signal (the `center` padding),
/// and multiplies by the window. Frames inside the signal take the straight path.
pub(crate) fn fill_frame<T>(frame: &mut [T], y: &[f32], win: &[T], t: usize, p: &StftParams)
where
    T: Copy + From<f32> + std::ops::Mul<Output = T> + Default,
{
    let pad = if p.center { p.n_fft / 2 } else { 0 };
    let n = frame.len();
    match (t * p.hop).checked_sub(pad) {
        Some(start) if start + n <= y.len() => {
            for ((v, &s), &w) in frame.iter_mut().zip(&y[start..start + n]).zip(win) {
                *v = T::from(s) * w;
            }
        }
        _ => {
            let start = (t * p.hop) as isize - pad as isize;
            for (i, (v, &w)) in frame.iter_mut().zip(win).enumerate() {
                let j = start + i as isize;
                *v = if j >= 0 && (j as usize) < y.len() {
                    T::from(y[j as usize]) * w
                } else {
                    T::default()
                };
            }
        }
    }
}

/// A planned STFT for one [`StftParams`]: window and FFT plans built once, for callers
/// that transform many signals (Griffin-Lim runs two transforms per iteration).
/// Computes in f64, exactly as [`stft`] and [`istft`].
#[derive(Clone)]
pub struct Stft {
    p: StftParams,
    win: Vec<f64>,
    fwd: Arc<dyn RealToComplex<f64>>,
    inv: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("params", &self.p).finish()
    }
}

impl Stft {
    /// Plans both directions for `p`.
    pub fn new(p: &StftParams) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        Stft {
            p: *p,
            win: window(p),
            fwd: planner.plan_fft_forward(p.n_fft),
            inv: planner.plan_fft_inverse(p.n_fft),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &StftParams {
        &self.p
    }

    /// The STFT of `y`.
    pub fn forward(&self, y: &[f32]) -> Spectrogram {
        forward(y, &self.p, &self.win, &*self.fwd)
    }

    /// The inverse STFT, as [`istft`].
    pub fn inverse(&self, s: &Spectrogram, length: Option<usize>) -> Vec<f32> {
        inverse(s, &self.p, &self.win, &*self.inv, length)
    }
}

/// The STFT of `y`.
pub fn stft(y: &[f32], p: &StftParams) -> Spectrogram {
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(p.n_fft);
    forward(y, p, &window(p), &*fft)
}

fn forward(y: &[f32], p: &StftParams, win: &[f64], fft: &dyn RealToComplex<f64>) -> Spectrogram {
    let frames = frame_count(y.len(), p);
    let bins = p.bins();
    let mut data = vec![Complex::new(0.0, 0.0); frames * bins];
    let mut frame = fft.make_input_vec();
    let mut scratch = fft.make_scratch_vec();
    for (t, out) in data.chunks_exact_mut(bins).enumerate() {
        fill_frame(&mut frame, y, win, t, p);
        fft.process_with_scratch(&mut frame, out, &mut scratch)
            .expect("buffer sizes come from the plan");
    }
    Spectrogram { frames, bins, data }
}

/// The inverse STFT (weighted overlap-add normalized by the window's sum of squares),
/// cut or zero-padded to `length` samples when given.
pub fn istft(s: &Spectrogram, p: &StftParams, length: Option<usize>) -> Vec<f32> {
    let ifft = RealFftPlanner::<f64>::new().plan_fft_inverse(p.n_fft);
    inverse(s, p, &window(p), &*ifft, length)
}

fn inverse(
    s: &Spectrogram,
    p: &StftParams,
    win: &[f64],
    ifft: &dyn ComplexToReal<f64>,
    length: Option<usize>,
) -> Vec<f32> {
    let n = p.n_fft;

    let full = n + p.hop * s.frames.saturating_sub(1);
    let mut y = vec![0f64; full];
    let mut wss = vec![0f64; full];
    let mut spec = ifft.make_input_vec();
    let mut frame = ifft.make_output_vec();
    let mut scratch = ifft.make_scratch_vec();
    for t in 0..s.frames {
        spec.copy_from_slice(&s.data[t * s.bins..(t + 1) * s.bins]);
        // A real signal's DC and Nyquist bins are real; numpy's irfft ignores their
        // imaginary parts, and realfft refuses them.
        spec[0].im = 0.0;
        if n.is_multiple_of(2) {
            spec[s.bins - 1].im = 0.0;
        }
        ifft.process_with_scratch(&mut spec, &mut frame, &mut scratch)
            .expect("buffer sizes come from the plan");
        let off = t * p.hop;
        for i in 0..n {
            y[off + i] += frame[i] / n as f64 * win[i];
            wss[off + i] += win[i] * win[i];
        }
    }
    let tiny = f64::from(f32::MIN_POSITIVE);
    for (v, w) in y.iter_mut().zip(&wss) {
        if *w > tiny {
            *v /= w;
        }
    }
    let start = if p.center { n / 2 } else { 0 };
    let mut out: Vec<f32> = y.iter().skip(start).map(|&v| v as f32).collect();
    match length {
        Some(l) => out.resize(l, 0.0),
        None => {
            if p.center {
                out.truncate(full.saturating_sub(n));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stft_then_istft_reconstructs() {
        let y: Vec<f32> = (0..5000)
            .map(|i| (i as f32 * 0.05).sin() * 0.5 + (i as f32 * 0.31).cos() * 0.2)
            .collect();
        for p in [
            StftParams::new(1024, 256),
            StftParams {
                win_length: 400,
                ..StftParams::new(512, 128)
            },
        ] {
            let s = stft(&y, &p);
            assert_eq!(s.frames, 1 + y.len() / p.hop);
            let back = istft(&s, &p, Some(y.len()));
            let err = y
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "max error {err}");
        }
    }
}
