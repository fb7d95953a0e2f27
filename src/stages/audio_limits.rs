//! The reference-audio header limits `features` and `score` share: their defaults, the
//! check of a pipeline file's values, and the [`WavLimits`] the DSP reads with. Each
//! stage keeps the keys in its own table (`max_audio_channels`, `min_audio_rate`,
//! `max_audio_rate`), since serde cannot flatten into a table that denies unknown keys.

use crate::dsp::wav::{
    WavLimits, DEFAULT_MAX_CHANNELS, DEFAULT_MAX_SAMPLE_RATE, DEFAULT_MIN_SAMPLE_RATE,
};

pub(crate) fn max_audio_channels() -> u16 {
    DEFAULT_MAX_CHANNELS
}
pub(crate) fn min_audio_rate() -> u32 {
    DEFAULT_MIN_SAMPLE_RATE
}
pub(crate) fn max_audio_rate() -> u32 {
    DEFAULT_MAX_SAMPLE_RATE
}

/// The limits, or `None` when the values make no sense (no channel, a zero or inverted
/// rate range).
pub(crate) fn limits(
    max_seconds: f64,
    channels: u16,
    min_rate: u32,
    max_rate: u32,
) -> Option<WavLimits> {
    (channels > 0 && min_rate > 0 && min_rate <= max_rate).then_some(WavLimits {
        max_seconds,
        max_channels: channels,
        min_sample_rate: min_rate,
        max_sample_rate: max_rate,
    })
}
