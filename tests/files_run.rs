//! A folder of good and bad images: exactly one output row per input file.

use arrow::array::{Array, BinaryArray, UInt32Array};

use crate::util::{outcomes, read_output, repo, run_pipeline};

#[test]
fn bad_inputs_become_error_rows_and_nothing_vanishes() {
    let input = repo().join("tests/fixtures/images");
    let out = tempfile::tempdir().unwrap();
    // The default pipeline with every column kept, so the decoded pixels can be checked.
    let p = crate::util::with_all_columns(out.path(), "default.toml");
    let rows = out.path().join("rows");
    let res = run_pipeline(&p, &input, &rows, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.starts_with("done: 8 rows (4 ok, 4 errors"),
        "{stdout}"
    );

    let batches = read_output(&rows);
    let got = outcomes(&batches);
    let want: [(&str, Option<&str>); 8] = [
        ("good.jpg", None),
        ("good.png", None),
        ("cmyk.jpg", None),
        ("rgba16.png", None),
        ("truncated.jpg", Some("decode")),
        ("not-an-image.png", Some("unsupported_format")),
        ("empty.jpg", Some("empty")),
        ("bomb.png", Some("too_large")),
    ];
    assert_eq!(got.len(), want.len(), "one row per input: {got:?}");
    for (name, kind) in want {
        let (status, k, msg) = &got[name];
        assert_eq!(k.as_deref(), kind, "{name}: {msg:?}");
        assert_eq!(
            status,
            if kind.is_some() { "error" } else { "ok" },
            "{name}"
        );
        if kind.is_some() {
            let msg = msg.as_deref().unwrap();
            assert!(
                msg.starts_with("record ") && msg.contains(name),
                "{name}: {msg}"
            );
        }
    }
    assert!(got["bomb.png"]
        .2
        .as_deref()
        .unwrap()
        .contains("20000x20000"));

    // Good rows carry the model-size image; error rows carry none.
    let side = default_image_size();
    for b in &batches {
        let st = crate::util::strings(b, "status");
        let px = b.column_by_name("pixels").unwrap();
        let px = px.as_any().downcast_ref::<BinaryArray>().unwrap();
        let pw = b.column_by_name("pixels_width").unwrap();
        let pw = pw.as_any().downcast_ref::<UInt32Array>().unwrap();
        for (i, status) in st.iter().enumerate() {
            if status.as_deref() == Some("ok") {
                // decode_image follows the caption model's size.
                assert_eq!(px.value(i).len(), side as usize * side as usize * 3);
                assert_eq!(pw.value(i), side);
            } else {
                assert!(px.is_null(i) && pw.is_null(i));
            }
        }
    }
}

/// `vision_config.image_size` of models/default, read the way transformers reads it.
fn default_image_size() -> u32 {
    let text = std::fs::read_to_string(repo().join("models/default/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let side = config["vision_config"]["image_size"].as_u64().unwrap();
    u32::try_from(side).unwrap()
}

#[test]
fn output_folder_with_committed_files_needs_resume() {
    let input = repo().join("tests/fixtures/images/good.png");
    let out = tempfile::tempdir().unwrap();
    let pipeline = repo().join("pipelines/default.toml");
    let run = |resume: bool| {
        let extra: &[&str] = if resume { &["--resume"] } else { &[] };
        run_pipeline(&pipeline, &input, out.path(), extra)
    };
    assert!(run(false).status.success());
    let again = run(false);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let resumed = run(true);
    assert!(resumed.status.success());
    assert!(String::from_utf8_lossy(&resumed.stdout)
        .starts_with("done: 0 rows (0 ok, 0 errors, 1 skipped"));
    assert_eq!(
        read_output(out.path())
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        1
    );
}

#[test]
fn the_output_holds_results_unless_asked_for_more() {
    use capstream::schema::{results_of, Edge};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    crate::util::write_images(&input, 6, 200, 150);
    let run = |columns: &str| -> (Vec<arrow::array::RecordBatch>, u64) {
        let text = format!(
            "name = \"cols\"\n[source]\ntype = \"files\"\n[[stage]]\ntype = \"decode_image\"\n\
             image_size = 96\n[sink]\ntype = \"parquet\"\n{columns}\n"
        );
        let out = dir.path().join(format!("out-{}", columns.len()));
        let p = crate::util::pipeline(dir.path(), &text);
        let res = run_pipeline(&p, &input, &out, &[]);
        assert!(
            res.status.success(),
            "{columns}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let bytes = crate::util::parts(&out)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        (read_output(&out), bytes)
    };
    let names = |b: &[arrow::array::RecordBatch]| -> Vec<String> {
        b[0].schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    let (results, small) = run("");
    // Fields only: a Parquet reader adds the file's key-value metadata to the schema.
    assert_eq!(
        results[0].schema().fields(),
        results_of(&Edge::Decoded.schema()).fields(),
        "results by default"
    );
    assert!(!names(&results).contains(&"pixels".to_string()));
    let (all, big) = run("columns = \"all\"");
    assert_eq!(all[0].schema().fields(), Edge::Decoded.schema().fields());
    let (exact, _) = run("columns = [\"id\", \"status\", \"width\"]");
    assert_eq!(names(&exact), ["id", "status", "width"]);
    for b in [&results, &all, &exact] {
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
    }
    assert!(big > small, "all: {big} bytes, results: {small} bytes");
}
