use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, RecordBatch, StringArray, UInt32Builder,
};

use super::DecodeImageConfig;
use crate::error::Result;
use crate::imaging::{prepare, BicubicResizer, ImageError, Limits};
use crate::schema::{
    column, columns, error_columns, ok_mask, with_columns, Edge, ErrorKind, RowError,
};
use crate::stages::Stage;

/// The running stage: limits, target size and a resizer with its scratch buffers.
#[derive(Debug)]
pub struct DecodeImage {
    limits: Limits,
    size: u32,
    resizer: BicubicResizer,
}

impl DecodeImage {
    /// Builds the stage from its config; `model_size` is the caption model's input side.
    pub fn new(cfg: &DecodeImageConfig, model_size: Option<u32>) -> Self {
        DecodeImage {
            limits: cfg.limits(),
            size: cfg.image_size.or(model_size).unwrap_or(384),
            resizer: BicubicResizer::new(),
        }
    }
}

fn row_error(e: &ImageError, id: &str, uri: Option<&str>) -> RowError {
    let kind = match e {
        ImageError::Empty => ErrorKind::Empty,
        ImageError::TooLarge(_) => ErrorKind::TooLarge,
        ImageError::UnsupportedFormat(_) => ErrorKind::UnsupportedFormat,
        ImageError::Decode(_) => ErrorKind::Decode,
    };
    let at = uri.map(|u| format!(" ({u})")).unwrap_or_default();
    RowError::new(kind, format!("record {id}{at}: {e}"))
}

impl Stage for DecodeImage {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = ok_mask(&batch)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let uris = column::<StringArray>(&batch, columns::URI)?;
        let images = column::<BinaryArray>(&batch, columns::IMAGE)?;
        let side = self.size as usize;
        let mut width = UInt32Builder::with_capacity(n);
        let mut height = UInt32Builder::with_capacity(n);
        let mut pw = UInt32Builder::with_capacity(n);
        let mut ph = UInt32Builder::with_capacity(n);
        let mut pixels = BinaryBuilder::with_capacity(n, n * side * side * 3);
        let mut errors: Vec<Option<RowError>> = vec![None; n];
        for i in 0..n {
            let uri = uris.is_valid(i).then(|| uris.value(i));
            let result = if !ok[i] {
                None
            } else if images.is_null(i) {
                Some(Err(RowError::new(
                    ErrorKind::MissingImage,
                    format!("record {}: no image bytes", ids.value(i)),
                )))
            } else {
                let bytes = images.value(i);
                let (limits, size, resizer) = (&self.limits, self.size, &mut self.resizer);
                // A decoder bug on hostile bytes must cost one row, not the stream.
                let r = catch_unwind(AssertUnwindSafe(|| {
                    prepare(bytes, limits, size, size, resizer)
                }));
                Some(match r {
                    Ok(Ok(p)) => Ok(p),
                    Ok(Err(e)) => Err(row_error(&e, ids.value(i), uri)),
                    Err(_) => {
                        self.resizer = BicubicResizer::new();
                        Err(RowError::new(
                            ErrorKind::Internal,
                            format!(
                                "record {}{}: the image decoder panicked",
                                ids.value(i),
                                uri.map(|u| format!(" ({u})")).unwrap_or_default()
                            ),
                        ))
                    }
                })
            };
            match result {
                Some(Ok(p)) => {
                    width.append_value(p.source_width);
                    height.append_value(p.source_height);
                    pw.append_value(p.width);
                    ph.append_value(p.height);
                    pixels.append_value(&p.rgb);
                }
                other => {
                    if let Some(Err(e)) = other {
                        errors[i] = Some(e);
                    }
                    width.append_null();
                    height.append_null();
                    pw.append_null();
                    ph.append_null();
                    pixels.append_null();
                }
            }
        }
        let [status, kind, message] = error_columns(&batch, &errors)?;
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::STATUS, status),
            (columns::ERROR_KIND, kind),
            (columns::ERROR, message),
            (columns::WIDTH, Arc::new(width.finish())),
            (columns::HEIGHT, Arc::new(height.finish())),
            (columns::PIXELS, Arc::new(pixels.finish())),
            (columns::PIXELS_WIDTH, Arc::new(pw.finish())),
            (columns::PIXELS_HEIGHT, Arc::new(ph.finish())),
        ];
        out.push(with_columns(&batch, Edge::Decoded.schema(), replace)?);
        Ok(())
    }
}
