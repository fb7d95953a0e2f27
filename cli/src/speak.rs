//! `capstream speak`: a text spoken by eSpeak NG (the screen-reader voice) into a WAV.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use capstream::dsp::wav::write_wav_pcm16;
use capstream::speech::Speaker;

/// Speak a text with eSpeak NG into a 16-bit WAV file.
#[derive(Debug, Args)]
pub struct SpeakArgs {
    /// The text.
    text: String,
    /// Output WAV.
    #[arg(long)]
    out: PathBuf,
    /// eSpeak NG voice.
    #[arg(long, default_value = "en-us")]
    voice: String,
    /// Words per minute.
    #[arg(long, default_value_t = 175)]
    rate: u32,
    /// Pitch, 0-99.
    #[arg(long, default_value_t = 50)]
    pitch: u32,
    /// Output sample rate.
    #[arg(long, default_value_t = 16000)]
    sample_rate: u32,
}

pub fn run(a: SpeakArgs) -> Result<ExitCode> {
    let s = Speaker {
        voice: a.voice,
        rate: a.rate,
        pitch: a.pitch,
        sample_rate: a.sample_rate,
        ..Default::default()
    };
    s.validate()?;
    let y = s.speak(&a.text)?;
    std::fs::write(&a.out, write_wav_pcm16(&y, a.sample_rate))
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: {:.2} s at {} Hz",
        a.out.display(),
        y.len() as f64 / f64::from(a.sample_rate),
        a.sample_rate
    );
    Ok(ExitCode::SUCCESS)
}
