use serde::Deserialize;

use crate::config::BatchConfig;
use crate::error::{Error, Result};
use crate::imaging::Limits;

/// `[[stage]] type = "decode_image"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeImageConfig {
    /// Side of the square model input, in pixels (BLIP: 384).
    #[serde(default = "default_size")]
    pub image_size: u32,
    /// Largest accepted `width * height`; larger images become `too_large` rows
    /// without being decoded.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Largest accepted encoded size in bytes.
    #[serde(default = "default_max_encoded_bytes")]
    pub max_encoded_bytes: usize,
    /// Worker threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Micro-batching for this stage, overriding the pipeline's `[batch]`.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

fn default_size() -> u32 {
    384
}
fn default_max_pixels() -> u64 {
    Limits::default().max_pixels
}
fn default_max_encoded_bytes() -> usize {
    Limits::default().max_encoded_bytes
}
fn default_workers() -> usize {
    1
}

impl DecodeImageConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(16..=4096).contains(&self.image_size) {
            return Err(Error::Config(format!(
                "image_size = {} is outside 16..=4096",
                self.image_size
            )));
        }
        if self.max_pixels == 0 || self.max_encoded_bytes == 0 {
            return Err(Error::Config(
                "max_pixels and max_encoded_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The decode limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_encoded_bytes: self.max_encoded_bytes,
            max_pixels: self.max_pixels,
        }
    }
}
