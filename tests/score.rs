//! Scoring: the worked example of the reference through `capstream score`, clear
//! errors for bad inputs, and a backfill of the triplet fixture whose per-row scores,
//! `metrics.json` and `capstream score` on the same rows agree.

use std::collections::HashMap;

use arrow::array::{Array, Float64Array, StringArray};

use crate::util::{capstream, read_output, repo, run_pipeline};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn worked_example_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(
        dir.path(),
        "c.jsonl",
        "{\"id\": \"img1\", \"caption\": \"A man riding a horse on the beach\"}\n{\"id\": \"img2\", \"caption\": \"Two dogs are playing in the snow!\"}\n",
    );
    let r = write(
        dir.path(),
        "r.jsonl",
        "{\"id\": \"img1\", \"references\": [\"A man is riding a horse.\", \"A person rides a brown horse on the beach.\", \"Man riding horse\"]}\n{\"id\": \"img2\", \"references\": [\"Two dogs play in the snow.\", \"Dogs playing in snow.\"]}\n",
    );
    let out = capstream(&["score", "--candidates", &c, "--references", &r, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let close = |got: &serde_json::Value, want: f64, tol: f64| {
        let g = got.as_f64().unwrap();
        assert!((g - want).abs() <= tol, "{g} vs {want}");
    };
    // metrics.md, worked example E (pycocoevalcap 1.2, NLTK 3.10.4).
    close(&v["corpus"]["bleu_1"], 0.933333333208889, 1e-12);
    close(&v["corpus"]["bleu_2"], 0.8886751878638739, 1e-12);
    close(&v["corpus"]["bleu_3"], 0.6597577064820612, 1e-12);
    close(&v["corpus"]["bleu_4"], 0.42264693755805627, 1e-12);
    close(&v["per_item"][0]["bleu_4"], 0.4962644775350441, 1e-12);
    close(&v["per_item"][1]["bleu_4"], 7.31110445570201e-05, 1e-15);
    close(&v["per_item"][0]["meteor"], 0.7806451612903227, 1e-9);
    close(&v["per_item"][1]["meteor"], 0.9653916211293262, 1e-9);
    close(&v["corpus"]["rouge_l"], 0.8694813109425785, 1e-12);
    close(&v["per_item"][0]["cider_d"], 3.047881821114456, 1e-9);
    close(&v["per_item"][1]["cider_d"], 3.0118457043675173, 1e-9);
    close(&v["corpus"]["cider_d"], 3.0298637627409866, 1e-9);
    assert!(v["notes"][0]
        .as_str()
        .unwrap()
        .contains("not the Java METEOR 1.5"));
}

#[test]
fn bad_inputs_get_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let dup = write(
        dir.path(),
        "dup.jsonl",
        "{\"id\": \"a\", \"caption\": \"x\"}\n{\"id\": \"a\", \"caption\": \"y\"}\n",
    );
    let refs = write(
        dir.path(),
        "r.jsonl",
        "{\"id\": \"a\", \"references\": [\"x y\"]}\n{\"id\": \"z\", \"references\": [\"q\"]}\n",
    );
    let out = capstream(&[
        "score",
        "--candidates",
        &dup,
        "--references",
        &refs,
        "--no-meteor",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("id \"a\" appears more than once"), "{err}");

    let c = write(
        dir.path(),
        "c.jsonl",
        "{\"id\": \"a\", \"caption\": \"\"}\n{\"id\": \"b\", \"caption\": \"x\"}\n",
    );
    let out = capstream(&[
        "score",
        "--candidates",
        &c,
        "--references",
        &refs,
        "--no-meteor",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"], 1);
    assert_eq!(v["candidates_without_references"], serde_json::json!(["b"]));
    assert_eq!(v["references_without_candidates"], serde_json::json!(["z"]));
    assert_eq!(v["empty_candidates"], 1);
    assert!(v["per_item"][0]["bleu_1"].as_f64().unwrap() < 1e-6);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 candidate(s) have no references") && err.contains("empty candidate"),
        "{err}"
    );
}

#[test]
fn backfill_scores_rows_and_writes_corpus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = repo().join("tests/fixtures/triplets/triplets.parquet");
    let res = run_pipeline(&repo().join("pipelines/backfill.toml"), &data, &out, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("metrics.json (16 items scored)"));

    let mut per_row: HashMap<String, (f64, f64, f64)> = HashMap::new();
    for b in read_output(&out) {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let ids = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        let (b4, met, snr, mcd) = (
            col("bleu_4"),
            col("meteor"),
            col("audio_snr_db"),
            col("audio_mcd"),
        );
        for i in 0..b.num_rows() {
            assert!(
                b4.is_valid(i) && met.is_valid(i),
                "caption scores on every row"
            );
            assert!(
                snr.is_valid(i) && mcd.is_valid(i),
                "audio scores on every row"
            );
            per_row.insert(
                ids.value(i).to_string(),
                (b4.value(i), met.value(i), snr.value(i)),
            );
        }
    }
    assert_eq!(per_row.len(), 16);

    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["items_scored"], 16);
    assert_eq!(m["rows"], 16);
    assert_eq!(m["audio_rows_scored"], 16);
    for it in m["per_item"].as_array().unwrap() {
        let (b4, met, _) = per_row[it["id"].as_str().unwrap()];
        let rel = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
        assert!(
            rel(it["bleu_4"].as_f64().unwrap(), b4),
            "row and corpus per-item BLEU agree"
        );
        assert!(rel(it["meteor"].as_f64().unwrap(), met));
    }
    let mean_snr = per_row.values().map(|v| v.2).sum::<f64>() / 16.0;
    assert!((m["audio"]["audio_snr_db"].as_f64().unwrap() - mean_snr).abs() < 1e-9);

    // The same corpus through `capstream score` from the output and the dataset.
    let parts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("parquet"))
        .collect();
    assert_eq!(parts.len(), 1);
    let cli = capstream(&[
        "score",
        "--candidates",
        parts[0].to_str().unwrap(),
        "--references",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(v["corpus"], m["corpus"]);
}
