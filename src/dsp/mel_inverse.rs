//! From a mel power spectrogram back to STFT magnitudes, as librosa's
//! `feature.inverse.mel_to_stft`: the non-negative least-squares solution of
//! `M = W · S` per frame, then `S^(1/power)`. With Griffin-Lim this is the
//! no-training way from a log-mel to a waveform, and the baseline neural vocoders are
//! compared with.
//!
//! librosa solves the NNLS problem with L-BFGS-B; this uses Lee–Seung multiplicative
//! updates, which keep every value non-negative by construction and converge to the
//! same minimiser for a non-negative filterbank. Results agree with librosa's to the
//! solver's tolerance, not bit for bit.

use super::mel::{mel_filterbank, MelParams};

/// `[bins][frames]` magnitudes (row-major, bin-major as [`super::Spectrogram::magnitude_pow`])
/// whose mel projection approximates `mel` (`[n_mels][frames]` power or magnitude as
/// `p.power` says).
pub fn mel_to_stft(mel: &[f32], frames: usize, p: &MelParams, n_iter: usize) -> Vec<f64> {
    let bins = p.stft.n_fft / 2 + 1;
    let n_mels = p.n_mels;
    assert_eq!(mel.len(), n_mels * frames, "mel must be [n_mels][frames]");
    let w: Vec<f64> = mel_filterbank(p.sr, p.stft.n_fft, n_mels, p.fmin, p.fmax, p.htk, p.norm)
        .into_iter()
        .map(f64::from)
        .collect();
    // Each band covers a contiguous run of bins; products skip the zeros.
    let spans: Vec<(usize, usize)> = (0..n_mels)
        .map(|m| {
            let row = &w[m * bins..(m + 1) * bins];
            let lo = row.iter().position(|&v| v > 0.0).unwrap_or(0);
            let hi = row.iter().rposition(|&v| v > 0.0).map_or(0, |i| i + 1);
            (lo, hi.max(lo))
        })
        .collect();
    let tiny = 1e-12;
    let mut s = vec![0f64; bins * frames];
    let mut wm = vec![0f64; bins];
    let mut ws = vec![0f64; n_mels];
    let mut wws = vec![0f64; bins];
    for t in 0..frames {
        let m_t: Vec<f64> = (0..n_mels)
            .map(|m| f64::from(mel[m * frames + t]).max(0.0))
            .collect();
        // Wᵀm: the numerator of every update, and (normalized) the starting point.
        wm.fill(0.0);
        for (m, &(lo, hi)) in spans.iter().enumerate() {
            for k in lo..hi {
                wm[k] += w[m * bins + k] * m_t[m];
            }
        }
        let mut x: Vec<f64> = wm.clone();
        for _ in 0..n_iter {
            for (m, &(lo, hi)) in spans.iter().enumerate() {
                ws[m] = (lo..hi).map(|k| w[m * bins + k] * x[k]).sum();
            }
            wws.fill(0.0);
            for (m, &(lo, hi)) in spans.iter().enumerate() {
                for k in lo..hi {
                    wws[k] += w[m * bins + k] * ws[m];
                }
            }
            for k in 0..bins {
                x[k] *= wm[k] / (wws[k] + tiny);
            }
        }
        for k in 0..bins {
            s[k * frames + t] = x[k].powf(1.0 / p.power);
        }
    }
    s
}

/// A waveform from a log-mel in dB (`power_to_db` of a power mel, ref 1): dB → power
/// → [`mel_to_stft`] (100 iterations) → Griffin-Lim (`n_iter`, momentum 0.99, zero
/// initial phase, so deterministic); librosa's `feature.inverse.mel_to_audio` with
/// `init=None`. `length` fixes the output length (default `(frames − 1) · hop`).
pub fn mel_db_to_audio(
    mel_db: &[f32],
    frames: usize,
    p: &MelParams,
    n_iter: usize,
    length: Option<usize>,
) -> Vec<f32> {
    let power: Vec<f32> = mel_db.iter().map(|&d| 10f32.powf(d / 10.0)).collect();
    let mel_params = MelParams { power: 2.0, ..*p };
    let mag = mel_to_stft(&power, frames, &mel_params, 100);
    let length = length.unwrap_or(frames.saturating_sub(1) * p.stft.hop);
    super::griffin_lim::griffin_lim(&mag, frames, &p.stft, n_iter, 0.99, Some(length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::melspectrogram;

    #[test]
    fn inverts_a_mel_of_a_tone_to_its_spectrum_peak() {
        let p = MelParams::default_16k();
        let y: Vec<f32> = (0..16000)
            .map(|n| (std::f32::consts::TAU * 1000.0 * n as f32 / 16000.0).sin() * 0.5)
            .collect();
        let (mel, frames) = melspectrogram(&y, &p);
        let s = mel_to_stft(&mel, frames, &p, 200);
        let bins = p.stft.n_fft / 2 + 1;
        let t = frames / 2;
        let peak = (0..bins)
            .max_by(|&a, &b| s[a * frames + t].total_cmp(&s[b * frames + t]))
            .unwrap();
        // 1 kHz is bin 64 at 16 kHz with n_fft 1024; mel resolution there is ~2 bins.
        assert!((62..=66).contains(&peak), "peak at bin {peak}");
        // The projection of the estimate reproduces the mel.
        let mel_back: f64 = (0..p.n_mels)
            .map(|m| {
                let fb = crate::dsp::mel_filterbank(16000, 1024, 80, 0.0, None, false, p.norm);
                (0..bins)
                    .map(|k| f64::from(fb[m * bins + k]) * s[k * frames + t].powi(2))
                    .sum::<f64>()
            })
            .sum();
        let mel_sum: f64 = (0..p.n_mels).map(|m| f64::from(mel[m * frames + t])).sum();
        assert!(
            (mel_back - mel_sum).abs() / mel_sum < 0.05,
            "{mel_back} vs {mel_sum}"
        );
    }
}
