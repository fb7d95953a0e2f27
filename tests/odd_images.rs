//! Images as phones, cameras and odd encoders make them, against Pillow.
//!
//! Fixtures come from `tests/fixtures/odd_images/make_fixtures.py`: for each case the
//! 48x48 image transformers' PIL path makes (`exif_transpose` -> `convert_to_rgb` ->
//! bicubic resize). A case matches when capstream decodes it, its oriented size is
//! Pillow's and every pixel is within 2 levels. Every case Pillow decodes must match;
//! the ones Pillow refuses must not panic.

use std::collections::BTreeMap;

use capstream::imaging::{prepare, BicubicResizer, Limits};

use crate::util::repo;

const SIZE: u32 = 48;
const TOLERANCE: i32 = 2;

#[test]
fn every_odd_image_pillow_decodes_matches_pillow() {
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
    assert!(
        outcome.is_empty(),
        "cases that do not match Pillow: {outcome:#?}"
    );
}
