//! `/metrics` scraped during a run shows the counters moving.

use std::io::Write;

use crate::util::{free_port, http_get, pipeline, spawn_streaming_run, wait_for, write_images};

fn counter(body: &str, name: &str, stage: &str) -> u64 {
    body.lines()
        .find(|l| {
            l.starts_with(name)
                && l.contains(&format!("stage=\"{stage}\""))
                && !l.contains("reason=")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn counters_move_during_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(&dir.path().join("in"), 10, 80, 60);
    std::fs::write(dir.path().join("in/bad.png"), b"not a png").unwrap();
    let p = pipeline(
        dir.path(),
        "name = \"metrics-test\"\n[batch]\nmax_rows = 1\nmax_delay_ms = 5\n[source]\ntype = \"files\"\n[[stage]]\ntype = \"decode_image\"\nimage_size = 32\n[sink]\ntype = \"parquet\"\n",
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut child, mut stdin) =
        spawn_streaming_run(&p, &dir.path().join("out"), &["--metrics-addr", &addr]);
    for img in &images[..4] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    stdin.flush().unwrap();
    let scrape = || std::panic::catch_unwind(|| http_get(port, "/metrics")).unwrap_or_default();
    assert!(wait_for(30, || counter(
        &scrape(),
        "capstream_stage_records_in_total",
        "decode_image"
    ) == 4));
    let body = scrape();
    assert!(body.contains("capstream_stage_last_heartbeat_timestamp_seconds{pipeline=\"metrics-test\",stage=\"decode_image\"}"));
    assert!(body.contains("capstream_stage_batch_duration_seconds_count{pipeline=\"metrics-test\",stage=\"decode_image\"} 4"));

    for img in &images[4..] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    writeln!(stdin, "{}", dir.path().join("in/bad.png").display()).unwrap();
    stdin.flush().unwrap();
    assert!(wait_for(30, || counter(
        &scrape(),
        "capstream_stage_records_out_total",
        "decode_image"
    ) == 11));
    let body = scrape();
    assert!(body.contains(
        "capstream_stage_records_failed_total{pipeline=\"metrics-test\",reason=\"unsupported_format\",stage=\"decode_image\"} 1"
    ), "{body}");
    assert!(http_get(port, "/nope").contains("not found"));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
