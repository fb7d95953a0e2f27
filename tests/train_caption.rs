//! `capstream train caption` from a config on a tiny synthetic set: the loss falls, the
//! checkpoint is a Hugging Face folder that `capstream caption` reloads to the captions
//! the trainer logged, and a resumed run ends bit for bit where the uninterrupted one
//! does.

use std::path::{Path, PathBuf};

use capstream::datasets::read_triplets;

use crate::util::{bytes, capstream, events, repo, train_log as log};

/// 48 drawn scenes at 32 px, 10% held out as test.
fn data(dir: &Path) -> PathBuf {
    let data = dir.join("synth.parquet");
    let d = data.to_str().unwrap();
    for args in [
        vec![
            "dataset",
            "synth",
            "--count",
            "48",
            "--seed",
            "3",
            "--size",
            "32",
            "--no-speak",
            "--threads",
            "1",
            "--out",
            d,
        ],
        vec!["dataset", "split", "--in", d, "--out", d, "--test", "0.1"],
    ] {
        let res = capstream(&args);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
    }
    data
}

fn train(data: &Path, out: &Path, extra: &[&str]) {
    let config = repo().join("tests/fixtures/train_caption/tiny_config.json");
    let mut args = vec![
        "train",
        "caption",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lr",
        "3e-3",
        "--warmup-steps",
        "2",
        "--val-fraction",
        "0.15",
        "--seed",
        "11",
        "--threads",
        "1",
        "--device",
        "cpu",
    ];
    if !extra.contains(&"--resume") {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    if !extra.contains(&"--batch-size") {
        args.extend(["--batch-size", "8"]);
    }
    args.extend_from_slice(extra);
    let res = capstream(&args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn training_lowers_the_loss_and_the_checkpoint_reloads_to_the_logged_captions() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("model");
    train(&data, &out, &["--epochs", "4"]);

    let log = log(&out);
    let start = events(&log, "start")[0];
    let epochs = events(&log, "epoch");
    assert_eq!(epochs.len(), 4);
    // 48 rows: 5 test, 15% of the other 43 validate.
    assert_eq!(start["val_images"], 6);
    assert_eq!(start["train_images"], 37);
    let first = epochs[0]["train_loss"].as_f64().unwrap();
    let last = epochs[3]["train_loss"].as_f64().unwrap();
    assert!(last < first - 0.5, "train loss {first} -> {last}");
    let (v1, v4) = (
        epochs[0]["val_loss"].as_f64().unwrap(),
        epochs[3]["val_loss"].as_f64().unwrap(),
    );
    assert!(v4 < v1, "validation loss {v1} -> {v4}");
    // Steps: ceil(37 / 8) = 5 per epoch.
    assert_eq!(epochs[3]["step"], 20);

    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "checkpoint-epoch-4/optimizer.safetensors",
        "checkpoint-epoch-4/trainer_state.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        bytes(out.join("model.safetensors")),
        bytes(out.join("checkpoint-epoch-4/model.safetensors"))
    );

    // The saved folder, loaded by `capstream caption` from the image files, captions
    // the validation images as the trainer did from its own copies.
    let triplets = read_triplets(&data).unwrap();
    let samples = epochs[3]["val_samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    let mut images = Vec::new();
    for s in samples {
        let id = s["id"].as_str().unwrap();
        let t = triplets.iter().find(|t| t.id == id).unwrap();
        let p = dir.path().join(format!("{id}.png"));
        std::fs::write(&p, &t.image).unwrap();
        images.push(p);
    }
    let mut args = vec![
        "caption",
        "--model",
        out.to_str().unwrap(),
        "--json",
        "--device",
        "cpu",
    ];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let res = capstream(&args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(res.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), samples.len());
    for (line, s) in lines.iter().zip(samples) {
        assert_eq!(line["caption"], s["caption"], "{}", s["id"]);
    }

    // transformers loads the folder and generates the same ids (the committed script).
    let py = repo().join(".venv/bin/python");
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(repo().join("models/check_with_transformers.py"))
        .args(["--model", out.to_str().unwrap()])
        .args(["--capstream", env!("CARGO_BIN_EXE_capstream")])
        .args(&images);
    let res = cmd.output().unwrap();
    assert!(
        res.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn a_resumed_run_ends_where_the_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let whole = dir.path().join("whole");
    train(&data, &whole, &["--epochs", "2"]);
    let resumed = dir.path().join("resumed");
    let ckpt = whole.join("checkpoint-epoch-1");
    train(&data, &resumed, &["--resume", ckpt.to_str().unwrap()]);
    let log = log(&resumed);
    let resume = events(&log, "resume");
    assert_eq!(resume.len(), 1);
    assert_eq!(resume[0]["epoch"], 1);
    assert_eq!(resume[0]["step"], 5);
    let epochs = events(&log, "epoch");
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0]["epoch"], 2);
    assert_eq!(epochs[0]["step"], 10);
    assert_eq!(
        bytes(whole.join("model.safetensors")),
        bytes(resumed.join("model.safetensors"))
    );
    assert_eq!(
        bytes(whole.join("checkpoint-epoch-2/optimizer.safetensors")),
        bytes(resumed.join("checkpoint-epoch-2/optimizer.safetensors"))
    );
}

/// The training loss equals transformers' `BlipForConditionalGeneration(…, labels=…)`
/// with label smoothing on the tiny_b fixture: right padding, labels -100 on padding.
#[test]
fn loss_matches_transformers_with_label_smoothing() {
    use capstream_torch::models::blip::{BlipForConditionalGeneration, Config};
    let dir = tempfile::tempdir().unwrap();
    let model_dir = repo().join("tests/fixtures/blip/tiny_b");
    let npy = dir.path().join("pixels.npy");
    let script = r#"
import json, sys, numpy as np, torch
from transformers import BlipForConditionalGeneration
torch.manual_seed(0)
m = BlipForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
m.text_decoder.label_smoothing = 0.1
px = torch.randn(2, 3, 48, 48)
np.save(sys.argv[2], px.numpy())
ids = torch.tensor([[411, 120, 130, 140, 150, 102], [411, 160, 170, 102, 0, 0]])
mask = (ids != 0).long()
labels = ids.masked_fill(mask == 0, -100)
with torch.no_grad():
    out = m(pixel_values=px, input_ids=ids, attention_mask=mask, labels=labels)
print(json.dumps({"loss": out.loss.item()}))
"#;
    let res = std::process::Command::new(repo().join(".venv/bin/python"))
        .args([
            "-c",
            script,
            model_dir.to_str().unwrap(),
            npy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let stdout = String::from_utf8(res.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let want = want["loss"].as_f64().unwrap();

    let (px, shape) = capstream::dsp::npy::decode_f32(&std::fs::read(&npy).unwrap()).unwrap();
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let px = tch::Tensor::from_slice(&px).reshape(shape);
    let cfg = Config::from_file(&model_dir.join("config.json")).unwrap();
    let model = BlipForConditionalGeneration::new(
        &cfg,
        &model_dir.join("model.safetensors"),
        tch::Device::Cpu,
    )
    .unwrap();
    let ids = tch::Tensor::from_slice(&[411i64, 120, 130, 140, 150, 102, 411, 160, 170, 102, 0, 0])
        .reshape([2, 6]);
    let mask = ids.ne(0).to_kind(tch::Kind::Int64);
    let labels = ids.where_scalarother(&mask.ne(0), -100);
    let got = tch::no_grad(|| model.loss(&px, &ids, &mask, &labels, 0.1)).double_value(&[]);
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "capstream {got}, transformers {want}"
    );
}

/// `--init` fine-tunes a Hugging Face checkpoint as is (its vocabulary and config kept,
/// label smoothing recorded in the written config), with a prompt masked out of the loss.
#[test]
fn fine_tuning_a_checkpoint_with_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("tuned");
    let init = repo().join("tests/fixtures/blip/tiny_b");
    let res = capstream(&[
        "train",
        "caption",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        "--prompt",
        "a picture of ",
        "--label-smoothing",
        "0.1",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "2e-3",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let log = log(&out);
    let epochs = events(&log, "epoch");
    let (first, last) = (
        epochs[0]["train_loss"].as_f64().unwrap(),
        epochs[2]["train_loss"].as_f64().unwrap(),
    );
    assert!(last < first, "train loss {first} -> {last}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let orig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(init.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["text_config"]["vocab_size"],
        orig["text_config"]["vocab_size"]
    );
    assert_eq!(cfg["vision_config"], orig["vision_config"]);
    assert_eq!(cfg["text_config"]["label_smoothing"], 0.1);
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(init.join("tokenizer.json")).unwrap()
    );
    let start = events(&log, "start")[0];
    assert_eq!(start["options"]["prompt"], "a picture of ");
}

fn weights(dir: &Path) -> Vec<(String, tch::Tensor)> {
    let mut w = tch::Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// Accumulating two batches of 4 gives the step of one batch of 8: micro-batches weigh
/// by their target tokens, so the gradient is the whole step's mean. And a seed fixes
/// the weights across processes.
#[test]
fn gradient_accumulation_equals_the_larger_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let (big, acc) = (dir.path().join("big"), dir.path().join("acc"));
    train(&data, &big, &["--epochs", "1", "--batch-size", "8"]);
    train(
        &data,
        &acc,
        &["--epochs", "1", "--batch-size", "4", "--grad-accum", "2"],
    );
    let steps = |d: &Path| -> Vec<f64> {
        events(&log(d), "step")
            .iter()
            .map(|s| s["loss"].as_f64().unwrap())
            .collect()
    };
    // The same seed in another process draws the same weights and order.
    let again = dir.path().join("again");
    train(&data, &again, &["--epochs", "1", "--batch-size", "8"]);
    assert_eq!(
        bytes(big.join("model.safetensors")),
        bytes(again.join("model.safetensors"))
    );
    let (a, b) = (steps(&big), steps(&acc));
    assert_eq!(a.len(), 5);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "step losses {a:?} vs {b:?}");
    }
    for ((n, x), (_, y)) in weights(&big).iter().zip(weights(&acc).iter()) {
        let diff = (x - y).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{n}: max difference {diff}");
    }
}

/// `--bf16`: bf16 parameters with f32 masters still learn, and checkpoints hold the
/// f32 masters, which `capstream caption` and transformers load.
#[test]
fn bf16_mixed_precision_learns_and_saves_f32() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let out = dir.path().join("bf16");
    train(&data, &out, &["--epochs", "4", "--bf16"]);
    let log = log(&out);
    let epochs = events(&log, "epoch");
    let (first, last) = (
        epochs[0]["train_loss"].as_f64().unwrap(),
        epochs[3]["train_loss"].as_f64().unwrap(),
    );
    assert!(last < first - 0.5, "train loss {first} -> {last}");
    for (n, t) in weights(&out) {
        assert_eq!(t.kind(), tch::Kind::Float, "{n}");
    }
    let opt = tch::Tensor::read_safetensors(out.join("checkpoint-epoch-4/optimizer.safetensors"))
        .unwrap();
    assert!(opt.iter().any(|(n, _)| n.starts_with("master.")));
    // A resumed bf16 run ends where the uninterrupted one does (masters restored).
    let resumed = dir.path().join("resumed");
    let ckpt = out.join("checkpoint-epoch-3");
    train(&data, &resumed, &["--resume", ckpt.to_str().unwrap()]);
    assert_eq!(
        bytes(out.join("model.safetensors")),
        bytes(resumed.join("model.safetensors"))
    );
}
