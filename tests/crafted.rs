//! Crafted Parquet input: unusable ids, cells over their caps in every bytes layout,
//! and a file that stops reading halfway. Each record ends as exactly one row.

use std::sync::Arc;

use arrow::array::{ArrayRef, LargeBinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use std::collections::HashMap;

use crate::util::{pipeline, read_output, repo, run_pipeline, strings};

fn write(
    path: &std::path::Path,
    ids: Vec<&str>,
    images: Vec<Option<&[u8]>>,
    audio: Vec<Option<&[u8]>>,
) {
    // large_binary columns: the source must read them as stored.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("image", DataType::LargeBinary, true),
        Field::new("audio", DataType::LargeBinary, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(LargeBinaryArray::from(images)),
        Arc::new(LargeBinaryArray::from(audio)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_dictionary_enabled(false)
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn crafted_parquet_records_each_end_as_one_clear_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let png = std::fs::read(repo().join("tests/fixtures/images/good.png")).unwrap();
    let tone = std::fs::read(repo().join("tests/fixtures/audio/tone_16k_pcm16.wav")).unwrap();
    let long = "L".repeat(2000);
    let big = vec![7u8; 300_000];
    write(
        &input.join("a.parquet"),
        vec![
            "plain",
            "a/b",
            "a_b",
            &long,
            "line\nbreak",
            "big-image",
            "big-audio",
        ],
        vec![
            Some(&png),
            Some(&png),
            Some(&png),
            Some(&png),
            Some(&png),
            Some(&big),
            Some(&png),
        ],
        vec![None, None, None, None, None, None, Some(&tone)],
    );
    // A file whose footer reads but whose data pages do not: 5 records.
    let broken = input.join("b.parquet");
    write(
        &broken,
        vec!["b0", "b1", "b2", "b3", "b4"],
        vec![Some(&png); 5],
        vec![None; 5],
    );
    let mut bytes = std::fs::read(&broken).unwrap();
    for b in &mut bytes[8..400] {
        *b ^= 0x5a;
    }
    std::fs::write(&broken, bytes).unwrap();

    let p = pipeline(
        dir.path(),
        r#"
name = "crafted"
[source]
type = "parquet"
max_image_bytes = 200000
max_audio_bytes = 1000
[[stage]]
type = "decode_image"
image_size = 32
[sink]
type = "parquet"
"#,
    );
    let out = dir.path().join("out");
    let res = run_pipeline(&p, &input, &out, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let batches = read_output(&out);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 12, "7 + 5 records, one row each");
    // id -> (error_kind, error)
    let mut got: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    for b in &batches {
        let (ids, kinds, errs) = (
            strings(b, "id"),
            strings(b, "error_kind"),
            strings(b, "error"),
        );
        for i in 0..b.num_rows() {
            let prev = got.insert(ids[i].clone().unwrap(), (kinds[i].clone(), errs[i].clone()));
            assert!(prev.is_none(), "two rows for {:?}", ids[i]);
        }
    }
    let kind = |id: &str| got[id].0.clone();
    let msg = |id: &str| got[id].1.clone().unwrap_or_default();
    for ok in ["plain", "a/b", "a_b"] {
        assert_eq!(kind(ok), None, "{ok}: {}", msg(ok));
    }
    let hashed = |raw: &str| {
        format!(
            "invalid-id-{}",
            capstream::sources::content_id(raw.as_bytes())
        )
    };
    assert_eq!(kind(&hashed(&long)).as_deref(), Some("invalid_id"));
    assert!(msg(&hashed(&long)).contains("is 2000 bytes, above max_id_bytes = 1024"));
    assert!(msg(&hashed(&long)).contains("\"LLLL"));
    assert_eq!(kind(&hashed("line\nbreak")).as_deref(), Some("invalid_id"));
    assert!(msg(&hashed("line\nbreak")).contains("U+000A"));
    assert_eq!(kind("big-image").as_deref(), Some("too_large"));
    assert!(msg("big-image").contains("300000 bytes, above max_image_bytes = 200000"));
    assert_eq!(kind("big-audio").as_deref(), Some("too_large"));
    assert!(msg("big-audio").contains("above max_audio_bytes = 1000"));
    let broken_rows: Vec<&String> = got
        .iter()
        .filter(|(_, (_, m))| m.as_deref().is_some_and(|m| m.contains("stopped reading")))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(broken_rows.len(), 5, "{got:?}");
    for k in 0..5 {
        let uri = format!("{}#{k}", broken.display());
        let id = capstream::sources::content_id(uri.as_bytes());
        assert_eq!(kind(&id).as_deref(), Some("decode"), "{uri}");
        assert!(msg(&id).contains(&uri));
    }
}

#[test]
fn limits_outside_their_range_are_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    for (table, key) in [
        (
            "[source]\ntype = \"parquet\"\nmax_image_bytes = 4294967296",
            "max_image_bytes",
        ),
        (
            "[source]\ntype = \"parquet\"\nmax_audio_bytes = 0",
            "max_audio_bytes",
        ),
        (
            "[batch]\nmax_bytes = 4294967296\n[source]\ntype = \"parquet\"",
            "max_bytes",
        ),
    ] {
        let p = pipeline(
            dir.path(),
            &format!("name = \"x\"\n{table}\n[[stage]]\ntype = \"decode_image\"\n[sink]\ntype = \"parquet\"\n"),
        );
        let out = crate::util::capstream(&["validate", p.to_str().unwrap()]);
        assert!(!out.status.success(), "{table}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{table}: {err}");
    }
}
