//! `decode_image`: encoded image bytes → the image at model size, 8-bit RGB.
//!
//! Decodes JPEG, PNG, WebP, GIF (first frame), BMP and TIFF; applies EXIF orientation;
//! composites alpha onto white; resizes straight to the model size with PIL's bicubic.
//! Normalization is left to whoever builds the model's tensor: 8-bit RGB is four times
//! smaller than floats on every hop after this one. Limits on encoded bytes and pixels
//! are checked on the header, before decoding.

mod config;
mod stage;

pub use config::DecodeImageConfig;
pub use stage::DecodeImage;

use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::schema::Edge;
use crate::stages::{BuildContext, Stage};

/// The stage's name.
pub const NAME: &str = "decode_image";

/// What the stage reads.
pub fn input_schema() -> SchemaRef {
    Edge::Source.schema()
}

/// What the stage emits.
pub fn output_schema() -> SchemaRef {
    Edge::Decoded.schema()
}

impl crate::stages::StageSpec for DecodeImageConfig {
    fn validate(&self) -> Result<()> {
        DecodeImageConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        input_schema()
    }
    fn output_schema(&self, _input: &SchemaRef) -> SchemaRef {
        output_schema()
    }
    /// The size comes from `image_size`, else from what the next stage asks for.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(DecodeImage::new(self, cx.downstream.image_size)))
    }
}

#[cfg(test)]
mod tests;
