//! Distributed mode against embedded mode: the same rows for the same inputs (model
//! stage included, large batches through the Object Store), and clear errors when the
//! server cannot serve it.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};

use crate::nats_util::NatsServer;
use crate::util::{capstream, read_output, repo, run_pipeline, write_images};

/// A decode → caption (tiny_b) pipeline in `mode`; `nats` is the `[nats]` table.
fn pipeline_text(mode: &str, nats: &str) -> String {
    pipeline_named("modes", mode, nats, false)
}

/// The same, named `name`; with `chain`, caption runs in decode_image's workers.
fn pipeline_named(name: &str, mode: &str, nats: &str, chain: bool) -> String {
    let model = repo().join("tests/fixtures/blip/tiny_b");
    format!(
        r#"
name = "{name}"
mode = "{mode}"
[batch]
max_rows = 4
max_delay_ms = 20
{nats}
[source]
type = "files"
[[stage]]
type = "decode_image"
workers = 1
[[stage]]
type = "caption"
chain = {chain}
model = "{}"
device = "cpu"
max_new_tokens = 8
workers = 1
[stage.batch]
max_rows = 3
max_delay_ms = 50
[sink]
type = "parquet"
"#,
        model.display()
    )
}

/// Every output row by id: the row as a one-row batch.
fn rows_by_id(batches: &[RecordBatch]) -> HashMap<String, RecordBatch> {
    let mut m = HashMap::new();
    for b in batches {
        let ids = b.column_by_name("id").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let prev = m.insert(ids.value(i).to_string(), b.slice(i, 1));
            assert!(prev.is_none(), "id {} twice", ids.value(i));
        }
    }
    m
}

fn assert_same_row(id: &str, a: &RecordBatch, b: &RecordBatch) {
    assert_eq!(a.num_columns(), b.num_columns(), "{id}");
    for (f, col) in a.schema().fields().iter().zip(a.columns()) {
        let other: &ArrayRef = b.column_by_name(f.name()).unwrap();
        assert_eq!(
            col.to_data(),
            other.to_data(),
            "record {id}, column {}",
            f.name()
        );
    }
}

#[test]
fn nats_and_embedded_modes_write_the_same_rows() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_images(&input, 9, 40, 30);
    for f in std::fs::read_dir(repo().join("tests/fixtures/blip/images")).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, input.join(p.file_name().unwrap())).unwrap();
    }
    // Error rows must travel too.
    for bad in ["not-an-image.png", "truncated.jpg"] {
        std::fs::copy(
            repo().join("tests/fixtures/images").join(bad),
            input.join(bad),
        )
        .unwrap();
    }

    let emb_dir = dir.path().join("embedded");
    std::fs::create_dir_all(&emb_dir).unwrap();
    let emb = crate::util::pipeline(&emb_dir, &pipeline_text("embedded", ""));
    let out_emb = dir.path().join("out-embedded");
    let r = run_pipeline(&emb, &input, &out_emb, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // max_payload at its floor: every batch with image bytes or pixels goes through
    // the Object Store (claim check), the rest inline.
    let out_nats = run_nats(&server, dir.path(), &input, "modes", false);
    let a = rows_by_id(&read_output(&out_emb));
    let b = rows_by_id(&read_output(&out_nats));
    assert_eq!(a.len(), 15);
    let mut ka: Vec<_> = a.keys().collect();
    let mut kb: Vec<_> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    let mut errors = 0;
    for (id, row) in &a {
        assert_same_row(id, row, &b[id]);
        let st = row.column_by_name("status").unwrap();
        let st = st.as_any().downcast_ref::<StringArray>().unwrap();
        errors += (st.value(0) == "error") as usize;
    }
    assert_eq!(errors, 2, "the two bad files are error rows in both modes");
    assert!(
        out_nats.join("_ids").is_dir(),
        "the sink keeps its id index with the output"
    );

    // Chained: caption runs on decode_image's stage thread, the pixels never cross
    // the wire, and the rows are still the same.
    let out_chained = run_nats(&server, dir.path(), &input, "chained", true);
    let c = rows_by_id(&read_output(&out_chained));
    assert_eq!(c.len(), 15);
    for (id, row) in &a {
        assert_same_row(id, row, &c[id]);
    }
}

/// `capstream run` of the NATS variant of the pipeline (named `name`) over `input`;
/// returns the output folder.
fn run_nats(
    server: &NatsServer,
    dir: &std::path::Path,
    input: &std::path::Path,
    name: &str,
    chain: bool,
) -> std::path::PathBuf {
    // max_payload at its floor: every batch with image bytes or pixels goes through
    // the Object Store (claim check), the rest inline.
    let pdir = dir.join(name);
    std::fs::create_dir_all(&pdir).unwrap();
    let p = server.pipeline(
        &pdir,
        &pipeline_named(
            name,
            "nats",
            "[nats]\nmax_payload = 1024\ncommit_interval_ms = 200\nidle_wait_ms = 300\n",
            chain,
        ),
    );
    let out = dir.join(format!("out-{name}"));
    let r = capstream(&[
        "run",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        &server.url(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains("15 records submitted, 15 ids committed"),
        "{stdout}"
    );
    out
}

/// `capstream worker --stage STAGE` on pipeline `p` against `url`, run to its end
/// (these tests expect it to fail at once).
fn worker_once(stage: &str, p: &std::path::Path, url: &str) -> std::process::Output {
    capstream(&[
        "worker",
        "--stage",
        stage,
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        url,
    ])
}

#[test]
fn a_chained_stage_has_no_worker_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let p = crate::util::pipeline(dir.path(), &pipeline_named("c", "nats", "", true));
    let r = worker_once("caption", &p, "nats://127.0.0.1:1");
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("chain = true") && err.contains("--stage decode_image@1"),
        "{err}"
    );
}

#[test]
fn a_server_without_jetstream_is_named_as_the_problem() {
    let server = NatsServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let p = crate::util::pipeline(dir.path(), &pipeline_text("nats", ""));
    let r = worker_once("decode_image", &p, &server.url());
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("JetStream disabled"), "{err}");
    assert!(err.contains("-js"), "{err}");
}

#[test]
fn no_server_is_a_clear_error_and_nats_needs_nats_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = crate::util::pipeline(dir.path(), &pipeline_text("nats", ""));
    let port = crate::util::free_port();
    let r = capstream(&[
        "sink",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        &format!("nats://127.0.0.1:{port}"),
        "--output",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("cannot connect"), "{err}");

    let emb = dir.path().join("e");
    std::fs::create_dir_all(&emb).unwrap();
    let e = crate::util::pipeline(&emb, &pipeline_text("embedded", ""));
    let r = capstream(&[
        "run",
        "--pipeline",
        e.to_str().unwrap(),
        "--nats",
        "nats://127.0.0.1:4222",
        "--input",
        dir.path().to_str().unwrap(),
        "--output",
        dir.path().join("o2").to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("mode = \"nats\""));
}

#[test]
fn a_named_submission_submitted_again_is_stored_once() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let p = server.pipeline(
        dir.path(),
        "name = \"named\"\nmode = \"nats\"\n[source]\ntype = \"files\"\n[[stage]]\ntype = \"decode_image\"\n[sink]\ntype = \"parquet\"\n",
    );
    let input = dir.path().join("in");
    write_images(&input, 5, 20, 12);
    let submit = |name: &str| {
        let r = capstream(&[
            "submit",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &server.url(),
            "--input",
            input.to_str().unwrap(),
            "--submission",
            name,
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout).to_string()
    };
    assert!(submit("job-7").contains("5 records in 5 messages (0 already stored)"));
    // A restarted Job with the same name: the server drops every copy.
    assert!(submit("job-7").contains("(5 already stored)"));
    // Another name is another submission.
    assert!(submit("job-8").contains("(0 already stored)"));
    let r = capstream(&[
        "submit",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        &server.url(),
        "--input",
        input.to_str().unwrap(),
        "--submission",
        "bad name\n",
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--submission"));
}
