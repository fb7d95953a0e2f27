//! Audio signal processing as pure functions on slices.
//!
//! This module owns WAV I/O, resampling, the short-time Fourier transform and its
//! inverse, mel filterbanks and spectrograms, decibel scaling and Griffin-Lim, each
//! defined to match librosa 0.11 (see `tests/audio_parity.rs`), and dynamic time
//! warping. It must stay pure: no tokio, Arrow, metrics or configuration parsing, and
//! no tensors.

pub mod dtw;
pub mod griffin_lim;
pub mod mel;
pub mod mel_inverse;
pub mod npy;
pub mod resample;
pub mod stft;
pub mod wav;

pub use mel::{mel_filterbank, melspectrogram, power_to_db, DbRef, MelParams, MelScaleNorm};
pub use mel::{power_to_db_in_place, MelExtractor};
pub use resample::ResamplerCache;
pub use stft::{frame_count, Stft};
pub use stft::{istft, stft, Spectrogram, StftParams};
pub use wav::{Audio, AudioError};
