//! WAV reading and writing with `hound`.
//!
//! hound parses the header (format, rate, channels, data chunk); the samples of the
//! common layouts are then converted straight from the byte slice, since hound's
//! per-sample iterator was the largest single cost of reading a clip. Anything else
//! goes through hound's iterator, so both paths accept exactly the same files.

use std::io::Cursor;

/// Decoded audio: per-channel samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples per second.
    pub sample_rate: u32,
    /// One vector per channel, equal lengths.
    pub channels: Vec<Vec<f32>>,
}

/// Why audio bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioError {
    /// Not a WAV file hound can read, or corrupt data.
    Invalid(String),
    /// Zero channels, zero rate or no samples.
    Empty(String),
    /// Longer than the configured limit.
    TooLong(String),
}

impl std::fmt::Display for AudioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioError::Invalid(m) => write!(f, "invalid WAV: {m}"),
            AudioError::Empty(m) => write!(f, "empty audio: {m}"),
            AudioError::TooLong(m) => write!(f, "audio too long: {m}"),
        }
    }
}

impl std::error::Error for AudioError {}

/// What a WAV file may declare, checked on its header before any sample is decoded or
/// any buffer sized from it: a crafted rate or channel count must not size a
/// resampler's output or a per-channel split. A bare `f64` is a length limit with the
/// default rate and channel bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavLimits {
    /// Longest accepted clip.
    pub max_seconds: f64,
    /// Most channels accepted.
    pub max_channels: u16,
    /// Lowest sample rate accepted, Hz.
    pub min_sample_rate: u32,
    /// Highest sample rate accepted, Hz.
    pub max_sample_rate: u32,
}

/// Default channel bound: 7.1 surround.
pub const DEFAULT_MAX_CHANNELS: u16 = 8;
/// Default lowest rate: telephone audio.
pub const DEFAULT_MIN_SAMPLE_RATE: u32 = 8_000;
/// Default highest rate: the top of what studio converters produce.
pub const DEFAULT_MAX_SAMPLE_RATE: u32 = 384_000;

impl From<f64> for WavLimits {
    fn from(max_seconds: f64) -> WavLimits {
        WavLimits {
            max_seconds,
            max_channels: DEFAULT_MAX_CHANNELS,
            min_sample_rate: DEFAULT_MIN_SAMPLE_RATE,
            max_sample_rate: DEFAULT_MAX_SAMPLE_RATE,
        }
    }
}

impl Audio {
    /// Samples per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The mean of the channels.
    pub fn mono(&self) -> Vec<f32> {
        match self.channels.len() {
            0 => Vec::new(),
            1 => self.channels[0].clone(),
            n => (0..self.len())
                .map(|i| mean(self.channels.iter().map(|c| c[i]), n))
                .collect(),
        }
    }

    /// The mean of the channels, moving the samples of mono audio instead of copying.
    pub fn into_mono(mut self) -> Vec<f32> {
        if self.channels.len() == 1 {
            return self.channels.pop().unwrap_or_default();
        }
        self.mono()
    }
}

/// The mean of one frame's samples. Every mixdown goes through this one expression so
/// that [`Audio::mono`] and [`read_wav_mono`] agree bit for bit.
#[inline]
fn mean(frame: impl Iterator<Item = f32>, n: usize) -> f32 {
    frame.sum::<f32>() / n as f32
}

/// A parsed header and the still-encoded samples.
struct Encoded<'a> {
    sample_rate: u32,
    channels: usize,
    /// Frames the header promises.
    frames: usize,
    kind: Layout<'a>,
}

enum Layout<'a> {
    /// Interleaved little-endian samples of `bytes` bytes each, all present.
    Raw {
        data: &'a [u8],
        bytes: usize,
        float: bool,
        bits: u16,
    },
    /// A layout the fast path does not know: hound decodes it.
    Hound(hound::WavReader<Cursor<&'a [u8]>>),
}

/// A copy of `bytes` with honest sizes when the `data` chunk's size is a placeholder:
/// programs that write WAV to a pipe (`espeak-ng --stdout`, `ffmpeg -f wav
/// -`) cannot seek back, so they leave placeholder sizes (0x7FFFF000 and the like) in
/// the header. libsndfile reads such files by taking what is there; so does this, down
/// to whole sample frames. `None` when the header needs no repair or is not RIFF/WAVE.
fn repair_streamed_header(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let u32_at = |at: usize| -> Option<usize> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut at = 12;
    let mut block_align = 1usize;
    while at + 8 <= bytes.len() {
        let len = u32_at(at + 4)?;
        let id = &bytes[at..at + 4];
        if id == b"fmt " {
            block_align = bytes
                .get(at + 20..at + 22)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                .filter(|&a| a > 0)
                .unwrap_or(1);
        }
        if id == b"data" {
            let available = bytes.len() - (at + 8);
            // Only the sizes streaming writers leave: 0 or "as large as possible". A
            // file merely cut short keeps its honest size and stays an error.
            let placeholder = len == 0 || len >= 0x7FFF_0000;
            if len <= available || !placeholder || available == 0 {
                return None;
            }
            let kept = available - available % block_align;
            let mut out = bytes[..at + 8 + kept].to_vec();
            out[at + 4..at + 8].copy_from_slice(&(kept as u32).to_le_bytes());
            let riff = (out.len() - 8) as u32;
            out[4..8].copy_from_slice(&riff.to_le_bytes());
            return Some(out);
        }
        // Chunks are padded to even lengths.
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

/// Parses the header and checks the limits, before any sample is decoded.
fn open(bytes: &[u8], limits: WavLimits) -> Result<Encoded<'_>, AudioError> {
    let max_seconds = limits.max_seconds;
    if bytes.is_empty() {
        return Err(AudioError::Empty("no bytes".into()));
    }
    let r = hound::WavReader::new(Cursor::new(bytes))
        .map_err(|e| AudioError::Invalid(e.to_string()))?;
    let spec = r.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(AudioError::Empty(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    if !(limits.min_sample_rate..=limits.max_sample_rate).contains(&spec.sample_rate) {
        return Err(AudioError::Invalid(format!(
            "sample rate {} Hz is outside {}-{} Hz",
            spec.sample_rate, limits.min_sample_rate, limits.max_sample_rate
        )));
    }
    if spec.channels > limits.max_channels {
        return Err(AudioError::Invalid(format!(
            "{} channels, above the limit of {}",
            spec.channels, limits.max_channels
        )));
    }
    let frames = r.duration() as usize;
    let secs = frames as f64 / f64::from(spec.sample_rate);
    if secs > max_seconds {
        return Err(AudioError::TooLong(format!(
            "{secs:.2} s is above the limit of {max_seconds} s"
        )));
    }
    if frames == 0 {
        return Err(AudioError::Empty("no samples".into()));
    }
    let channels = usize::from(spec.channels);
    let samples = r.len() as usize;
    let float = spec.sample_format == hound::SampleFormat::Float;
    let bits = spec.bits_per_sample;
    // hound leaves the reader at the first byte of the data chunk, right after its
    // 8-byte header ("data" + length): the length gives the container width, which
    // hound keeps private (24-bit samples may sit in 3 or 4 bytes).
    let mut cur = r.into_inner();
    let start = cur.position() as usize;
    let container = start
        .checked_sub(8)
        .and_then(|h| bytes.get(h..start))
        .filter(|h| &h[..4] == b"data")
        .map(|h| u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize)
        .filter(|_| samples > 0)
        .map(|len| len / samples);
    // The (format, container, bits) triples hound itself decodes.
    let known = matches!(
        (float, container, bits),
        (true, Some(4), 32)
            | (false, Some(1), 8)
            | (false, Some(2), 16)
            | (false, Some(3), 24)
            | (false, Some(4), 24)
            | (false, Some(4), 32)
    );
    let kind = match container {
        Some(width) if known => {
            let need = samples * width;
            let data = bytes.get(start..start + need).ok_or_else(|| {
                AudioError::Invalid(format!(
                    "data chunk holds {} samples, the header promised {}",
                    bytes.len().saturating_sub(start) / width,
                    frames * channels
                ))
            })?;
            Layout::Raw {
                data,
                bytes: width,
                float,
                bits,
            }
        }
        _ => {
            cur.set_position(0);
            Layout::Hound(
                hound::WavReader::new(cur).map_err(|e| AudioError::Invalid(e.to_string()))?,
            )
        }
    };
    Ok(Encoded {
        sample_rate: spec.sample_rate,
        channels,
        frames,
        kind,
    })
}

impl Encoded<'_> {
    /// All samples, interleaved, as f32 in [-1, 1]. Integers are scaled as libsndfile does
    /// (`x / 2^(bits-1)`; a power of two, so the f32 product is exact rounding of the
    /// f64 one).
    fn interleaved(self) -> Result<Vec<f32>, AudioError> {
        let total = self.frames * self.channels;
        let out: Vec<f32> = match self.kind {
            Layout::Raw {
                data,
                bytes,
                float,
                bits,
            } => {
                let scale = 1.0 / (1u64 << (bits.clamp(1, 32) - 1)) as f32;
                let data = &data[..total * bytes];
                match (float, bytes, bits) {
                    (true, _, _) => data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    // 8-bit WAV is unsigned with its zero at 128.
                    (false, 1, _) => data
                        .iter()
                        .map(|&b| (f32::from(b) - 128.0) * scale)
                        .collect(),
                    (false, 2, _) => data
                        .chunks_exact(2)
                        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * scale)
                        .collect(),
                    // Sign-extend 24 bits by placing them in the top of an i32.
                    (false, 3, _) => data
                        .chunks_exact(3)
                        .map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * scale)
                        .collect(),
                    (false, _, 24) => data
                        .chunks_exact(4)
                        .map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * scale)
                        .collect(),
                    (false, _, _) => data
                        .chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * scale)
                        .collect(),
                }
            }
            Layout::Hound(mut r) => {
                let spec = r.spec();
                match spec.sample_format {
                    hound::SampleFormat::Float => r
                        .samples::<f32>()
                        .take(total)
                        .collect::<Result<_, _>>()
                        .map_err(|e| AudioError::Invalid(e.to_string()))?,
                    hound::SampleFormat::Int => {
                        let scale =
                            1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
                        r.samples::<i32>()
                            .take(total)
                            .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                            .collect::<Result<_, _>>()
                            .map_err(|e| AudioError::Invalid(e.to_string()))?
                    }
                }
            }
        };
        if out.len() < total {
            return Err(AudioError::Invalid(format!(
                "data chunk holds {} samples, the header promised {total}",
                out.len(),
            )));
        }
        Ok(out)
    }
}

/// Reads WAV bytes (PCM 8/16/24/32 bit or float 32), refusing what `limits` does not
/// allow before decoding any sample. Integers are scaled as libsndfile does
/// (`x / 2^(bits-1)`).
pub fn read_wav(bytes: &[u8], limits: impl Into<WavLimits>) -> Result<Audio, AudioError> {
    let repaired = repair_streamed_header(bytes);
    let enc = open(repaired.as_deref().unwrap_or(bytes), limits.into())?;
    let (sample_rate, n, frames) = (enc.sample_rate, enc.channels, enc.frames);
    let interleaved = enc.interleaved()?;
    let channels = if n == 1 {
        vec![interleaved]
    } else {
        (0..n)
            .map(|c| interleaved.iter().skip(c).step_by(n).copied().collect())
            .collect()
    };
    debug_assert!(channels.iter().all(|c: &Vec<f32>| c.len() == frames));
    Ok(Audio {
        sample_rate,
        channels,
    })
}

/// Reads WAV bytes as [`read_wav`] does and returns the sample rate and the mean of the
/// channels ([`Audio::mono`], bit for bit), mixing each interleaved frame in one pass
/// instead of splitting the channels first.
pub fn read_wav_mono(
    bytes: &[u8],
    limits: impl Into<WavLimits>,
) -> Result<(u32, Vec<f32>), AudioError> {
    let repaired = repair_streamed_header(bytes);
    let enc = open(repaired.as_deref().unwrap_or(bytes), limits.into())?;
    let (sample_rate, n) = (enc.sample_rate, enc.channels);
    let interleaved = enc.interleaved()?;
    let mono = if n == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(n)
            .map(|f| mean(f.iter().copied(), n))
            .collect()
    };
    Ok((sample_rate, mono))
}

/// Encodes mono samples as 16-bit PCM WAV (clipped to [-1, 1]).
pub fn write_wav_pcm16(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut buf, spec).expect("writing to memory cannot fail");
        for &s in samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v).expect("writing to memory cannot fail");
        }
        w.finalize().expect("writing to memory cannot fail");
    }
    buf.into_inner()
}

/// Encodes mono samples as 32-bit float WAV.
pub fn write_wav_f32(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut buf, spec).expect("writing to memory cannot fail");
        for &s in samples {
            w.write_sample(s).expect("writing to memory cannot fail");
        }
        w.finalize().expect("writing to memory cannot fail");
    }
    buf.into_inner()
}

#[cfg(test)]
mod streamed_header_tests {
    use super::*;

    #[test]
    fn placeholder_sizes_of_a_piped_wav_are_repaired() {
        let samples: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let mut wav = write_wav_pcm16(&samples, 22050);
        // What a program writing to a pipe leaves: sizes it could not fill in.
        wav[4..8].copy_from_slice(&0x7FFF_F024u32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
        // And a stray byte at the end (a cut-off frame).
        wav.push(0x12);
        let a = read_wav(&wav, 10.0).unwrap();
        assert_eq!(a.sample_rate, 22050);
        assert_eq!(a.channels[0].len(), 1000);
        let ok = read_wav(&write_wav_pcm16(&samples, 22050), 10.0).unwrap();
        assert_eq!(a, ok);
        assert_eq!(read_wav_mono(&wav, 10.0).unwrap().1, ok.channels[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_rates_and_channel_counts_are_refused_on_the_header() {
        let write = |spec: hound::WavSpec, n: usize| {
            let mut buf = Cursor::new(Vec::new());
            {
                let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
                for _ in 0..n {
                    match spec.bits_per_sample {
                        8 => w.write_sample(0i8).unwrap(),
                        _ => w.write_sample(0i16).unwrap(),
                    }
                }
                w.finalize().unwrap();
            }
            buf.into_inner()
        };
        // A consistent header at 4 GHz (8-bit mono keeps the byte rate within u32).
        let wav = write(
            hound::WavSpec {
                channels: 1,
                sample_rate: 4_000_000_000,
                bits_per_sample: 8,
                sample_format: hound::SampleFormat::Int,
            },
            800,
        );
        let e = read_wav(&wav, 10.0).unwrap_err();
        assert!(
            matches!(&e, AudioError::Invalid(m) if m.contains("sample rate 4000000000 Hz is outside 8000-384000 Hz")),
            "{e}"
        );
        let slow = write_wav_pcm16(&[0.1; 800], 4000);
        assert!(read_wav(&slow, 10.0).is_err());
        let lax = WavLimits {
            min_sample_rate: 1000,
            ..WavLimits::from(10.0)
        };
        assert_eq!(read_wav(&slow, lax).unwrap().sample_rate, 4000);

        let many = write(
            hound::WavSpec {
                channels: 16,
                sample_rate: 16000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            },
            16 * 100,
        );
        let e = read_wav_mono(&many, 10.0).unwrap_err();
        assert!(
            matches!(&e, AudioError::Invalid(m) if m.contains("16 channels, above the limit of 8")),
            "{e}"
        );
        let wide = WavLimits {
            max_channels: 16,
            ..WavLimits::from(10.0)
        };
        assert_eq!(read_wav(&many, wide).unwrap().channels.len(), 16);
    }

    #[test]
    fn pcm16_round_trips_and_limits_hold() {
        let y: Vec<f32> = (0..1600).map(|i| ((i as f32) * 0.01).sin() * 0.8).collect();
        let bytes = write_wav_pcm16(&y, 16000);
        let a = read_wav(&bytes, 10.0).unwrap();
        assert_eq!((a.sample_rate, a.len(), a.channels.len()), (16000, 1600, 1));
        let err = y
            .iter()
            .zip(&a.channels[0])
            .map(|(x, z)| (x - z).abs())
            .fold(0f32, f32::max);
        assert!(err < 1.0 / 16384.0, "{err}");
        assert!(matches!(
            read_wav(&bytes, 0.05),
            Err(AudioError::TooLong(_))
        ));
        assert!(matches!(
            read_wav(b"RIFF....", 10.0),
            Err(AudioError::Invalid(_))
        ));
        assert!(matches!(read_wav(&[], 10.0), Err(AudioError::Empty(_))));
        let f = write_wav_f32(&y, 22050);
        assert_eq!(read_wav(&f, 10.0).unwrap().channels[0], y);
    }

    /// A WAV of `channels` x `frames` ramp samples in the given layout, with hound.
    fn wav(bits: u16, float: bool, channels: u16, frames: usize) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut buf = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        let max = (1i64 << (bits - 1)) - 1;
        for i in 0..frames * usize::from(channels) {
            // Sweeps the full range, both signs, including the extremes.
            let x = ((i * 7919) % 2001) as f64 / 1000.0 - 1.0;
            if float {
                w.write_sample(x as f32).unwrap();
            } else {
                w.write_sample((x * max as f64).round() as i32).unwrap();
            }
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    /// hound's own decoding of every sample, scaled as `read_wav` documents.
    fn via_hound(bytes: &[u8]) -> Vec<f32> {
        let mut r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let spec = r.spec();
        match spec.sample_format {
            hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
            hound::SampleFormat::Int => {
                let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
                r.samples::<i32>()
                    .map(|s| (f64::from(s.unwrap()) * scale) as f32)
                    .collect()
            }
        }
    }

    #[test]
    fn direct_decoding_equals_hound_for_every_layout() {
        for (bits, float) in [
            (8, false),
            (16, false),
            (24, false),
            (32, false),
            (32, true),
        ] {
            for channels in [1u16, 2, 3] {
                let bytes = wav(bits, float, channels, 1001);
                let want = via_hound(&bytes);
                let a = read_wav(&bytes, 10.0).unwrap();
                let n = usize::from(channels);
                assert_eq!(a.channels.len(), n);
                for (c, samples) in a.channels.iter().enumerate() {
                    let w: Vec<f32> = want.iter().skip(c).step_by(n).copied().collect();
                    assert_eq!(samples, &w, "{bits} bit, float {float}, channel {c}");
                }
                let (rate, mono) = read_wav_mono(&bytes, 10.0).unwrap();
                assert_eq!(rate, 8000);
                assert_eq!(mono, a.mono(), "{bits} bit, {channels} channels");
                assert_eq!(a.clone().into_mono(), a.mono());
                // A data chunk cut short is refused, not read as silence.
                let cut = &bytes[..bytes.len() - 3];
                assert!(matches!(read_wav(cut, 10.0), Err(AudioError::Invalid(_))));
            }
        }
    }
}
