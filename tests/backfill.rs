//! Parquet in, Parquet out: ids, references and audio pass through; bad rows stay rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, ListArray, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::util::{read_output, repo, run_pipeline, strings};

#[test]
fn backfill_pipeline_keeps_every_row_and_its_references() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(repo().join("tests/fixtures/images/good.jpg")).unwrap();
    let png = std::fs::read(repo().join("tests/fixtures/images/good.png")).unwrap();
    let tone = std::fs::read(repo().join("tests/fixtures/audio/tone_16k_pcm16.wav")).unwrap();
    let corrupt = std::fs::read(repo().join("tests/fixtures/audio/corrupt.wav")).unwrap();

    let mut id = StringBuilder::new();
    let mut img = BinaryBuilder::new();
    let mut caps = ListBuilder::new(StringBuilder::new());
    let mut audio = BinaryBuilder::new();
    type Row<'a> = (
        &'a str,
        Option<&'a [u8]>,
        Option<&'a [&'a str]>,
        Option<&'a [u8]>,
    );
    let rows: [Row; 4] = [
        (
            "r1",
            Some(&jpeg),
            Some(&["a red box", "a box on a gradient"]),
            Some(&tone),
        ),
        ("r2", None, Some(&["nothing here"]), None),
        ("r3", Some(b"garbage bytes"), None, None),
        ("r4", Some(&png), None, Some(&corrupt)),
    ];
    for (i, im, c, a) in rows {
        id.append_value(i);
        img.append_option(im);
        match c {
            Some(c) => {
                for s in c {
                    caps.values().append_value(s);
                }
                caps.append(true);
            }
            None => caps.append(false),
        }
        audio.append_option(a);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("image", DataType::Binary, true),
        Field::new(
            "captions",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("audio", DataType::Binary, true),
        Field::new("split", DataType::Utf8, true),
    ]));
    let split: ArrayRef = Arc::new(StringArray::from(vec!["train"; 4]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(id.finish()),
            Arc::new(img.finish()),
            Arc::new(caps.finish()),
            Arc::new(audio.finish()),
            split,
        ],
    )
    .unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let f = std::fs::File::create(input.join("triplets.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let out = dir.path().join("out");
    // Every column, so that the features stage's log-mels can be checked.
    let p = crate::util::with_all_columns(dir.path(), "backfill.toml");
    let res = run_pipeline(&p, &input, &out, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let batches = read_output(&out);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let ids = strings(&b, "id");
    let row = |name: &str| ids.iter().position(|i| i.as_deref() == Some(name)).unwrap();
    let kinds = strings(&b, "error_kind");
    assert_eq!(
        kinds[row("r1")],
        None,
        "{:?}",
        strings(&b, "error")[row("r1")]
    );
    assert_eq!(kinds[row("r2")].as_deref(), Some("missing_image"));
    assert_eq!(kinds[row("r3")].as_deref(), Some("unsupported_format"));
    assert_eq!(kinds[row("r4")].as_deref(), Some("invalid_audio"));
    let uris = strings(&b, "uri");
    assert!(uris[row("r3")]
        .as_deref()
        .unwrap()
        .ends_with("triplets.parquet#2"));

    let refs = b.column_by_name("references").unwrap();
    let refs = refs.as_any().downcast_ref::<ListArray>().unwrap();
    let r1 = refs.value(row("r1"));
    let r1 = r1.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(
        (r1.value(0), r1.value(1)),
        ("a red box", "a box on a gradient")
    );
    assert!(refs.is_null(row("r3")));
    let audio = b.column_by_name("reference_audio").unwrap();
    let audio = audio.as_any().downcast_ref::<BinaryArray>().unwrap();
    assert_eq!(audio.value(row("r1")), tone.as_slice());
    assert!(audio.is_null(row("r2")));

    // features: the reference audio's log-mel equals the DSP module's, row-major 80 x 63.
    let mel = b.column_by_name("reference_mel").unwrap();
    let mel = mel.as_any().downcast_ref::<ListArray>().unwrap();
    let got = mel.value(row("r1"));
    let got = got
        .as_any()
        .downcast_ref::<arrow::array::Float32Array>()
        .unwrap();
    let y = capstream::dsp::wav::read_wav(&tone, 60.0).unwrap().mono();
    let (want, frames) =
        capstream::dsp::melspectrogram(&y, &capstream::dsp::MelParams::default_16k());
    let want =
        capstream::dsp::power_to_db(&want, capstream::dsp::DbRef::Value(1.0), 1e-10, Some(80.0));
    assert_eq!(frames, 63);
    assert_eq!(got.values().to_vec(), want);
    assert!(mel.is_null(row("r4")), "corrupt audio has no features");
    // speak: ok rows carry their caption as speech; error rows none.
    let speech = b.column_by_name("speech_wav").unwrap();
    let speech = speech.as_any().downcast_ref::<BinaryArray>().unwrap();
    let wav = capstream::dsp::wav::read_wav(speech.value(row("r1")), 60.0).unwrap();
    assert_eq!(wav.sample_rate, 16000);
    assert!(wav.seconds() > 0.2);
    assert!(speech.is_null(row("r2")) && speech.is_null(row("r4")));
}
