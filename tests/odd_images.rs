//! Images as phones, cameras and odd encoders make them, against Pillow.
//!
//! Fixtures come from `tests/fixtures/odd_images/make_fixtures.py`: for each case the
//! 48x48 image transformers' PIL path makes (`exif_transpose` -> `convert_to_rgb` ->
//! bicubic resize). A case matches when capstream decodes it, its oriented size is
//! Pillow's and every pixel is within 2 levels. The cases that do not match yet are
//! listed by name, so that the test fails both on a regression and on a fix that
//! forgets to shorten the list.

use std::collections::BTreeMap;

use capstream::imaging::{prepare, BicubicResizer, Limits};

use crate::util::repo;

const SIZE: u32 = 48;
const TOLERANCE: i32 = 2;

/// Cases Pillow decodes that capstream does not yet match (issue 14, part 3), with why.
const KNOWN_GAPS: &[&str] = &[
    // RLE skips: PIL leaves palette index 0 where the image crate leaves black.
    "bmp_rle4",
    "bmp_rle8",
    // The tiff crate has no float32 grey, 4-bit palette or YCbCr (JPEG-in-TIFF) support.
    "tiff_float32",
    "tiff_palette4",
    "tiff_ycbcr_jpeg",
];

#[test]
fn odd_images_match_pillow_except_the_known_gaps() {
    let dir = repo().join("tests/fixtures/odd_images");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut resizer = BicubicResizer::new();
    let mut outcome: BTreeMap<String, String> = BTreeMap::new();
    for c in cases {
        let name = c["name"].as_str().unwrap().to_string();
        let bytes = std::fs::read(dir.join(c["source"].as_str().unwrap())).unwrap();
        let got = prepare(&bytes, &Limits::default(), SIZE, SIZE, &mut resizer);
        if !c["pillow_ok"].as_bool().unwrap() {
            // Pillow refuses it: capstream may decode it or not, but must not panic.
            continue;
        }
        let why = match got {
            Err(e) => Some(format!("refused: {e}")),
            Ok(p) => {
                let want_size = (
                    c["width"].as_u64().unwrap() as u32,
                    c["height"].as_u64().unwrap() as u32,
                );
                let png = image::open(dir.join(c["expected_png"].as_str().unwrap()))
                    .unwrap()
                    .to_rgb8();
                let max = p
                    .rgb
                    .iter()
                    .zip(png.as_raw())
                    .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                    .max()
                    .unwrap_or(0);
                if (p.source_width, p.source_height) != want_size {
                    Some(format!(
                        "size {}x{}, Pillow {}x{}",
                        p.source_width, p.source_height, want_size.0, want_size.1
                    ))
                } else if max > TOLERANCE {
                    Some(format!("pixels differ by up to {max} levels"))
                } else {
                    None
                }
            }
        };
        if let Some(why) = why {
            outcome.insert(name, why);
        }
    }
    let gaps: Vec<&str> = outcome.keys().map(String::as_str).collect();
    assert_eq!(
        gaps, KNOWN_GAPS,
        "cases that do not match Pillow: {outcome:#?}"
    );
}
