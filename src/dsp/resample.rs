//! Sample-rate conversion with rubato's windowed-sinc resampler.
//!
//! Whole clips go through `process_all`, which removes the filter delay; the output is
//! then fixed to `ceil(len * ratio)` samples, as librosa's `resample` does. rubato's
//! filters differ from soxr's, so outputs are close to librosa's, not equal, and rubato
//! trims a whole number of samples of delay, so the output may lead the input by up
//! to one output sample (measured 0.6–1.0 at 16↔22.05↔44.1 kHz).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Filter length against speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// 64-tap sinc, linear interpolation.
    Fast,
    /// 128-tap sinc, cubic interpolation.
    #[default]
    Balanced,
    /// 256-tap sinc, cubic interpolation.
    High,
}

impl std::str::FromStr for Quality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Quality::Fast),
            "balanced" => Ok(Quality::Balanced),
            "high" => Ok(Quality::High),
            other => Err(format!(
                "resampling quality {other:?}: expected fast, balanced or high"
            )),
        }
    }
}

/// Resamples every channel of a clip from `from` Hz to `to` Hz.
pub fn resample(
    channels: &[Vec<f32>],
    from: u32,
    to: u32,
    quality: Quality,
) -> Result<Vec<Vec<f32>>, String> {
    if from == 0 || to == 0 {
        return Err(format!("cannot resample {from} Hz to {to} Hz"));
    }
    if from == to || channels.is_empty() {
        return Ok(channels.to_vec());
    }
    let len = channels[0].len();
    if channels.iter().any(|c| c.len() != len) {
        return Err("channels differ in length".into());
    }
    let n = channels.len();
    let ratio = f64::from(to) / f64::from(from);
    let target = (len as f64 * ratio).ceil() as usize;
    if len == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    let (sinc_len, interpolation) = match quality {
        Quality::Fast => (64, SincInterpolationType::Linear),
        Quality::Balanced => (128, SincInterpolationType::Cubic),
        Quality::High => (256, SincInterpolationType::Cubic),
    };
    let params = SincInterpolationParameters {
        sinc_len,
        f_cutoff: None,
        oversampling_factor: 128,
        interpolation,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut r = Async::<f32>::new_sinc(ratio, 1.0, &params, 1024, n, FixedAsync::Input)
        .map_err(|e| e.to_string())?;
    let input = SequentialSliceOfVecs::new(channels, n, len).map_err(|e| e.to_string())?;
    let out_len = r.process_all_needed_output_len(len);
    let mut out = vec![vec![0f32; out_len]; n];
    let produced = {
        let mut output =
            SequentialSliceOfVecs::new_mut(&mut out, n, out_len).map_err(|e| e.to_string())?;
        r.process_all_into_buffer(&input, &mut output, len, None)
            .map_err(|e| e.to_string())?
            .1
    };
    for c in &mut out {
        c.truncate(produced.min(target));
        c.resize(target, 0.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, sr: u32, secs: f64) -> Vec<f32> {
        let n = (f64::from(sr) * secs) as usize;
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(sr)).sin()) as f32
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Frequency from zero crossings over the middle of the clip (edges excluded).
    fn freq(x: &[f32], sr: u32) -> f64 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f64 * f64::from(sr) / mid.len() as f64
    }

    #[test]
    fn up_then_down_keeps_frequency_and_energy() {
        let y = sine(440.0, 16000, 1.0);
        let up = resample(std::slice::from_ref(&y), 16000, 44100, Quality::Balanced).unwrap();
        assert_eq!(up[0].len(), 44100);
        assert!(
            (freq(&up[0], 44100) - 440.0).abs() < 2.0,
            "{}",
            freq(&up[0], 44100)
        );
        let down = resample(&up, 44100, 16000, Quality::Balanced).unwrap();
        assert_eq!(down[0].len(), 16000);
        assert!(
            (freq(&down[0], 16000) - 440.0).abs() < 2.0,
            "{}",
            freq(&down[0], 16000)
        );
        // Energy within 1% (the waveform itself may sit up to one sample early).
        let ratio = rms(&down[0][1000..15000]) / rms(&y[1000..15000]);
        assert!((ratio - 1.0).abs() < 0.01, "energy ratio {ratio}");
    }
}
