//! Losses on tensors.
//!
//! - The multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al., 2020), as
//!   auraloss computes it: per resolution, spectral convergence
//!   `‖|Y| − |Ŷ|‖_F / ‖|Y|‖_F` plus the mean absolute difference of natural-log
//!   magnitudes, magnitudes `sqrt(max(re² + im², 1e-8))`, averaged over resolutions.
//! - Log-mel L1: the mean absolute difference of mel dB (`10·log10(max(mel, 1e-10))`)
//!   divided by a scale (the audio model's `mel_std`), as Vocos's main loss.
//! - Direct supervision of a predicted spectrum (APNet, Ai & Ling 2023; FreeV): the
//!   log-magnitude MSE, the anti-wrapped instantaneous-phase, group-delay and
//!   phase-time-difference errors `|d − 2π·round(d / 2π)|`, each weighted by the
//!   target's magnitude over its mean (the phase of a silent bin is noise and must not
//!   steer the network), and the real/imaginary L1 over the target's mean magnitude.
//!   Without a discriminator these are what teach a vocoder its phase.

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

/// Complex STFT frames of `x` (`[batch, samples]`), not centred: frame `j` covers
/// samples `j·hop .. j·hop + n_fft` (periodic Hann).
pub fn stft_frames(x: &Tensor, n_fft: i64, hop: i64) -> Tensor {
    let window = Tensor::hann_window(n_fft, (Kind::Float, x.device()));
    x.stft(n_fft, hop, n_fft, Some(&window), false, true, true, false)
}

/// Log-mel L1 of `estimate` against `target` (`[batch, samples]`) under the filterbank
/// `fb` (`[n_mels, n_fft / 2 + 1]`), in units of `db_scale` dB.
pub fn log_mel_l1(
    estimate: &Tensor,
    target: &Tensor,
    fb: &Tensor,
    n_fft: i64,
    hop: i64,
    db_scale: f64,
) -> Tensor {
    let db = |x: &Tensor| {
        let power = stft_frames(x, n_fft, hop).abs().square();
        fb.matmul(&power).clamp_min(1e-10).log10() * 10.0
    };
    (db(estimate) - db(target)).abs().mean(Kind::Float) / db_scale
}

/// `|x − 2π·round(x / 2π)|`: the distance of an angle difference from a whole turn.
fn anti_wrap(x: &Tensor) -> Tensor {
    let tau = std::f64::consts::TAU;
    (x - (x / tau).round() * tau).abs()
}

/// The parts of [`spectrum_losses`].
#[derive(Debug)]
pub struct SpectrumLosses {
    /// Log-magnitude MSE.
    pub magnitude: Tensor,
    /// Instantaneous phase + group delay + phase time difference.
    pub phase: Tensor,
    /// Real and imaginary L1 over the target's mean magnitude.
    pub complex: Tensor,
}

/// Supervision of a predicted spectrum (`log_magnitude`, `phase`, `spectrum`, each
/// `[batch, bins, frames]`) against the complex `target` at the same frames.
pub fn spectrum_losses(
    log_magnitude: &Tensor,
    phase: &Tensor,
    spectrum: &Tensor,
    target: &Tensor,
) -> SpectrumLosses {
    let mag = target.abs();
    let mean_mag = mag.mean(Kind::Float).clamp_min(1e-8);
    let w = (&mag / &mean_mag).detach();
    let target_phase = target.angle();
    let magnitude = log_magnitude.mse_loss(&mag.clamp_min(1e-5).log(), tch::Reduction::Mean);
    let (bins, frames) = (phase.size()[1], phase.size()[2]);
    let ip = (anti_wrap(&(phase - &target_phase)) * &w).mean(Kind::Float);
    let diff = |x: &Tensor, dim: i64, n: i64| x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1);
    let pair_weight = |dim: i64, n: i64| (w.narrow(dim, 1, n - 1) + w.narrow(dim, 0, n - 1)) * 0.5;
    let gd = (anti_wrap(&(diff(phase, 1, bins) - diff(&target_phase, 1, bins)))
        * pair_weight(1, bins))
    .mean(Kind::Float);
    let ptd = (anti_wrap(&(diff(phase, 2, frames) - diff(&target_phase, 2, frames)))
        * pair_weight(2, frames))
    .mean(Kind::Float);
    let complex = ((spectrum.real() - target.real()).abs().mean(Kind::Float)
        + (spectrum.imag() - target.imag()).abs().mean(Kind::Float))
        / &mean_mag;
    SpectrumLosses {
        magnitude,
        phase: ip + gd + ptd,
        complex,
    }
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

    #[test]
    fn spectrum_losses_vanish_for_the_target_and_see_a_phase_error() {
        tch::manual_seed(0);
        let x = Tensor::randn([2, 4096], (Kind::Float, tch::Device::Cpu));
        let s = stft_frames(&x, 512, 128);
        let (mag, ph) = (s.abs(), s.angle());
        let same = spectrum_losses(&mag.clamp_min(1e-5).log(), &ph, &s, &s);
        for (name, v) in [
            ("magnitude", &same.magnitude),
            ("phase", &same.phase),
            ("complex", &same.complex),
        ] {
            let v = v.double_value(&[]);
            assert!(v.abs() < 1e-4, "{name}: {v}");
        }
        // A whole turn added to every phase is no error; half a turn is.
        let turned = &ph + std::f64::consts::TAU;
        let t = spectrum_losses(&mag.clamp_min(1e-5).log(), &turned, &s, &s);
        assert!(t.phase.double_value(&[]) < 1e-3);
        let flipped = &ph + std::f64::consts::PI;
        let neg = Tensor::complex(&(&mag * flipped.cos()), &(&mag * flipped.sin()));
        let f = spectrum_losses(&mag.clamp_min(1e-5).log(), &flipped, &neg, &s);
        // Instantaneous phase is off by π at every (magnitude-weighted) bin; the
        // differences are unchanged.
        assert!((f.phase.double_value(&[]) - std::f64::consts::PI).abs() < 1e-2);
        assert!((f.complex.double_value(&[]) - 2.0 * 4.0 / std::f64::consts::PI).abs() < 0.3);
    }
}
