//! Spoken descriptions with eSpeak NG, the voice screen readers use.
//!
//! Each utterance runs the `espeak-ng` program (Debian package `espeak-ng`) with the
//! text on its standard input, so texts never pass through a shell and concurrent
//! utterances cannot share state. Its 22.05 kHz output is resampled to the rate asked.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::dsp::resample::{resample, Quality};
use crate::dsp::wav::read_wav;
use crate::error::{Error, Result};

/// Voice settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Speaker {
    /// eSpeak NG voice name, e.g. `en`, `en-us`, `de`.
    pub voice: String,
    /// Words per minute (80–450).
    pub rate: u32,
    /// Pitch, 0–99.
    pub pitch: u32,
    /// Sample rate of the returned audio.
    pub sample_rate: u32,
    /// The program to run.
    pub program: String,
}

impl Default for Speaker {
    fn default() -> Self {
        Speaker {
            voice: "en-us".into(),
            rate: 175,
            pitch: 50,
            sample_rate: 16000,
            program: "espeak-ng".into(),
        }
    }
}

impl Speaker {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(80..=450).contains(&self.rate) || self.pitch > 99 || self.sample_rate < 4000 {
            return Err(Error::Config(
                "speech: rate must be 80-450 wpm, pitch 0-99, sample_rate at least 4000".into(),
            ));
        }
        if self.voice.is_empty() || self.voice.starts_with('-') {
            return Err(Error::Config(format!(
                "speech: bad voice name {:?}",
                self.voice
            )));
        }
        Ok(())
    }

    /// Speaks `text`; returns mono samples at `self.sample_rate`.
    pub fn speak(&self, text: &str) -> Result<Vec<f32>> {
        let fail = |m: String| Error::Stage {
            stage: "speech".into(),
            message: m,
        };
        let mut child = Command::new(&self.program)
            .args([
                "-v",
                &self.voice,
                "-s",
                &self.rate.to_string(),
                "-p",
                &self.pitch.to_string(),
                "--stdout",
                "--stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run {}: {e} (install the espeak-ng package)",
                    self.program
                ))
            })?;
        {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| fail(format!("writing to espeak-ng: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("waiting for espeak-ng: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "espeak-ng failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // espeak-ng streams a WAV whose header sizes are left at their maximum; hound
        // would refuse it, so trust only the data that came.
        let bytes = fix_streamed_wav(out.stdout);
        let audio = read_wav(&bytes, 3600.0).map_err(|e| fail(format!("espeak-ng output: {e}")))?;
        let mono = audio.mono();
        let mut r = resample(
            &[mono],
            audio.sample_rate,
            self.sample_rate,
            Quality::Balanced,
        )
        .map_err(fail)?;
        Ok(r.pop().unwrap_or_default())
    }
}

/// Rewrites the RIFF and data chunk sizes of a streamed WAV to the bytes present.
fn fix_streamed_wav(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() < 44 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return b;
    }
    let total = b.len() as u32;
    b[4..8].copy_from_slice(&(total - 8).to_le_bytes());
    // Walk chunks to the data chunk.
    let mut pos = 12;
    while pos + 8 <= b.len() {
        let id = [b[pos], b[pos + 1], b[pos + 2], b[pos + 3]];
        let size = u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]) as usize;
        if &id == b"data" {
            let avail = (b.len() - pos - 8) as u32;
            // Whole samples only (16-bit mono).
            let avail = avail & !1;
            b[pos + 4..pos + 8].copy_from_slice(&avail.to_le_bytes());
            b.truncate(pos + 8 + avail as usize);
            break;
        }
        pos += 8 + size + (size & 1);
    }
    b
}
