//! How long each character of a spoken caption lasts, in log-mel frames: the targets
//! of the audio generator's duration predictor.
//!
//! There is no aligner to borrow, and eSpeak NG prints no timings for its own voices,
//! so the alignment is built from the synthesizer itself. Every word is spoken alone
//! with the same voice and its log-mel trimmed to its voiced frames; the utterance's
//! voiced frames are aligned by dynamic time warping ([`crate::dsp::dtw`]) against
//! those words' log-mels laid end to end, and each utterance frame counts for the word
//! its match belongs to. A word's frames are shared evenly by its characters (the
//! first ones take the remainder), the spaces between words get none, and the
//! silences before and after the voiced part go to the silence marks at either end.
//! Words spoken alone are slower than in a sentence; the warping absorbs that, which a
//! fixed scaling of solo lengths would not.
//!
//! Training-side only: it runs the synthesizer, and it must not be used by a stage.

use std::collections::HashMap;

use crate::dsp::dtw::dtw_match;
use crate::dsp::mel::{melspectrogram, power_to_db, DbRef, MelParams};
use crate::error::Result;
use crate::speech::Speaker;

/// Frames quieter than the clip's loudest by more than this (dB, loudest band) are
/// silence.
pub const VOICED_BELOW_PEAK_DB: f32 = 40.0;
/// dB of zero power with amin 1e-10: digital silence.
const SILENCE_DB: f32 = -100.0;
/// Features are dB relative to their clip's peak, clamped this far below it.
const FEATURE_RANGE_DB: f32 = 80.0;

/// The first and last voiced frames of a `[n_mels][frames]` dB matrix; `None` when no
/// frame is voiced (silence, or an empty matrix).
pub fn voiced_span(mel_db: &[f32], n_mels: usize, frames: usize) -> Option<(usize, usize)> {
    if frames == 0 || mel_db.len() != n_mels * frames {
        return None;
    }
    let loudest: Vec<f32> = (0..frames)
        .map(|t| {
            (0..n_mels)
                .map(|b| mel_db[b * frames + t])
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    let peak = loudest.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // At the floor of dB with amin 1e-10 the clip is digital silence.
    if !peak.is_finite() || peak <= SILENCE_DB {
        return None;
    }
    let voiced = |t: &usize| loudest[*t] >= peak - VOICED_BELOW_PEAK_DB;
    let first = (0..frames).find(voiced)?;
    let last = (0..frames).rev().find(voiced)?;
    Some((first, last))
}

/// Frames `first..=last` of a `[n_mels][frames]` dB matrix as frame-major features:
/// dB relative to the matrix's peak, clamped at −80.
fn features(mel_db: &[f32], n_mels: usize, frames: usize, first: usize, last: usize) -> Vec<f32> {
    let peak = mel_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out = Vec::with_capacity((last + 1 - first) * n_mels);
    for t in first..=last {
        for b in 0..n_mels {
            out.push((mel_db[b * frames + t] - peak).max(-FEATURE_RANGE_DB));
        }
    }
    out
}

/// Shares out frames: `lead` to the first character (the opening silence), `trail` to
/// the last (the closing one), each word's frames evenly over its characters.
/// `char_words[c]` is the word of character `c` (`None`: a silence or a space).
pub fn char_durations(
    char_words: &[Option<usize>],
    word_frames: &[usize],
    lead: usize,
    trail: usize,
) -> Vec<usize> {
    let mut out = vec![0usize; char_words.len()];
    let mut chars_of: Vec<Vec<usize>> = vec![Vec::new(); word_frames.len()];
    for (c, w) in char_words.iter().enumerate() {
        if let Some(w) = w {
            if let Some(list) = chars_of.get_mut(*w) {
                list.push(c);
            }
        }
    }
    for (w, chars) in chars_of.iter().enumerate() {
        if chars.is_empty() {
            continue;
        }
        let (each, rest) = (word_frames[w] / chars.len(), word_frames[w] % chars.len());
        for (k, &c) in chars.iter().enumerate() {
            out[c] = each + usize::from(k < rest);
        }
    }
    if let Some(first) = out.first_mut() {
        *first += lead;
    }
    if let Some(last) = out.last_mut() {
        *last += trail;
    }
    out
}

/// Aligns spoken captions with their words (see the module docs). Words spoken alone
/// are kept, so each distinct word runs the synthesizer once.
#[derive(Debug)]
pub struct Aligner {
    speaker: Speaker,
    mel: MelParams,
    top_db: f64,
    words: HashMap<String, Vec<f32>>,
}

impl Aligner {
    /// An aligner for clips spoken by `speaker` and described by `mel` (dB with ref 1,
    /// amin 1e-10 and `top_db`, as the audio model's log-mel).
    pub fn new(speaker: Speaker, mel: MelParams, top_db: f64) -> Self {
        Aligner {
            speaker,
            mel,
            top_db,
            words: HashMap::new(),
        }
    }

    /// Distinct words spoken so far.
    pub fn words_spoken(&self) -> usize {
        self.words.len()
    }

    fn log_mel(&self, y: &[f32]) -> (Vec<f32>, usize) {
        let (mel, frames) = melspectrogram(y, &self.mel);
        (
            power_to_db(&mel, DbRef::Value(1.0), 1e-10, Some(self.top_db)),
            frames,
        )
    }

    /// The voiced features of `word` spoken alone (empty when it makes no sound).
    fn word(&mut self, word: &str) -> Result<&[f32]> {
        if !self.words.contains_key(word) {
            let y = self.speaker.speak(word)?;
            let (db, frames) = self.log_mel(&y);
            let f = match voiced_span(&db, self.mel.n_mels, frames) {
                Some((a, b)) => features(&db, self.mel.n_mels, frames, a, b),
                None => Vec::new(),
            };
            self.words.insert(word.to_string(), f);
        }
        Ok(self.words.get(word).map_or(&[][..], Vec::as_slice))
    }

    /// Frames of each character of `text` in its clip's log-mel `mel_db`
    /// (`[n_mels][frames]`, dB). `char_words` maps the characters as the generator
    /// encodes them (silence, the lowercased words with single spaces, silence) to
    /// the words of `text.to_lowercase().split_whitespace()`. The result sums to
    /// `frames`.
    pub fn align(
        &mut self,
        text: &str,
        mel_db: &[f32],
        frames: usize,
        char_words: &[Option<usize>],
    ) -> Result<Vec<usize>> {
        let n_mels = self.mel.n_mels;
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let Some((first, last)) = voiced_span(mel_db, n_mels, frames) else {
            return Ok(char_durations(char_words, &vec![0; words.len()], frames, 0));
        };
        let utterance = features(mel_db, n_mels, frames, first, last);
        let mut concat = Vec::new();
        let mut owner = Vec::new();
        for (w, word) in words.iter().enumerate() {
            let f = self.word(word)?;
            owner.extend(std::iter::repeat_n(w, f.len() / n_mels));
            concat.extend_from_slice(f);
        }
        let mut word_frames = vec![0usize; words.len()];
        let voiced = last + 1 - first;
        if owner.is_empty() {
            // Nothing to align with: the voiced frames go evenly to the words.
            let n = words.len().max(1);
            for (w, wf) in word_frames.iter_mut().enumerate() {
                *wf = voiced / n + usize::from(w < voiced % n);
            }
        } else {
            for j in dtw_match(&utterance, &concat, n_mels) {
                word_frames[owner[j]] += 1;
            }
        }
        let spoken: usize = word_frames.iter().sum();
        let lead = first + (voiced - spoken.min(voiced));
        Ok(char_durations(
            char_words,
            &word_frames,
            lead,
            frames - 1 - last,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_share_their_word_and_silences_go_to_the_ends() {
        // [sil] a b [space] c [sil]
        let words = [None, Some(0), Some(0), None, Some(1), None];
        let d = char_durations(&words, &[5, 2], 3, 4);
        assert_eq!(d, vec![3, 3, 2, 0, 2, 4]);
        assert_eq!(d.iter().sum::<usize>(), 3 + 5 + 2 + 4);
    }

    #[test]
    fn the_voiced_span_skips_quiet_edges() {
        // 2 bands x 5 frames: frames 1..=3 loud.
        let db = [
            -100.0, -10.0, 0.0, -20.0, -100.0, //
            -100.0, -30.0, -5.0, -25.0, -100.0,
        ];
        assert_eq!(voiced_span(&db, 2, 5), Some((1, 3)));
        assert_eq!(voiced_span(&[], 2, 0), None);
        assert_eq!(voiced_span(&[-100.0; 10], 2, 5), None, "digital silence");
    }

    /// With eSpeak NG installed (the project installs it), a real caption: every
    /// word gets frames, the total is the clip's, and the silences sit at the ends.
    #[test]
    fn a_spoken_caption_aligns_with_its_words() {
        let speaker = Speaker::default();
        let Ok(y) = speaker.speak("a red circle and two blue squares") else {
            eprintln!("espeak-ng is not installed; skipped");
            return;
        };
        let mel = MelParams {
            sr: 16000,
            stft: crate::dsp::StftParams::new(1024, 512),
            n_mels: 80,
            fmin: 0.0,
            fmax: None,
            htk: false,
            norm: crate::dsp::MelScaleNorm::Slaney,
            power: 2.0,
        };
        let mut al = Aligner::new(speaker, mel, 80.0);
        let (db, frames) = al.log_mel(&y);
        let text = "A red circle and two blue squares";
        // As GeneratorConfig::encode lays it out.
        let mut char_words = vec![None];
        for (w, word) in text.to_lowercase().split_whitespace().enumerate() {
            if w > 0 {
                char_words.push(None);
            }
            char_words.extend(std::iter::repeat_n(Some(w), word.chars().count()));
        }
        char_words.push(None);
        let d = al.align(text, &db, frames, &char_words).unwrap();
        assert_eq!(d.len(), char_words.len());
        assert_eq!(d.iter().sum::<usize>(), frames);
        let per_word: Vec<usize> = (0..7)
            .map(|w| {
                d.iter()
                    .zip(&char_words)
                    .filter(|(_, cw)| **cw == Some(w))
                    .map(|(f, _)| f)
                    .sum()
            })
            .collect();
        assert!(per_word.iter().all(|&f| f > 0), "{per_word:?}");
        // "circle" and "squares" last longer than "a".
        assert!(
            per_word[2] > per_word[0] && per_word[6] > per_word[0],
            "{per_word:?}"
        );
        assert_eq!(al.words_spoken(), 7);
    }
}
