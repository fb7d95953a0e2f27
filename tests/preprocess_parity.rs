//! Image preprocessing against transformers' `BlipImageProcessor` (PIL backend).
//!
//! Fixtures come from `tests/fixtures/preprocess/make_fixtures.py`. For each image the
//! script stored the PIL-resized 8-bit image (whose normalization equals the processor's
//! output exactly; the script asserts it) and 2000 sampled values of the processor's own
//! float output. Bounds, in normalized units: mean abs diff ≤ 0.01, max ≤ 0.1.

use capstream::imaging::{normalize_chw, prepare, BicubicResizer, Limits, CLIP_MEAN, CLIP_STD};

use crate::util::repo;

const SIZE: u32 = 384;

#[test]
fn matches_blip_image_processor() {
    let dir = repo().join("tests/fixtures/preprocess");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let generator = &expected["generator"];
    assert_eq!(generator["processor_backend"], "pil");
    let cfg = &generator["processor_config"];
    for c in 0..3 {
        assert_eq!(cfg["image_mean"][c].as_f64().unwrap() as f32, CLIP_MEAN[c]);
        assert_eq!(cfg["image_std"][c].as_f64().unwrap() as f32, CLIP_STD[c]);
    }
    let fixtures = expected["fixtures"].as_array().unwrap();
    assert!(fixtures.len() >= 8);
    let mut resizer = BicubicResizer::new();
    let plane = (SIZE * SIZE) as usize;
    let mut failures = Vec::new();
    for fx in fixtures {
        let name = fx["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(fx["source"].as_str().unwrap())).unwrap();
        let p = prepare(&bytes, &Limits::default(), SIZE, SIZE, &mut resizer).unwrap();
        assert_eq!(
            (p.source_width, p.source_height),
            (
                fx["width"].as_u64().unwrap() as u32,
                fx["height"].as_u64().unwrap() as u32
            ),
            "{name}: size after EXIF orientation"
        );
        let mut ours = vec![0f32; plane * 3];
        normalize_chw(&p.rgb, CLIP_MEAN, CLIP_STD, &mut ours);

        // Every pixel, against the processor-equivalent PIL image.
        let png = image::open(dir.join(fx["expected_png"].as_str().unwrap()))
            .unwrap()
            .into_rgb8();
        let mut theirs = vec![0f32; plane * 3];
        normalize_chw(png.as_raw(), CLIP_MEAN, CLIP_STD, &mut theirs);
        let (mut sum, mut max) = (0f64, 0f32);
        for (a, b) in ours.iter().zip(&theirs) {
            let d = (a - b).abs();
            sum += f64::from(d);
            max = max.max(d);
        }
        let mean = sum / ours.len() as f64;

        // The processor's own numbers at the sampled positions.
        let mut sample_max = 0f32;
        for s in fx["samples"].as_array().unwrap() {
            let (c, y, x) = (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as usize,
                s[2].as_u64().unwrap() as usize,
            );
            let v = s[3].as_f64().unwrap() as f32;
            sample_max = sample_max.max((ours[c * plane + y * SIZE as usize + x] - v).abs());
        }
        println!("{name:24} mean abs {mean:.5}  max {max:.4}  sampled max {sample_max:.4}");
        if mean > 0.01 || max > 0.1 || sample_max > 0.1 {
            failures.push(format!(
                "{name}: mean {mean}, max {max}, sampled max {sample_max}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
