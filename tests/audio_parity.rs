//! Audio DSP against librosa 0.11 (`tests/fixtures/audio/make_fixtures.py`): mel
//! spectrograms and filterbanks within 1e-5 relative, dB within 1e-3, STFT→iSTFT
//! below 1e-5, Griffin-Lim spectral convergence within 1e-3 of librosa's; WAV reading of
//! every PCM width, and bad files as errors; resampling against soxr by length, energy
//! and dominant frequency (rubato cannot equal soxr sample for sample).

use std::collections::HashMap;

use capstream::dsp::griffin_lim::{griffin_lim, spectral_convergence};
use capstream::dsp::mel::DbRef;
use capstream::dsp::resample::{resample, Quality, ResamplerCache};
use capstream::dsp::wav::{read_wav, read_wav_mono, AudioError};
use capstream::dsp::{
    istft, mel_filterbank, melspectrogram, power_to_db, stft, MelExtractor, MelParams,
    MelScaleNorm, StftParams,
};
use tch::Tensor;

use crate::util::repo;

fn fixtures() -> std::path::PathBuf {
    repo().join("tests/fixtures/audio")
}

fn expected() -> (HashMap<String, Vec<f32>>, serde_json::Value) {
    let arrays = Tensor::read_safetensors(fixtures().join("expected.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    let json =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    (arrays, json)
}

fn tone() -> Vec<f32> {
    let a = read_wav(
        &std::fs::read(fixtures().join("tone_16k_pcm16.wav")).unwrap(),
        60.0,
    )
    .unwrap();
    assert_eq!(a.sample_rate, 16000);
    a.channels[0].clone()
}

fn rel_err(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let max = theirs.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    let diff = ours.iter().zip(theirs).fold(0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    diff / max
}

#[allow(clippy::too_many_arguments)]
fn mel_params(
    n_fft: usize,
    hop: usize,
    win: usize,
    htk: bool,
    norm: MelScaleNorm,
    power: f64,
    fmin: f64,
    fmax: Option<f64>,
) -> MelParams {
    MelParams {
        sr: 16000,
        stft: StftParams {
            n_fft,
            hop,
            win_length: win,
            center: true,
        },
        n_mels: 80,
        fmin,
        fmax,
        htk,
        norm,
        power,
    }
}

#[test]
fn mel_spectrograms_and_filterbanks_match_librosa() {
    let (arr, _) = expected();
    let y = tone();
    let cases = [
        (
            "mel_slaney",
            mel_params(
                1024,
                256,
                1024,
                false,
                MelScaleNorm::Slaney,
                2.0,
                0.0,
                Some(8000.0),
            ),
        ),
        (
            "mel_htk_nonorm",
            mel_params(
                1024,
                256,
                1024,
                true,
                MelScaleNorm::None,
                2.0,
                0.0,
                Some(8000.0),
            ),
        ),
        (
            "mel_power1_fmin",
            mel_params(
                512,
                128,
                400,
                false,
                MelScaleNorm::Slaney,
                1.0,
                50.0,
                Some(7600.0),
            ),
        ),
    ];
    for (name, p) in cases {
        let (mel, _frames) = melspectrogram(&y, &p);
        let e = rel_err(&mel, &arr[name]);
        assert!(e <= 1e-5, "{name}: relative error {e}");
    }
    let fb = mel_filterbank(
        16000,
        1024,
        80,
        0.0,
        Some(8000.0),
        false,
        MelScaleNorm::Slaney,
    );
    assert!(rel_err(&fb, &arr["melfb_slaney"]) <= 1e-5);
    let fb = mel_filterbank(16000, 1024, 80, 0.0, Some(8000.0), true, MelScaleNorm::None);
    assert!(rel_err(&fb, &arr["melfb_htk"]) <= 1e-5);
    let mag: Vec<f32> = stft(&y, &StftParams::new(1024, 256))
        .magnitude_pow(1.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert!(rel_err(&mag, &arr["stft_mag"]) <= 1e-5);
}

#[test]
fn decibels_match_librosa() {
    let (arr, _) = expected();
    let mel = &arr["mel_slaney"];
    for (name, r, top) in [
        ("db_ref1", DbRef::Value(1.0), Some(80.0)),
        ("db_refmax", DbRef::Max, Some(80.0)),
        ("db_notop", DbRef::Value(1.0), None),
        ("db_top40", DbRef::Value(1.0), Some(40.0)),
    ] {
        let db = power_to_db(mel, r, 1e-10, top);
        let d = db
            .iter()
            .zip(&arr[name])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-3, "{name}: {d} dB");
    }
}

#[test]
fn istft_inverts_stft() {
    let y = tone();
    let p = StftParams::new(1024, 256);
    let back = istft(&stft(&y, &p), &p, Some(y.len()));
    let err = y
        .iter()
        .zip(&back)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-5, "{err}");
}

#[test]
fn griffin_lim_converges_like_librosa() {
    let (arr, json) = expected();
    let y = tone();
    let p = StftParams::new(1024, 256);
    let spec = stft(&y, &p);
    // librosa worked from the float32 magnitudes.
    let mag: Vec<f64> = arr["stft_mag"].iter().map(|&v| f64::from(v)).collect();
    for (name, momentum) in [("gl_init_none", 0.99), ("gl_momentum0", 0.0)] {
        let g = griffin_lim(&mag, spec.frames, &p, 32, momentum, Some(y.len()));
        let sc = spectral_convergence(&mag, &g, &p);
        let want = json["arrays"][name]["spectral_convergence"]
            .as_f64()
            .unwrap();
        assert!(
            (sc - want).abs() <= 1e-3,
            "{name}: SC {sc} vs librosa {want}"
        );
    }
}

#[test]
fn every_pcm_width_reads_and_bad_files_are_errors() {
    let (_, json) = expected();
    for name in [
        "tone_16k_pcm16",
        "tone_22k_float",
        "stereo_44k_pcm24",
        "mono_8k_pcm8",
        "pcm32_48k",
    ] {
        let meta = &json["wav_files"][format!("{name}.wav")];
        let a = read_wav(
            &std::fs::read(fixtures().join(format!("{name}.wav"))).unwrap(),
            60.0,
        )
        .unwrap();
        assert_eq!(
            u64::from(a.sample_rate),
            meta["samplerate"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            a.channels.len() as u64,
            meta["channels"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(a.len() as u64, meta["frames"].as_u64().unwrap(), "{name}");
        for (c, want) in meta["channel_rms"].as_array().unwrap().iter().enumerate() {
            let rms = (a.channels[c]
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                / a.len() as f64)
                .sqrt();
            assert!(
                (rms - want.as_f64().unwrap()).abs() < 1e-6,
                "{name} channel {c}: rms {rms}"
            );
        }
    }
    let read = |f: &str| read_wav(&std::fs::read(fixtures().join(f)).unwrap(), 60.0);
    assert!(
        matches!(read("corrupt.wav"), Err(AudioError::Invalid(_))),
        "{:?}",
        read("corrupt.wav")
    );
    assert!(matches!(read("not_a_wav.wav"), Err(AudioError::Invalid(_))));
    assert!(matches!(read("empty.wav"), Err(AudioError::Empty(_))));
}

#[test]
fn log_mel_front_end_matches_librosa_end_to_end() {
    // The features path (WAV → mono → MelExtractor::log_mel) against librosa's
    // power_to_db(melspectrogram(y)) on the same file: 1e-3 dB.
    let (arr, _) = expected();
    let bytes = std::fs::read(fixtures().join("tone_16k_pcm16.wav")).unwrap();
    let (rate, y) = read_wav_mono(&bytes, 60.0).unwrap();
    assert_eq!(rate, 16000);
    assert_eq!(y, tone());
    let mut ex = MelExtractor::new(&MelParams::default_16k());
    // Twice: a reused extractor gives the same answer.
    for _ in 0..2 {
        let (db, frames) = ex.log_mel(&y, DbRef::Value(1.0), 1e-10, Some(80.0));
        assert_eq!(frames, 63);
        let d = db
            .iter()
            .zip(&arr["db_ref1"])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-3, "log-mel vs librosa: {d} dB");
    }
}

/// Peak frequency of `x` (rate `sr`) within `lo..hi` Hz, as the fixture measured it:
/// periodic Hann, |rfft|, parabolic interpolation on ln|X| around the peak bin.
fn dominant_hz(x: &[f32], sr: f64, lo: f64, hi: f64) -> f64 {
    let n = x.len();
    let mut buf: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            f64::from(v) * w
        })
        .collect();
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    fft.process(&mut buf, &mut spec).unwrap();
    let hz = sr / n as f64;
    let (a, b) = ((lo / hz) as usize, (hi / hz) as usize);
    let k = (a..b)
        .max_by(|&i, &j| spec[i].norm().total_cmp(&spec[j].norm()))
        .unwrap();
    let (l, c, r) = (
        spec[k - 1].norm().ln(),
        spec[k].norm().ln(),
        spec[k + 1].norm().ln(),
    );
    (k as f64 + 0.5 * (l - r) / (l - 2.0 * c + r)) * hz
}

#[test]
fn resampling_matches_soxr_in_length_energy_and_frequency() {
    // librosa.resample(tone, 16000 → 22050, soxr_hq): the fixture's own tolerances are
    // exact length, RMS within 1e-3 relative, dominant frequencies within one bin.
    let (_, json) = expected();
    let want = &json["scalars"]["resample"];
    let y = tone();
    let mut cache = ResamplerCache::new();
    for q in [
        Quality::Fast,
        Quality::Balanced,
        Quality::High,
        Quality::Fft,
    ] {
        let out = resample(std::slice::from_ref(&y), 16000, 22050, q)
            .unwrap()
            .remove(0);
        assert_eq!(out.len() as u64, want["length"].as_u64().unwrap(), "{q:?}");
        let rms =
            (out.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
        let want_rms = want["rms"].as_f64().unwrap();
        assert!(
            (rms / want_rms - 1.0).abs() <= 1e-3,
            "{q:?}: rms {rms} vs soxr {want_rms}"
        );
        for (key, lo, hi) in [
            ("dominant_440", 300.0, 600.0),
            ("dominant_3000", 2500.0, 3500.0),
        ] {
            let f = dominant_hz(&out, 22050.0, lo, hi);
            let w = want[key]["interpolated_hz"].as_f64().unwrap();
            assert!((f - w).abs() <= 1.0, "{q:?} {key}: {f} Hz vs soxr {w} Hz");
        }
        // The cached resampler used by the features stage and CLI gives the same samples.
        assert_eq!(
            cache.resample_mono(y.clone(), 16000, 22050, q).unwrap(),
            out
        );
    }
}
