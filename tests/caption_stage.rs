//! The `caption` stage in the default pipeline (models/default): captions equal
//! `capstream caption`'s for the same files, error rows stay error rows, and the
//! embedding has the vision width.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, Int64Array, ListArray};

use crate::util::{capstream, read_output, repo, run_pipeline, strings};

#[test]
fn pipeline_captions_equal_the_cli() {
    let input = repo().join("tests/fixtures/blip/images");
    let out = tempfile::tempdir().unwrap();
    let res = run_pipeline(
        &repo().join("pipelines/default.toml"),
        &input,
        out.path(),
        &[],
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );

    let mut files: Vec<String> = std::fs::read_dir(&input)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["caption", "--json", "--device", "cpu", "--model"];
    let model = repo().join("models/default");
    args.push(model.to_str().unwrap());
    args.extend(files.iter().map(String::as_str));
    let cli = capstream(&args);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let want: HashMap<String, (String, Vec<i64>)> = String::from_utf8_lossy(&cli.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["image"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let ids = v["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            (name, (v["caption"].as_str().unwrap().to_string(), ids))
        })
        .collect();
    assert_eq!(want.len(), 4);

    let batches = read_output(out.path());
    let mut seen = 0;
    for b in &batches {
        let uris = strings(b, "uri");
        let caps = strings(b, "caption");
        let models = strings(b, "caption_model");
        let ids = b.column_by_name("caption_token_ids").unwrap();
        let ids = ids.as_any().downcast_ref::<ListArray>().unwrap();
        let emb = b.column_by_name("image_embedding").unwrap();
        let emb = emb.as_any().downcast_ref::<ListArray>().unwrap();
        for i in 0..b.num_rows() {
            let name = Path::new(uris[i].as_deref().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let (text, tokens) = &want[&name];
            assert_eq!(caps[i].as_deref(), Some(text.as_str()), "{name}");
            let row = ids.value(i);
            let row = row.as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(row.values().to_vec(), *tokens, "{name}");
            assert_eq!(models[i].as_deref(), Some("default"));
            assert_eq!(emb.value(i).len(), 128, "vision width of models/default");
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
}

#[test]
fn failed_rows_carry_no_caption() {
    let out = tempfile::tempdir().unwrap();
    let res = run_pipeline(
        &repo().join("pipelines/default.toml"),
        &repo().join("tests/fixtures/images"),
        out.path(),
        &[],
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for b in read_output(out.path()) {
        let st = strings(&b, "status");
        let caps = strings(&b, "caption");
        for (s, c) in st.iter().zip(&caps) {
            assert_eq!(s.as_deref() == Some("ok"), c.is_some(), "{s:?} {c:?}");
        }
    }
}

#[test]
fn model_override_that_does_not_exist_fails_clearly() {
    let out = tempfile::tempdir().unwrap();
    let res = run_pipeline(
        &repo().join("pipelines/default.toml"),
        &repo().join("tests/fixtures/images"),
        out.path(),
        &["--model", "/nonexistent/blip"],
    );
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("/nonexistent/blip/config.json"), "{err}");
}
