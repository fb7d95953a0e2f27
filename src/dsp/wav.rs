//! WAV reading and writing with `hound`.

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
                .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / n as f32)
                .collect(),
        }
    }
}

/// Reads WAV bytes (PCM 8/16/24/32 bit or float 32), refusing more than `max_seconds`
/// before decoding any sample. Integers are scaled as libsndfile does (`x / 2^(bits-1)`).
pub fn read_wav(bytes: &[u8], max_seconds: f64) -> Result<Audio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty("no bytes".into()));
    }
    let mut r = hound::WavReader::new(Cursor::new(bytes))
        .map_err(|e| AudioError::Invalid(e.to_string()))?;
    let spec = r.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(AudioError::Empty(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
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
    let n = usize::from(spec.channels);
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| AudioError::Invalid(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
            r.samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(|e| AudioError::Invalid(e.to_string()))?
        }
    };
    if interleaved.len() < frames * n {
        return Err(AudioError::Invalid(format!(
            "data chunk holds {} samples, the header promised {}",
            interleaved.len(),
            frames * n
        )));
    }
    let mut channels = vec![Vec::with_capacity(frames); n];
    for (i, v) in interleaved.into_iter().take(frames * n).enumerate() {
        channels[i % n].push(v);
    }
    Ok(Audio {
        sample_rate: spec.sample_rate,
        channels,
    })
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
mod tests {
    use super::*;

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
}
