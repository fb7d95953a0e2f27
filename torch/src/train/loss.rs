//! Losses on tensors.
//!
//! The multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al., 2020), as
//! auraloss computes it: per resolution, spectral convergence
//! `‖|Y| − |Ŷ|‖_F / ‖|Y|‖_F` plus the mean absolute difference of natural-log
//! magnitudes, magnitudes `sqrt(max(re² + im², 1e-8))`, averaged over resolutions.

use tch::{Kind, Tensor};

/// One STFT resolution: FFT size and hop (window = FFT size, periodic Hann).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// FFT and window size.
    pub n_fft: i64,
    /// Hop.
    pub hop: i64,
}

/// Resolutions for 16 kHz speech: 256/64, 512/128, 1024/256.
pub const SPEECH_16K: [Resolution; 3] = [
    Resolution {
        n_fft: 256,
        hop: 64,
    },
    Resolution {
        n_fft: 512,
        hop: 128,
    },
    Resolution {
        n_fft: 1024,
        hop: 256,
    },
];

fn magnitude(x: &Tensor, r: Resolution) -> Tensor {
    let window = Tensor::hann_window(r.n_fft, (Kind::Float, x.device()));
    let spec = x.stft(
        r.n_fft,
        r.hop,
        r.n_fft,
        Some(&window),
        false,
        true,
        true,
        false,
    );
    spec.abs().square().clamp_min(1e-8).sqrt()
}

/// The loss of `estimate` against `target`, both `[batch, samples]`. Returns a scalar.
pub fn multi_resolution_stft(
    estimate: &Tensor,
    target: &Tensor,
    resolutions: &[Resolution],
) -> Tensor {
    let mut total = Tensor::zeros([], (Kind::Float, estimate.device()));
    for &r in resolutions {
        let (e, t) = (magnitude(estimate, r), magnitude(target, r));
        let sc = (&t - &e).square().sum(Kind::Float).sqrt() / t.square().sum(Kind::Float).sqrt();
        let log_mag = (t.log() - e.log()).abs().mean(Kind::Float);
        total = total + sc + log_mag;
    }
    total / resolutions.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_for_equal_signals_and_positive_otherwise() {
        tch::manual_seed(0);
        let x = Tensor::randn([2, 4096], (Kind::Float, tch::Device::Cpu));
        let same = multi_resolution_stft(&x, &x, &SPEECH_16K).double_value(&[]);
        assert!(same.abs() < 1e-6, "{same}");
        let y = &x * 0.5;
        // Halving the amplitude: SC 0.5 and |ln 0.5| at every bin (above the floor).
        let half = multi_resolution_stft(&y, &x, &SPEECH_16K).double_value(&[]);
        assert!(
            (half - (0.5 + std::f64::consts::LN_2)).abs() < 1e-3,
            "{half}"
        );
    }
}
