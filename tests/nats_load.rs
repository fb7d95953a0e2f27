//! 10,000 small records through a no-model pipeline on NATS (loopback): all of them
//! committed exactly once, within a bounded time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::nats_util::{committed, NatsServer};
use crate::util::capstream;

pub const RECORDS: usize = 10_000;

/// A Parquet file of `n` records: `id` and a few distinct bytes as `image`.
pub fn write_records(path: &std::path::Path, n: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("image", DataType::Binary, true),
    ]));
    let ids: Vec<String> = (0..n).map(|i| format!("rec-{i:06}")).collect();
    let bytes: Vec<Vec<u8>> = (0..n).map(|i| (i as u64).to_le_bytes().to_vec()).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(BinaryArray::from(
                bytes.iter().map(|b| Some(b.as_slice())).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn ten_thousand_records_pass_through_exactly_once() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.parquet");
    write_records(&input, RECORDS);
    let p = server.pipeline(
        dir.path(),
        r#"
name = "load"
mode = "nats"
[batch]
max_rows = 64
[nats]
storage = "memory"
# Uncompressed bodies here; the other NATS tests run the default zstd.
compression = "none"
records_per_message = 16
max_ack_pending = 1024
commit_interval_ms = 500
idle_wait_ms = 300
[source]
type = "parquet"
[sink]
type = "parquet"
max_file_rows = 100000
"#,
    );
    let out = dir.path().join("out");
    let t = Instant::now();
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
    let secs = t.elapsed().as_secs_f64();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let ids = committed(&out);
    assert_eq!(ids.len(), RECORDS);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), RECORDS);
    eprintln!(
        "nats load: {RECORDS} records in {secs:.2}s ({:.0} records/s, process start-up included)",
        RECORDS as f64 / secs
    );
    assert!(
        Duration::from_secs_f64(secs) < Duration::from_secs(60),
        "{secs:.1}s"
    );

    // The same input again, at once, into a new folder: the server's de-duplication
    // window must not swallow a new submission of the same records.
    let again = dir.path().join("again");
    let r = capstream(&[
        "run",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        &server.url(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(committed(&again).len(), RECORDS);
}
