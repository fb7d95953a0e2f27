use std::io::Cursor;

use arrow::array::{Array, BinaryArray, StringArray, UInt32Array};
use image::{DynamicImage, ImageFormat};

use super::*;
use crate::schema::{EnvelopeBuilder, ErrorKind, RowError};
use crate::stages::Stage;

fn encode(img: DynamicImage, f: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, f).unwrap();
    buf.into_inner()
}

fn cfg(size: u32) -> DecodeImageConfig {
    toml::from_str(&format!("image_size = {size}")).unwrap()
}

#[test]
fn every_row_comes_out_with_its_outcome() {
    let png = encode(
        DynamicImage::ImageRgb8(image::RgbImage::new(50, 20)),
        ImageFormat::Png,
    );
    let mut b = EnvelopeBuilder::new();
    b.push("good", Some("a.png"), None, None, Ok(&png));
    b.push("text", Some("b.png"), None, None, Ok(b"not an image"));
    b.push(
        "failed-before",
        None,
        None,
        None,
        Err(RowError::new(ErrorKind::Io, "record failed-before: gone")),
    );
    b.push(
        "trunc",
        Some("c.png"),
        None,
        None,
        Ok(&png[..png.len() / 2]),
    );
    let batch = b.finish().unwrap();

    let mut stage = DecodeImage::new(&cfg(32), None);
    let mut out = Vec::new();
    stage.process(batch, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.schema(), output_schema());
    assert_eq!(o.num_rows(), 4);
    let kinds = o.column_by_name("error_kind").unwrap();
    let kinds = kinds.as_any().downcast_ref::<StringArray>().unwrap();
    assert!(kinds.is_null(0));
    assert_eq!(kinds.value(1), "unsupported_format");
    assert_eq!(kinds.value(2), "io");
    assert_eq!(kinds.value(3), "decode");
    let msgs = o.column_by_name("error").unwrap();
    let msgs = msgs.as_any().downcast_ref::<StringArray>().unwrap();
    assert!(
        msgs.value(1).starts_with("record text (b.png):"),
        "{}",
        msgs.value(1)
    );
    let pixels = o.column_by_name("pixels").unwrap();
    let pixels = pixels.as_any().downcast_ref::<BinaryArray>().unwrap();
    assert_eq!(pixels.value(0).len(), 32 * 32 * 3);
    assert!(pixels.is_null(1) && pixels.is_null(3));
    let w = o.column_by_name("width").unwrap();
    let w = w.as_any().downcast_ref::<UInt32Array>().unwrap();
    assert_eq!(w.value(0), 50);
}
