use serde::Deserialize;

use crate::error::{Error, Result};
use crate::imaging::Limits;

/// `[[stage]] type = "decode_image"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeImageConfig {
    /// Side of the square model input, in pixels. Unset: the caption stage's model
    /// decides (its `vision_config.image_size`), else 384 (BLIP base and large).
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Largest accepted `width * height`; larger images become `too_large` rows
    /// without being decoded.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Largest accepted encoded size in bytes.
    #[serde(default = "default_max_encoded_bytes")]
    pub max_encoded_bytes: usize,
    /// Largest accepted resize filter-weight table in bytes; it grows with the long
    /// side (a 1 x 89M image needs 1.4 GB), so an extreme aspect ratio is `too_large`.
    #[serde(default = "default_max_resize_table_bytes")]
    pub max_resize_table_bytes: u64,
}

fn default_max_pixels() -> u64 {
    Limits::default().max_pixels
}
fn default_max_encoded_bytes() -> usize {
    Limits::default().max_encoded_bytes
}
fn default_max_resize_table_bytes() -> u64 {
    Limits::default().max_resize_table_bytes
}

impl DecodeImageConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(size) = self.image_size.filter(|s| !(16..=4096).contains(s)) {
            return Err(Error::Config(format!(
                "image_size = {size} is outside 16..=4096"
            )));
        }
        if self.max_pixels == 0 || self.max_encoded_bytes == 0 || self.max_resize_table_bytes == 0 {
            return Err(Error::Config(
                "max_pixels, max_encoded_bytes and max_resize_table_bytes must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The decode limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_encoded_bytes: self.max_encoded_bytes,
            max_pixels: self.max_pixels,
            max_resize_table_bytes: self.max_resize_table_bytes,
        }
    }
}
