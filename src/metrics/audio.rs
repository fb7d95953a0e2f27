//! Audio comparison metrics between a reference `x` and an estimate `x̂`.
//!
//! There is no canonical package for these, so the definitions are pinned here:
//! - MSE = mean((x − x̂)²), MAE = mean(|x − x̂|);
//! - SNR = 10·log10(Σx² / Σ(x − x̂)²) dB, `+∞` when the estimate is exact, no epsilon;
//! - spectral convergence = ‖|S| − |Ŝ|‖_F / ‖|S|‖_F over STFT magnitudes (the reference
//!   in the denominator, as auraloss);
//! - LSD = mean over frames of sqrt(mean over bins of (10·log10(|S|² + ε) −
//!   10·log10(|Ŝ|² + ε))²) dB, ε = 1e-10.
//!
//! Signals of different lengths are compared over the shorter one's length.

use crate::dsp::stft::{stft, StftParams};

const LSD_EPS: f64 = 1e-10;

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

/// Signal-to-noise ratio of `estimate` against `reference`, dB.
pub fn snr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let (x, y) = common(reference, estimate);
    let signal: f64 = x.iter().map(|&a| f64::from(a).powi(2)).sum();
    let noise: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

fn magnitudes(y: &[f32], p: &StftParams) -> Vec<f64> {
    stft(y, p).magnitude_pow(1.0)
}

/// Spectral convergence of `estimate` against `reference` with STFT `p`.
pub fn spectral_convergence(reference: &[f32], estimate: &[f32], p: &StftParams) -> f64 {
    let (x, y) = common(reference, estimate);
    let (s, e) = (magnitudes(x, p), magnitudes(y, p));
    let num: f64 = s.iter().zip(&e).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = s.iter().map(|a| a * a).sum();
    (num / den).sqrt()
}

/// Log-spectral distance of `estimate` against `reference` with STFT `p`, dB.
pub fn lsd_db(reference: &[f32], estimate: &[f32], p: &StftParams) -> f64 {
    let (x, y) = common(reference, estimate);
    let (sx, sy) = (stft(x, p), stft(y, p));
    let (frames, bins) = (sx.frames, sx.bins);
    if frames == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for t in 0..frames {
        let mut acc = 0.0;
        for f in 0..bins {
            let a = sx.data[t * bins + f].norm_sqr();
            let b = sy.data[t * bins + f].norm_sqr();
            acc += (10.0 * (a + LSD_EPS).log10() - 10.0 * (b + LSD_EPS).log10()).powi(2);
        }
        total += (acc / bins as f64).sqrt();
    }
    total / frames as f64
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
        assert!((snr_db(&y, &yh) - 34.946445).abs() < 1e-3);
        assert!((spectral_convergence(&y, &yh, &p) - 0.01665951).abs() < 1e-5);
        assert!((lsd_db(&y, &yh, &p) - 3.687879).abs() < 1e-3);
    }

    #[test]
    fn exact_estimate() {
        let (y, _) = e_audio();
        assert_eq!(mse(&y, &y), 0.0);
        assert_eq!(snr_db(&y, &y), f64::INFINITY);
        assert_eq!(
            spectral_convergence(&y, &y, &StftParams::new(512, 128)),
            0.0
        );
    }
}
