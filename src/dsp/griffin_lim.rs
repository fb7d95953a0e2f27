//! Griffin-Lim phase reconstruction as librosa's `griffinlim` (fast variant with
//! momentum). `init = None` (all phases zero) makes it deterministic.

use realfft::num_complex::Complex;

use super::stft::{stft, Spectrogram, Stft, StftParams};

/// Reconstructs a waveform of `length` samples whose STFT magnitude approximates `mag`
/// (`[bins][frames]`, row-major, as [`Spectrogram::magnitude_pow`] with power 1).
pub fn griffin_lim(
    mag: &[f64],
    frames: usize,
    p: &StftParams,
    n_iter: usize,
    momentum: f64,
    length: Option<usize>,
) -> Vec<f32> {
    let bins = p.bins();
    assert_eq!(mag.len(), bins * frames, "magnitude must be [bins][frames]");
    // Frame-major magnitudes, matching Spectrogram's layout.
    let s: Vec<f64> = (0..frames * bins)
        .map(|i| mag[(i % bins) * frames + i / bins])
        .collect();
    let mut angles = Spectrogram {
        frames,
        bins,
        data: s.iter().map(|&m| Complex::new(m, 0.0)).collect(),
    };
    // Two transforms per iteration: plan them once.
    let plan = Stft::new(p);
    let tiny = f64::from(f32::MIN_POSITIVE);
    let mut tprev: Option<Vec<Complex<f64>>> = None;
    let m = momentum / (1.0 + momentum);
    for _ in 0..n_iter {
        let inverse = plan.inverse(&angles, length);
        let rebuilt = plan.forward(&inverse);
        for (i, a) in angles.data.iter_mut().enumerate() {
            let mut v = rebuilt.data.get(i).copied().unwrap_or_default();
            if let Some(prev) = &tprev {
                v -= prev[i] * m;
            }
            *a = v / (v.norm() + tiny) * s[i];
        }
        tprev = Some(rebuilt.data);
    }
    plan.inverse(&angles, length)
}

/// Spectral convergence `‖|S| − |Ŝ|‖_F / ‖|S|‖_F` of `y` against magnitudes `mag`.
pub fn spectral_convergence(mag: &[f64], y: &[f32], p: &StftParams) -> f64 {
    let est = stft(y, p).magnitude_pow(1.0);
    let n = mag.len().min(est.len());
    let num: f64 = mag[..n]
        .iter()
        .zip(&est[..n])
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let den: f64 = mag[..n].iter().map(|a| a * a).sum();
    (num / den).sqrt()
}
