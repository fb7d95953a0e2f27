//! `capstream train audio` on the committed triplet fixture: the loss falls, the
//! checkpoints reload to identical outputs, a seed fixes the result bit for bit, and a
//! resumed run ends exactly where the uninterrupted one does.

use std::path::Path;

use capstream::datasets::{read_triplets, write_triplets};
use capstream_torch::models::audio::NeuralAudio;

use crate::util::{bytes, capstream, events, repo, train_log as log};

fn train(out: &Path, epochs: usize, seed: u64, extra: &[&str]) -> std::process::Output {
    train_on(
        &repo().join("tests/fixtures/triplets/triplets.parquet"),
        out,
        epochs,
        seed,
        extra,
    )
}

fn train_on(
    data: &Path,
    out: &Path,
    epochs: usize,
    seed: u64,
    extra: &[&str],
) -> std::process::Output {
    let model = repo().join("tests/fixtures/blip/tiny_b");
    let config = repo().join("tests/fixtures/neural_audio/small_config.json");
    let (epochs, seed) = (epochs.to_string(), seed.to_string());
    let mut args = vec![
        "train",
        "audio",
        "--data",
        data.to_str().unwrap(),
        "--caption-model",
        model.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        &epochs,
        "--seed",
        &seed,
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let res = capstream(&args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    res
}

#[test]
fn training_lowers_the_loss_and_checkpoints_reload_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    train(&out, 4, 0, &[]);
    let log = log(&out);
    // 12 train rows (split "train"), 4 val rows, batch 4: 3 steps an epoch.
    assert_eq!(events(&log, "start").len(), 1);
    assert_eq!(log[0]["train_examples"], 12);
    assert_eq!(log[0]["val_examples"], 4);
    assert_eq!(events(&log, "step").len(), 12);
    let epochs = events(&log, "epoch");
    assert_eq!(epochs.len(), 4);
    let f = |v: &serde_json::Value, k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing or not finite in {v}"))
    };
    for k in ["train_generator_loss", "train_vocoder_loss"] {
        assert!(
            f(epochs[3], k) < f(epochs[0], k),
            "{k} did not fall: {log:?}"
        );
    }
    for k in [
        "val_generator_mel_mse_db2",
        "val_generator_mcd",
        "val_generator_norm_mse",
        "val_generator_norm_snr_db",
        "val_generator_norm_sc",
        "val_generator_aligned_mel_mse_db2",
        "mean_mel_mel_mse_db2",
        "mean_mel_mcd",
        "val_vocoder_mse",
        "val_vocoder_snr_db",
        "val_vocoder_sc",
        "val_vocoder_lsd_db",
        "val_vocoder_mcd",
        "val_vocoder_lsd_db_abs",
        "val_end_to_end_sc",
        "griffin_lim_sc",
        "griffin_lim_snr_db",
        "griffin_lim_lsd_db",
        "griffin_lim_mcd",
    ] {
        f(epochs[3], k);
    }
    // The relative floor can only tighten LSD against the pinned absolute one.
    assert!(f(epochs[3], "val_vocoder_lsd_db") <= f(epochs[3], "val_vocoder_lsd_db_abs"));
    let k = "val_generator_aligned_mel_mse_db2";
    assert!(
        f(epochs[3], k) < f(epochs[0], k),
        "{k} did not fall: {log:?}"
    );

    for e in 1..=4 {
        let c = out.join(format!("checkpoint-epoch-{e}"));
        for file in [
            "config.json",
            "model.safetensors",
            "generator_optimizer.safetensors",
            "vocoder_optimizer.safetensors",
            "trainer_state.json",
        ] {
            assert!(c.join(file).is_file(), "{}/{file}", c.display());
        }
    }
    assert_eq!(
        bytes(out.join("model.safetensors")),
        bytes(out.join("checkpoint-epoch-4/model.safetensors"))
    );

    // Reloaded twice, from two folders: identical outputs of the documented shapes.
    let a = NeuralAudio::from_dir(&out, tch::Device::Cpu).unwrap();
    let b = NeuralAudio::from_dir(&out.join("checkpoint-epoch-4"), tch::Device::Cpu).unwrap();
    let emb: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).sin()).collect();
    let text = "two small red circles";
    let (x, y) = (
        a.synthesize(&[(&emb, text)]).unwrap().remove(0),
        b.synthesize(&[(&emb, text)]).unwrap().remove(0),
    );
    assert_eq!(x, y);
    assert!(x.frames >= 2);
    assert_eq!(x.mel_db.len(), 80 * x.frames);
    assert_eq!(x.waveform.len(), (x.frames - 1) * 512);
    assert!(x.waveform.iter().any(|&s| s != 0.0));
    // The generator depends on the image and on the words.
    let other: Vec<f32> = emb.iter().map(|v| -v).collect();
    assert_ne!(a.synthesize(&[(&other, text)]).unwrap()[0].mel_db, x.mel_db);
    let longer = "a checkered background with two small red circles and a large blue star";
    assert_ne!(a.synthesize(&[(&emb, longer)]).unwrap()[0].mel_db, x.mel_db);
}

#[test]
fn a_seed_fixes_the_result_and_resume_ends_where_the_full_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let split = dir.path().join("split");
    let other = dir.path().join("other");
    train(&full, 2, 7, &[]);
    train(&split, 1, 7, &[]);
    let ckpt = split.join("checkpoint-epoch-1");
    train(&split, 2, 7, &["--resume", ckpt.to_str().unwrap()]);
    train(&other, 2, 8, &[]);

    let weights = |d: &Path| bytes(d.join("model.safetensors"));
    assert_eq!(weights(&full), weights(&split), "resume changed the result");
    assert_ne!(weights(&full), weights(&other), "the seed is ignored");

    let split_log = log(&split);
    let resume = events(&split_log, "resume");
    assert_eq!(resume.len(), 1);
    assert_eq!(resume[0]["epoch"], 1);
    assert_eq!(resume[0]["step"], 3);
    let last = |l: &[serde_json::Value]| (*events(l, "epoch").last().unwrap()).clone();
    let (a, b) = (last(&log(&full)), last(&split_log));
    assert_eq!(a["epoch"], 2);
    assert_eq!(b["step"], 6);
    for k in [
        "train_generator_loss",
        "train_vocoder_loss",
        "val_generator_mel_mse_db2",
        "val_vocoder_sc",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
}

#[test]
fn unusable_triplets_are_skipped_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = read_triplets(&repo().join("tests/fixtures/triplets/triplets.parquet")).unwrap();
    rows[0].image = b"not an image".to_vec();
    rows[1].audio = None;
    rows[2].audio = Some(b"RIFF garbage".to_vec());
    let data = dir.path().join("t.parquet");
    write_triplets(&data, &rows).unwrap();
    let out = dir.path().join("run");
    let res = train_on(&data, &out, 1, 0, &[]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{err}");
    assert!(
        err.contains("16 triplets, 13 with usable audio, 3 skipped"),
        "{err}"
    );
    for id in ["t00", "t01", "t02"] {
        assert!(err.contains(id), "{id} not named: {err}");
    }
    assert_eq!(log(&out)[0]["train_examples"], 9);
}
