//! BLIP against transformers on tiny random checkpoints
//! (`tests/fixtures/blip/make_fixtures.py`): preprocessing, vision output and first-step
//! logits within 1e-4, and token ids equal in every generation case.

use std::path::{Path, PathBuf};

use capstream::imaging::{prepare, BicubicResizer, Limits};
use capstream_torch::models::blip::{Captioner, EarlyStopping, GenerationConfig};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::util::repo;

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/blip")
}

fn reference(dir: &Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn gen_config(kwargs: &Value) -> GenerationConfig {
    let mut g = GenerationConfig::default();
    let obj = kwargs.as_object().unwrap();
    for (k, v) in obj {
        match k.as_str() {
            "max_new_tokens" => g.max_new_tokens = v.as_u64().unwrap() as usize,
            "min_new_tokens" => g.min_new_tokens = v.as_u64().unwrap() as usize,
            "num_beams" => g.num_beams = v.as_u64().unwrap() as usize,
            "length_penalty" => g.length_penalty = v.as_f64().unwrap(),
            "early_stopping" => {
                g.early_stopping = match v {
                    Value::Bool(true) => EarlyStopping::True,
                    Value::Bool(false) => EarlyStopping::False,
                    _ => EarlyStopping::Never,
                }
            }
            "num_return_sequences" => g.num_return_sequences = v.as_u64().unwrap() as usize,
            "repetition_penalty" => g.repetition_penalty = v.as_f64().unwrap(),
            "no_repeat_ngram_size" => g.no_repeat_ngram_size = v.as_u64().unwrap() as usize,
            "eos_token_id" | "pad_token_id" => {}
            other => panic!("fixture uses generate kwarg {other} the test does not map"),
        }
    }
    g
}

/// transformers pads finished beams with [SEP]; compare up to the first generated one.
fn trim(ids: &[i64], prompt_len: usize) -> Vec<i64> {
    let mut v = ids.to_vec();
    if let Some(p) = v.iter().skip(prompt_len).position(|&t| t == 102) {
        v.truncate(prompt_len + p + 1);
    }
    v
}

fn ids_of(v: &Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn check_checkpoint(name: &str) {
    let dir = fixtures().join(name);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let refs = reference(&dir);
    let cap = Captioner::from_dir(&dir, Device::Cpu, Kind::Float).unwrap();
    let size = cap.image_size();
    let model = cap.model();
    let _g = tch::no_grad_guard();
    let mut resizer = BicubicResizer::new();
    let mut greedy_captions = Vec::new();
    for img in expected["images"].as_array().unwrap() {
        let i = img["index"].as_u64().unwrap();
        let bytes = std::fs::read(fixtures().join(img["file"].as_str().unwrap())).unwrap();
        let prepared = prepare(&bytes, &Limits::default(), size, size, &mut resizer).unwrap();
        let pixels = cap.pixels(&[&prepared.rgb]).unwrap();
        let want_px = &refs[&format!("img{i}.pixel_values")];
        // Our preprocessing against the processor, within the preprocessing bounds
        // (Pillow's pass order is not reproduced for every shape; see imaging::resample).
        let d = max_diff(&pixels, want_px);
        let mean = (&pixels - want_px)
            .abs()
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(
            d <= 0.1 && mean <= 0.01,
            "{name} img{i}: pixel values differ by {d} (mean {mean})"
        );

        let vision = model.vision_model().forward(want_px);
        let d = max_diff(&vision, &refs[&format!("img{i}.vision_last_hidden_state")]);
        assert!(d <= 1e-4, "{name} img{i}: vision output differs by {d}");
        let d = max_diff(
            &model.vision_model().pooled(&vision),
            &refs[&format!("img{i}.vision_pooler_output")],
        );
        assert!(d <= 1e-4, "{name} img{i}: pooled output differs by {d}");

        let bos = expected["special_tokens"]["dec"].as_i64().unwrap();
        let mut cache = model.text_decoder().new_cache(&vision);
        let logits = model.text_decoder().forward(
            &Tensor::from_slice(&[bos]).unsqueeze(0),
            None,
            &mut cache,
        );
        let d = max_diff(&logits.select(1, 0), &refs[&format!("img{i}.first_logits")]);
        assert!(d <= 1e-4, "{name} img{i}: first logits differ by {d}");

        for (case, got) in img["cases"].as_object().unwrap() {
            let spec = &expected["cases"][case];
            let gen = gen_config(&spec["kwargs"]);
            let prompt = if case.starts_with("prompt_") {
                "a picture of"
            } else {
                ""
            };
            let out = cap.caption(&pixels, &[prompt], &gen, false).unwrap();
            let prompt_len = cap.prompt_ids(prompt).unwrap().len();
            let want: Vec<Vec<i64>> = ids_of(&got["ids"])
                .iter()
                .map(|r| trim(r, prompt_len))
                .collect();
            let ours: Vec<Vec<i64>> = out[0]
                .captions
                .iter()
                .map(|c| c.token_ids.clone())
                .collect();
            assert_eq!(ours, want, "{name} img{i} case {case}");
            if case == "greedy" {
                let text = &got["captions"][0];
                assert_eq!(
                    out[0].captions[0].text,
                    text.as_str().unwrap(),
                    "{name} img{i} caption text"
                );
                greedy_captions.push(out[0].captions[0].text.clone());
            }
        }
    }
    greedy_captions.dedup();
    assert!(
        greedy_captions.len() > 1,
        "captions must depend on the image"
    );

    // A batch with a different prompt per row: every row equals its single-image run.
    let batch = &expected["batch_mixed_prompts"];
    let prompts: Vec<&str> = batch["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let gen = gen_config(&batch["kwargs"]);
    let px: Vec<Tensor> = (0..prompts.len())
        .map(|i| refs[&format!("img{i}.pixel_values")].shallow_clone())
        .collect();
    let pixels = Tensor::cat(&px, 0);
    let out = cap.caption(&pixels, &prompts, &gen, false).unwrap();
    let want = ids_of(&batch["output_ids_stripped"]);
    for (r, p) in prompts.iter().enumerate() {
        let plen = cap.prompt_ids(p).unwrap().len();
        assert_eq!(
            out[r].captions[0].token_ids,
            trim(&want[r], plen),
            "{name} batch row {r}"
        );
        let single = cap.caption(&px[r], &[p], &gen, false).unwrap();
        assert_eq!(
            single[0].captions[0].token_ids, out[r].captions[0].token_ids,
            "{name} row {r} alone"
        );
    }
}

#[test]
fn tiny_a_matches_transformers() {
    check_checkpoint("tiny_a");
}

#[test]
fn tiny_b_with_tied_decoder_keys_matches_transformers() {
    check_checkpoint("tiny_b");
}

#[test]
fn strip_prompt_drops_the_prompt_text() {
    let dir = fixtures().join("tiny_a");
    let refs = reference(&dir);
    let cap = Captioner::from_dir(&dir, Device::Cpu, Kind::Float).unwrap();
    let px = &refs["img0.pixel_values"];
    let gen = GenerationConfig {
        max_new_tokens: 6,
        ..Default::default()
    };
    let kept = cap.caption(px, &["a picture of"], &gen, false).unwrap();
    let stripped = cap.caption(px, &["a picture of"], &gen, true).unwrap();
    let kept = &kept[0].captions[0].text;
    assert!(kept.starts_with("a picture of "), "{kept}");
    assert_eq!(&kept["a picture of ".len()..], stripped[0].captions[0].text);
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ] {
        std::fs::copy(fixtures().join("tiny_a").join(f), tmp.path().join(f)).unwrap();
    }
    // tiny_b's weights under tiny_a's config: every vision shape differs.
    std::fs::copy(
        fixtures().join("tiny_b/model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let err = Captioner::from_dir(tmp.path(), Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has shape [") && err.contains("but the config needs ["),
        "{err}"
    );
    // Drop one tensor from tiny_a's file.
    let tensors: Vec<(String, Tensor)> =
        Tensor::read_safetensors(fixtures().join("tiny_a/model.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(n, _)| n != "text_decoder.cls.predictions.bias")
            .collect();
    Tensor::write_safetensors(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let err = Captioner::from_dir(tmp.path(), Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor text_decoder.cls.predictions.bias (shape [413]) is missing"),
        "{err}"
    );
}

/// bf16 on CPU (opt-in, for speed): the parameters are bf16, and the vision output and
/// first logits stay near transformers' f32 values. f16 stays refused on CPU, where
/// libtorch lacks some of its kernels.
///
/// "Near" is set by transformers' own bf16 run of these fixtures, whose vision output
/// is off its f32 by 0.129 (tiny_a) and 0.153 (tiny_b) of the output's largest value:
/// the random weights (initializer_range raised) amplify rounding. The bound is twice
/// that; capstream's bf16 measured 0.076 / 0.171 on vision and 0.006 / ~0.01 on the
/// first logits, while a broken layer is off by the whole range or more.
#[test]
fn bf16_on_cpu_stays_near_transformers_f32() {
    use capstream_torch::models::device::parse_dtype;
    assert_eq!(parse_dtype("bf16", Device::Cpu).unwrap(), Kind::BFloat16);
    let err = parse_dtype("f16", Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("CUDA"), "{err}");

    const TOL: f64 = 0.3;
    for name in ["tiny_a", "tiny_b"] {
        let dir = fixtures().join(name);
        let refs = reference(&dir);
        let cap = Captioner::from_dir(&dir, Device::Cpu, Kind::BFloat16).unwrap();
        assert_eq!(cap.model().kind(), Kind::BFloat16);
        let _g = tch::no_grad_guard();
        let model = cap.model();
        let px = refs["img0.pixel_values"].to_kind(Kind::BFloat16);
        let vision = model.vision_model().forward(&px);
        assert_eq!(vision.kind(), Kind::BFloat16);
        let want = &refs["img0.vision_last_hidden_state"];
        let rel = max_diff(&vision.to_kind(Kind::Float), want) / want.abs().max().double_value(&[]);
        assert!(
            rel <= TOL,
            "{name}: bf16 vision output off by {rel} of its range"
        );
        let bos = Tensor::from_slice(&[cap.prompt_ids("").unwrap()[0]]).unsqueeze(0);
        let mut cache = model.text_decoder().new_cache(&vision);
        let logits = model
            .text_decoder()
            .forward(&bos, None, &mut cache)
            .select(1, 0);
        let want = &refs["img0.first_logits"];
        let rel = max_diff(&logits.to_kind(Kind::Float), want) / want.abs().max().double_value(&[]);
        assert!(
            rel <= TOL,
            "{name}: bf16 first logits off by {rel} of their range"
        );
        let out = cap
            .caption(&px, &[""], &GenerationConfig::default(), false)
            .unwrap();
        assert!(!out[0].captions[0].token_ids.is_empty());
    }
}
