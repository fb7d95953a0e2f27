//! Spoken descriptions (eSpeak NG) and the `features` command.

use capstream::dsp::{melspectrogram, MelParams};
use capstream::speech::Speaker;

use crate::util::{capstream, repo};

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[test]
fn speech_is_audible_and_lasts_as_long_as_its_words() {
    let s = Speaker::default();
    let short = s.speak("a red circle").unwrap();
    let long = s
        .speak("a red circle to the left of a small blue square above a green triangle")
        .unwrap();
    let secs = |y: &Vec<f32>| y.len() as f64 / f64::from(s.sample_rate);
    // 175 words per minute: 3 words ~1 s, 14 words ~4.8 s, with pauses at the ends.
    assert!((0.5..2.5).contains(&secs(&short)), "{} s", secs(&short));
    assert!((2.5..8.0).contains(&secs(&long)), "{} s", secs(&long));
    assert!(
        rms(&long) > 0.02,
        "speech is not silent: rms {}",
        rms(&long)
    );
    let faster = Speaker {
        rate: 350,
        ..Speaker::default()
    }
    .speak("a red circle to the left of a small blue square above a green triangle")
    .unwrap();
    assert!(faster.len() < long.len() * 3 / 4, "rate changes duration");
}

#[test]
fn concurrent_utterances_do_not_interfere() {
    let texts: Vec<String> = (0..6)
        .map(|i| format!("caption number {i} shows {} squares", i + 2))
        .collect();
    let alone: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| Speaker::default().speak(t).unwrap())
        .collect();
    let together: Vec<Vec<f32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = texts
            .iter()
            .map(|t| sc.spawn(move || Speaker::default().speak(t).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
}

#[test]
fn features_command_writes_the_mel_spectrogram() {
    let dir = tempfile::tempdir().unwrap();
    let wav = repo().join("tests/fixtures/audio/tone_16k_pcm16.wav");
    let out = dir.path().join("m.npy");
    let res = capstream(&[
        "features",
        wav.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'shape': (80, 63)"), "{header}");
    let data: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let y = capstream::dsp::wav::read_wav(&std::fs::read(&wav).unwrap(), 60.0)
        .unwrap()
        .mono();
    let (mel, frames) = melspectrogram(&y, &MelParams::default_16k());
    assert_eq!(frames, 63);
    assert_eq!(data, mel);
    // A file at another rate is resampled first: same frame count per second.
    let res = capstream(&[
        "features",
        repo()
            .join("tests/fixtures/audio/pcm32_48k.wav")
            .to_str()
            .unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success());
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.contains("(80, 32)"),
        "0.5 s at 16 kHz, hop 256: {stdout}"
    );
    let bad = capstream(&[
        "features",
        repo()
            .join("tests/fixtures/audio/corrupt.wav")
            .to_str()
            .unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("corrupt.wav"));
}
