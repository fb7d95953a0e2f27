//! `models/default` on held-out images: the shipped model names the drawn shapes and
//! colours at the rate its card claims, it beats the best constant caption by the
//! margin the card reports, no caption is cut off by the token budget, and
//! transformers loads it to the same greedy ids.

use arrow::array::{Array, Int64Array, ListArray};

use crate::util::{capstream, read_output, repo};

fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn rate(v: &serde_json::Value, key: &str) -> f64 {
    v["mentions"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("mentions.{key} in {v}"))
}

#[test]
fn default_model_names_shapes_and_colours_at_the_card_rate() {
    let model = repo().join("models/default");
    let card_full = json(&model.join("eval.json"));
    let card_samples = json(&model.join("samples/eval.json"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let data = model.join("samples/heldout.parquet");
    let audio = model.join("audio");
    let res = capstream(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--audio-model",
        audio.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "test",
        "--constant-baseline",
        "0",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let got = json(&out.join("run/eval.json"));
    // Every caption ended with [SEP] inside the budget generation_config.json gives:
    // none is cut mid-sentence.
    let config = json(&model.join("config.json"));
    let sep = config["text_config"]["sep_token_id"].as_i64().unwrap();
    let budget = json(&model.join("generation_config.json"))["max_new_tokens"]
        .as_u64()
        .expect("generation_config.json sets max_new_tokens");
    assert!(
        budget >= 32,
        "{budget} new tokens cannot hold the longest references"
    );
    let mut captions = 0;
    for b in read_output(&out.join("run")) {
        let ids = b
            .column_by_name("caption_token_ids")
            .expect("caption_token_ids")
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            let row = ids.value(i);
            let row = row.as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(
                row.value(row.len() - 1),
                sep,
                "caption {i} was cut: {row:?}"
            );
            captions += 1;
        }
    }
    assert_eq!(captions, 100);
    assert_eq!(got["rows"], 100);
    assert_eq!(got["ok_rows"], 100);
    for key in [
        "object_accuracy",
        "colour_accuracy",
        "object_recall",
        "colour_recall",
    ] {
        let (now, claimed, full) = (
            rate(&got, key),
            rate(&card_samples, key),
            rate(&card_full, key),
        );
        // The same 100 images: only thread-count rounding may flip a caption or two.
        assert!(
            (now - claimed).abs() <= 0.03,
            "{key}: {now} on the samples, card says {claimed}"
        );
        // And the samples are representative of the whole test split.
        assert!(
            (now - full).abs() <= 0.15,
            "{key}: {now} on the samples, {full} on the test split"
        );
    }
    // The card's headline claim: well above the best constant caption.
    let cider = card_full["caption_metrics"]["corpus"]["cider_d"]
        .as_f64()
        .unwrap();
    let constant = card_full["best_constant_caption"]["cider_d"]
        .as_f64()
        .unwrap();
    assert!(
        cider >= 3.0 * constant,
        "CIDEr-D {cider} vs best constant {constant}"
    );
}

#[test]
fn transformers_loads_the_default_model_to_the_same_greedy_ids() {
    let model = repo().join("models/default");
    let images: Vec<_> = std::fs::read_dir(model.join("samples/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(images.len(), 12);
    let res = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("models/check_with_transformers.py"))
        .args(["--model", model.to_str().unwrap()])
        .args(["--capstream", env!("CARGO_BIN_EXE_capstream")])
        .args(&images)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}
