//! `capstream eval`: one split of the triplet fixture through the backfill pipeline,
//! with eval.json consistent with the rows and the report written; `--limit`; and an
//! unknown split failing with the splits that are there.

use std::path::Path;

use capstream::datasets::read_triplets;

use crate::util::{capstream, ids, read_output, repo};

fn fixture() -> std::path::PathBuf {
    repo().join("tests/fixtures/triplets/triplets.parquet")
}

/// Runs `capstream eval` on the fixture with the fixture models and any extra args.
fn eval(out: &Path, extra: &[&str]) -> std::process::Output {
    let model = repo().join("tests/fixtures/blip/tiny_b");
    let audio = repo().join("tests/fixtures/neural_audio/model");
    let data = fixture();
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--audio-model",
        audio.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    capstream(&args)
}

/// Ids of the fixture's rows of one split, in file order.
fn split_ids(split: &str) -> Vec<String> {
    read_triplets(&fixture())
        .unwrap()
        .into_iter()
        .filter(|t| t.split.as_deref() == Some(split))
        .map(|t| t.id)
        .collect()
}

#[test]
fn eval_of_a_split_writes_run_eval_json_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let res = eval(&out, &["--split", "val"]);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let want = split_ids("val");
    assert_eq!(want.len(), 4, "the fixture's val split");

    // The rows evaluated, in file order, and one output row each.
    let input: Vec<String> = read_triplets(&out.join("input.parquet"))
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(input, want);
    let run = out.join("run");
    let mut got = ids(&read_output(&run));
    got.sort();
    assert_eq!(got, want);

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(v["split"], "val");
    assert_eq!(v["rows"], 4);
    assert!(v["model"].as_str().unwrap().ends_with("tiny_b"));
    assert!(v["audio_model"].as_str().unwrap().ends_with("model"));
    assert!(v["data"].as_str().unwrap().ends_with("triplets.parquet"));
    let (ok, err) = (
        v["ok_rows"].as_u64().unwrap(),
        v["error_rows"].as_u64().unwrap(),
    );
    assert_eq!(ok + err, 4);
    // eval.json carries metrics.json as the run wrote it.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(v["caption_metrics"], metrics);
    assert_eq!(metrics["rows"], 4);
    // Every fixture row names a shape, so every ok row is scored.
    let m = &v["mentions"];
    assert_eq!(m["images"].as_u64().unwrap(), ok);
    assert_eq!(m["skipped"], 0);
    for k in [
        "object_accuracy",
        "colour_accuracy",
        "object_recall",
        "object_precision",
        "colour_recall",
        "colour_precision",
    ] {
        let x = m[k].as_f64().unwrap_or_else(|| panic!("mentions.{k}"));
        assert!((0.0..=1.0).contains(&x), "mentions.{k} = {x}");
    }

    // eval keeps what its report draws from: a thumbnail for every ok row.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<img src=\"data:image/png").count() as u64,
        ok,
        "thumbnails"
    );
    for p in ["input.parquet", "eval.json", "report.html", "metrics.json"] {
        assert!(stdout.contains(p), "stdout names {p}: {stdout}");
    }
}

#[test]
fn eval_limit_takes_the_first_rows_of_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let res = eval(&out, &["--split", "train", "--limit", "2"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let mut got = ids(&read_output(&out.join("run")));
    got.sort();
    assert_eq!(got, split_ids("train")[..2].to_vec());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run/eval.json")).unwrap()).unwrap();
    assert_eq!(v["rows"], 2);
}

#[test]
fn eval_of_an_unknown_split_names_the_splits_present() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let res = eval(&out, &["--split", "test"]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("no rows with split \"test\"")
            && err.contains("train (12)")
            && err.contains("val (4)"),
        "{err}"
    );
    assert!(!out.join("run").exists(), "nothing run");
}
