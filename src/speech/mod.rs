//! Spoken descriptions with eSpeak NG, the voice screen readers use.
//!
//! Each utterance runs the `espeak-ng` program (Debian package `espeak-ng`) with the
//! text on its standard input, so texts never pass through a shell and concurrent
//! utterances cannot share state. Its 22.05 kHz output is resampled to the rate asked.
//!
//! Every utterance has a deadline that grows with the text ([`Speaker::deadline`]): a
//! synthesizer that hangs is killed and reaped, and the caller gets an error naming
//! the deadline, instead of a stage that never returns. The text comes from, and the
//! output goes to, anonymous temporary files rather than pipes, so that neither side
//! can block on a full pipe and the wait needs no helper thread.

use std::io::{Read, Seek, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Deadline of an utterance, before the per-character allowance.
    pub timeout: Duration,
    /// Deadline added per character of text.
    pub timeout_per_char: Duration,
}

/// Most output accepted from one utterance: an hour of 22.05 kHz 16-bit mono.
const MAX_OUTPUT_BYTES: u64 = 22_050 * 2 * 3600 + 4096;

impl Default for Speaker {
    fn default() -> Self {
        Speaker {
            voice: "en-us".into(),
            rate: 175,
            pitch: 50,
            sample_rate: 16000,
            program: "espeak-ng".into(),
            timeout: Duration::from_secs(5),
            timeout_per_char: Duration::from_millis(20),
        }
    }
}

impl Speaker {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::Config(
                "speech: timeout_ms must be at least 1".into(),
            ));
        }
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

    /// How long speaking `text` may take before the synthesizer is killed.
    pub fn deadline(&self, text: &str) -> Duration {
        let chars = text.chars().count().min(u32::MAX as usize) as u32;
        self.timeout + self.timeout_per_char * chars
    }

    /// Speaks `text`; returns mono samples at `self.sample_rate`.
    pub fn speak(&self, text: &str) -> Result<Vec<f32>> {
        let fail = |m: String| Error::Stage {
            stage: "speech".into(),
            message: m,
        };
        let io = |what: &str, e: std::io::Error| fail(format!("{what}: {e}"));
        let mut input = tempfile::tempfile().map_err(|e| io("temporary text file", e))?;
        input
            .write_all(text.as_bytes())
            .and_then(|_| input.rewind())
            .map_err(|e| io("temporary text file", e))?;
        let mut output = tempfile::tempfile().map_err(|e| io("temporary output file", e))?;
        let mut errors = tempfile::tempfile().map_err(|e| io("temporary output file", e))?;
        let handle = |f: &std::fs::File| f.try_clone().map_err(|e| io("temporary file", e));
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
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(handle(&output)?))
            .stderr(Stdio::from(handle(&errors)?))
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run {}: {e} (install the espeak-ng package)",
                    self.program
                ))
            })?;
        let deadline = self.deadline(text);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(None) => {
                    // Kill and reap: no zombie, no process left speaking.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "{} did not finish within {:.1} s ({} ms + {} ms per character for {} characters); killed it",
                        self.program,
                        deadline.as_secs_f64(),
                        self.timeout.as_millis(),
                        self.timeout_per_char.as_millis(),
                        text.chars().count()
                    )));
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io("waiting for espeak-ng", e));
                }
            }
        };
        if !status.success() {
            let mut err = String::new();
            let _ = errors.rewind();
            let _ = (&mut errors).take(4096).read_to_string(&mut err);
            return Err(fail(format!("espeak-ng failed ({status}): {}", err.trim())));
        }
        let mut bytes = Vec::new();
        output
            .rewind()
            .and_then(|_| (&mut output).take(MAX_OUTPUT_BYTES).read_to_end(&mut bytes))
            .map_err(|e| io("reading espeak-ng output", e))?;
        // espeak-ng streams a WAV whose header sizes are left at their maximum; hound
        // would refuse it, so trust only the data that came.
        let bytes = fix_streamed_wav(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_deadline_grows_with_the_text() {
        let s = Speaker::default();
        assert_eq!(s.deadline(""), Duration::from_secs(5));
        assert_eq!(s.deadline(&"x".repeat(500)), Duration::from_secs(15));
    }

    #[test]
    fn a_hung_synthesizer_is_killed_and_reaped_at_its_deadline() {
        let d = tempfile::tempdir().unwrap();
        let pid_file = d.path().join("pid");
        let script = d.path().join("hang.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 30\n",
                pid_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Speaker {
            program: script.display().to_string(),
            timeout: Duration::from_millis(300),
            timeout_per_char: Duration::from_millis(10),
            ..Default::default()
        };
        let t = Instant::now();
        let err = s.speak("hello").unwrap_err().to_string();
        let took = t.elapsed();
        assert!(err.contains("did not finish within 0.3 s"), "{err}");
        assert!(took < Duration::from_secs(5), "returned after {took:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let pid = pid.trim();
        // Reaped: no process (not even a zombie) with that pid is left.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }

    #[test]
    fn a_failing_synthesizer_reports_its_stderr() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("fail.sh");
        std::fs::write(&script, "#!/bin/sh\necho 'no voice\nat all' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Speaker {
            program: script.display().to_string(),
            ..Default::default()
        };
        let err = s.speak("hello").unwrap_err().to_string();
        assert!(
            err.contains("no voice") && err.contains("exit status: 3"),
            "{err}"
        );
    }
}
