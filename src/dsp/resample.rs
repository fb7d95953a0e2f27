//! Sample-rate conversion with rubato's windowed-sinc resampler, or its synchronous FFT
//! resampler ([`Quality::Fft`]).
//!
//! This module owns the choice of filter for each [`Quality`] and the reuse of built
//! resamplers ([`ResamplerCache`]): building one computes its whole sinc table, which
//! cost more than resampling a short clip, so a stage or CLI run keeps one per
//! (rates, quality, channels).
//!
//! Whole clips go through `process_all`, which removes the filter delay; the output is
//! then fixed to `ceil(len * ratio)` samples, as librosa's `resample` does. rubato's
//! filters differ from soxr's, so outputs are close to librosa's, not equal, and rubato
//! trims a whole number of samples of delay, so the output may lead the input by up
//! to one output sample (measured 0.6–1.0 at 16↔22.05↔44.1 kHz).

use rubato::audioadapter_buffers::direct::{SequentialSlice, SequentialSliceOfVecs};
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Filter length against speed. The taps are counted at the input rate; the cutoff is
/// rubato's automatic one for that length (scaled to the output Nyquist when
/// downsampling), with a Blackman-Harris window.
///
/// Where the rate ratio reduces to `to / from = p / q` with `p` ≤ [`MAX_EXACT_PHASES`]
/// (every pair of the usual rates: 48 k→16 k has p = 1, 44.1 k→16 k p = 160,
/// 22.05 k→16 k p = 320, 8 k→16 k p = 2), the table holds exactly the `p` filter phases
/// that output samples fall on, and each output sample is one dot product with its exact
/// phase (polyphase resampling, no interpolation error). Otherwise the phase is
/// interpolated between 128 precomputed ones, with the interpolation named below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quality {
    /// 64-tap sinc (otherwise linear interpolation between phases).
    Fast,
    /// 128-tap sinc (otherwise cubic interpolation between phases).
    #[default]
    Balanced,
    /// 256-tap sinc (otherwise cubic interpolation between phases).
    High,
    /// rubato's synchronous FFT resampler (overlap-add filtering in sub-chunks of about
    /// [`FFT_SUB_CHUNK`] input frames, Blackman-Harris window): a fixed rational ratio,
    /// several times faster than the sinc filters at the usual rates.
    Fft,
}

/// Input frames per FFT sub-chunk: rubato rounds it to a multiple of `from / gcd`.
/// Longer sub-chunks mean a longer, sharper anti-aliasing filter.
pub const FFT_SUB_CHUNK: usize = 1024;

/// The largest number of distinct output phases for which the exact-phase table is
/// built: 1024 phases of a 256-tap filter are 1 MiB of f32.
pub const MAX_EXACT_PHASES: u32 = 1024;

/// Input chunk rubato works in. Longer chunks amortize its per-chunk bookkeeping; the
/// output does not depend on it.
const CHUNK: usize = 4096;

/// Cached resamplers kept before the cache is cleared (a stream seldom mixes more
/// than a handful of rates).
const MAX_CACHED: usize = 16;

impl std::str::FromStr for Quality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Quality::Fast),
            "balanced" => Ok(Quality::Balanced),
            "high" => Ok(Quality::High),
            "fft" => Ok(Quality::Fft),
            other => Err(format!(
                "resampling quality {other:?}: expected fast, balanced, high or fft"
            )),
        }
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The sinc parameters of `quality` for `from` → `to` Hz.
fn parameters(from: u32, to: u32, quality: Quality) -> SincInterpolationParameters {
    let (sinc_len, interpolation) = match quality {
        Quality::Fast => (64, SincInterpolationType::Linear),
        Quality::Balanced => (128, SincInterpolationType::Cubic),
        Quality::High | Quality::Fft => (256, SincInterpolationType::Cubic),
    };
    // Output sample k sits at input time k * from / to, whose fractional part is a
    // multiple of 1 / (to / gcd): that many phases make every position exact.
    // The table keeps at least 128 phases (a multiple of the exact count): rubato
    // samples the window over `sinc_len * factor` points, and a table of very few
    // phases (1 for 48 k→16 k) is a coarser, slightly different filter.
    let phases = to / gcd(from, to);
    let (oversampling_factor, interpolation) = if phases <= MAX_EXACT_PHASES {
        let factor = phases * 128u32.div_ceil(phases);
        (factor as usize, SincInterpolationType::Nearest)
    } else {
        (128, interpolation)
    };
    SincInterpolationParameters {
        sinc_len,
        f_cutoff: None,
        oversampling_factor,
        interpolation,
        window: WindowFunction::BlackmanHarris2,
    }
}

type Key = (u32, u32, Quality, usize);

/// Resamplers built once per (from, to, quality, channels) and reset between clips, so
/// that a run over many clips pays for each sinc table once. Results equal those of
/// [`resample`] (a fresh resampler per call).
#[derive(Default)]
pub struct ResamplerCache {
    entries: Vec<(Key, Box<dyn Resampler<f32>>)>,
}

impl std::fmt::Debug for ResamplerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResamplerCache")
            .field(
                "keys",
                &self.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResamplerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resampler for `key`, built on first use and reset to a clean state.
    fn get(&mut self, key: Key) -> Result<&mut Box<dyn Resampler<f32>>, String> {
        let (from, to, quality, channels) = key;
        let pos = match self.entries.iter().position(|e| e.0 == key) {
            Some(i) => i,
            None => {
                if self.entries.len() >= MAX_CACHED {
                    self.entries.clear();
                }
                let r: Box<dyn Resampler<f32>> = if quality == Quality::Fft {
                    Box::new(
                        Fft::<f32>::new_custom(
                            from as usize,
                            to as usize,
                            CHUNK,
                            (CHUNK / FFT_SUB_CHUNK).max(1),
                            channels,
                            WindowFunction::BlackmanHarris2,
                            FixedSync::Input,
                        )
                        .map_err(|e| e.to_string())?,
                    )
                } else {
                    let ratio = f64::from(to) / f64::from(from);
                    Box::new(
                        Async::<f32>::new_sinc(
                            ratio,
                            1.0,
                            &parameters(from, to, quality),
                            CHUNK,
                            channels,
                            FixedAsync::Input,
                        )
                        .map_err(|e| e.to_string())?,
                    )
                };
                self.entries.push((key, r));
                self.entries.len() - 1
            }
        };
        let r = &mut self.entries[pos].1;
        r.reset();
        Ok(r)
    }

    /// Resamples every channel of a clip from `from` Hz to `to` Hz.
    pub fn resample(
        &mut self,
        channels: &[Vec<f32>],
        from: u32,
        to: u32,
        quality: Quality,
    ) -> Result<Vec<Vec<f32>>, String> {
        check_rates(from, to)?;
        if from == to || channels.is_empty() {
            return Ok(channels.to_vec());
        }
        let len = channels[0].len();
        if channels.iter().any(|c| c.len() != len) {
            return Err("channels differ in length".into());
        }
        let n = channels.len();
        let target = target_len(len, from, to);
        if len == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let r = self.get((from, to, quality, n))?;
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
            fix_length(c, produced, target);
        }
        Ok(out)
    }

    /// Resamples one channel from `from` Hz to `to` Hz; returns `y` itself when the
    /// rates are equal. Equals the single-channel [`ResamplerCache::resample`].
    pub fn resample_mono(
        &mut self,
        y: Vec<f32>,
        from: u32,
        to: u32,
        quality: Quality,
    ) -> Result<Vec<f32>, String> {
        check_rates(from, to)?;
        if from == to {
            return Ok(y);
        }
        let len = y.len();
        let target = target_len(len, from, to);
        if len == 0 {
            return Ok(Vec::new());
        }
        let r = self.get((from, to, quality, 1))?;
        let input = SequentialSlice::new(&y, 1, len).map_err(|e| e.to_string())?;
        let out_len = r.process_all_needed_output_len(len);
        let mut out = vec![0f32; out_len];
        let produced = {
            let mut output =
                SequentialSlice::new_mut(&mut out, 1, out_len).map_err(|e| e.to_string())?;
            r.process_all_into_buffer(&input, &mut output, len, None)
                .map_err(|e| e.to_string())?
                .1
        };
        fix_length(&mut out, produced, target);
        Ok(out)
    }
}

fn check_rates(from: u32, to: u32) -> Result<(), String> {
    if from == 0 || to == 0 {
        return Err(format!("cannot resample {from} Hz to {to} Hz"));
    }
    Ok(())
}

/// librosa's output length: `ceil(len * to / from)`.
fn target_len(len: usize, from: u32, to: u32) -> usize {
    (len as f64 * (f64::from(to) / f64::from(from))).ceil() as usize
}

/// Keeps the `produced` valid samples, then cuts or zero-pads to `target`
/// (librosa's `fix_length`).
fn fix_length(c: &mut Vec<f32>, produced: usize, target: usize) {
    c.truncate(produced.min(target));
    c.resize(target, 0.0);
}

/// Resamples every channel of a clip from `from` Hz to `to` Hz with a resampler built
/// for this call; [`ResamplerCache`] reuses them across calls.
pub fn resample(
    channels: &[Vec<f32>],
    from: u32,
    to: u32,
    quality: Quality,
) -> Result<Vec<Vec<f32>>, String> {
    ResamplerCache::new().resample(channels, from, to, quality)
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

    #[test]
    fn fft_resampler_keeps_frequency_and_energy_both_ways() {
        for (rate, tone) in [
            (44100, 440.0),
            (48000, 3000.0),
            (22050, 1000.0),
            (8000, 440.0),
        ] {
            let y = sine(tone, 16000, 1.0);
            let up = resample(std::slice::from_ref(&y), 16000, rate, Quality::Fft).unwrap();
            assert_eq!(up[0].len(), rate as usize);
            let f = freq(&up[0], rate);
            assert!((f - tone).abs() < 2.0, "{rate} Hz: {f}");
            let down = resample(&up, rate, 16000, Quality::Fft).unwrap();
            assert_eq!(down[0].len(), 16000);
            let f = freq(&down[0], 16000);
            assert!((f - tone).abs() < 2.0, "back from {rate} Hz: {f}");
            let ratio = rms(&down[0][1000..15000]) / rms(&y[1000..15000]);
            assert!(
                (ratio - 1.0).abs() < 0.01,
                "{rate} Hz: energy ratio {ratio}"
            );
        }
        // Above the target's Nyquist: filtered out, not folded back.
        let hiss = sine(12000.0, 48000, 1.0);
        let down = resample(&[hiss], 48000, 16000, Quality::Fft).unwrap();
        let r = rms(&down[0][1000..15000]);
        assert!(r < 0.005, "a 12 kHz tone leaks {r} RMS into 16 kHz");
    }

    #[test]
    fn cached_resamplers_equal_fresh_ones() {
        let a = sine(440.0, 48000, 0.7);
        let b = sine(3000.0, 48000, 0.3);
        let c = sine(1000.0, 44100, 0.5);
        let mut cache = ResamplerCache::new();
        for (y, from) in [(&a, 48000), (&c, 44100), (&b, 48000), (&a, 48000)] {
            for q in [
                Quality::Fast,
                Quality::Balanced,
                Quality::High,
                Quality::Fft,
            ] {
                let fresh = resample(std::slice::from_ref(y), from, 16000, q).unwrap();
                let mono = cache.resample_mono(y.clone(), from, 16000, q).unwrap();
                assert_eq!(mono, fresh[0], "{from} Hz {q:?}");
                assert_eq!(
                    mono.len(),
                    (y.len() as f64 * 16000.0 / f64::from(from)).ceil() as usize
                );
                let multi = cache
                    .resample(&[y.clone(), y.clone()], from, 16000, q)
                    .unwrap();
                assert_eq!(multi, vec![fresh[0].clone(), fresh[0].clone()]);
            }
        }
        assert_eq!(
            cache
                .resample_mono(a.clone(), 16000, 16000, Quality::Fast)
                .unwrap(),
            a
        );
        assert!(cache.resample_mono(a, 0, 16000, Quality::Fast).is_err());
    }

    #[test]
    fn usual_ratios_use_exact_phases() {
        for (from, exact) in [(48000, true), (44100, true), (22050, true), (8000, true)] {
            let p = parameters(from, 16000, Quality::Balanced);
            assert_eq!(p.interpolation == SincInterpolationType::Nearest, exact);
            // Every output position k * from / 16000 falls on a table phase.
            let phases = 16000 / gcd(from, 16000);
            assert_eq!(p.oversampling_factor % phases as usize, 0, "{from}");
            assert!(p.oversampling_factor >= 128);
        }
        // 16000 / 44099 reduces to 16000 output phases: interpolated.
        let p = parameters(44099, 16000, Quality::Balanced);
        assert_eq!(
            (p.interpolation, p.oversampling_factor),
            (SincInterpolationType::Cubic, 128)
        );
    }
}
