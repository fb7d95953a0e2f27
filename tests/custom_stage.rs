//! A stage that exists only in this test, registered as a user's crate would register
//! one: a folder's worth of code (config, schema, stage) and one `register` call. The
//! runtime, transport and CLI are not touched, and the stage still gets the standard
//! treatment: its table's shared keys, the upstream hint, metrics and error rows.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use serde::Deserialize;

use capstream::config::PipelineConfig;
use capstream::error::Result;
use capstream::pipeline::{Plan, Progress, Shutdown};
use capstream::schema::{append_fields, columns, stage_input, with_columns};
use capstream::sinks::lock_output;
use capstream::sources::SourceInput;
use capstream::stages::{
    register, registered, BuildContext, Hints, Registration, Stage, StageSpec,
};
use capstream::telemetry::{names, Metrics};

use crate::util::{ids, pipeline, read_output, write_images};

/// The test stage's `type`.
const NAME: &str = "test_pixel_bytes";
/// The column it adds.
const PIXEL_BYTES: &str = "pixel_bytes";

/// `[[stage]] type = "test_pixel_bytes"`: counts the bytes of each decoded image and
/// asks the stage before it for images of side `side`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PixelBytesConfig {
    side: u32,
}

impl StageSpec for PixelBytesConfig {
    fn input_schema(&self) -> SchemaRef {
        stage_input(vec![Field::new(columns::PIXELS, DataType::Binary, true)])
    }
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        append_fields(input, vec![Field::new(PIXEL_BYTES, DataType::UInt64, true)])
    }
    fn upstream_hints(&self, _cx: &BuildContext) -> Result<Hints> {
        Ok(Hints {
            image_size: Some(self.side),
        })
    }
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(PixelBytes))
    }
}

struct PixelBytes;

impl Stage for PixelBytes {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let pixels =
            capstream::schema::column::<arrow::array::BinaryArray>(&batch, columns::PIXELS)?;
        let n: UInt64Array = (0..pixels.len())
            .map(|i| (!pixels.is_null(i)).then(|| pixels.value(i).len() as u64))
            .collect();
        let schema = append_fields(
            &batch.schema(),
            vec![Field::new(PIXEL_BYTES, DataType::UInt64, true)],
        );
        out.push(with_columns(
            &batch,
            schema,
            vec![(PIXEL_BYTES, Arc::new(n) as ArrayRef)],
        )?);
        Ok(())
    }
}

fn register_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register(Registration::of::<PixelBytesConfig>(NAME)).expect("a new name");
    });
}

#[test]
fn a_stage_registered_by_its_user_runs_with_the_standard_treatment() {
    register_once();
    assert!(registered().contains(&NAME));
    assert!(
        register(Registration::of::<PixelBytesConfig>("decode_image")).is_err(),
        "a taken name is refused"
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_images(&input, 5, 50, 30);
    std::fs::write(input.join("broken.png"), b"not an image").unwrap();
    let file = pipeline(
        dir.path(),
        &format!(
            r#"
name = "custom"
[source]
type = "files"
[[stage]]
type = "decode_image"
[[stage]]
type = "{NAME}"
side = 24
workers = 2
[stage.batch]
max_rows = 2
[sink]
type = "parquet"
columns = "all"
"#
        ),
    );
    let cfg = PipelineConfig::load(&file).unwrap();
    assert_eq!(cfg.stages[1].name(), NAME);
    assert_eq!(cfg.stages[1].workers(), 2, "shared keys are the engine's");
    assert_eq!(cfg.stages[1].batch().unwrap().max_rows, 2);
    assert_eq!(cfg.stages[1].spec::<PixelBytesConfig>().unwrap().side, 24);

    let plan = Plan::new(cfg).unwrap();
    assert_eq!(
        plan.context(0).unwrap().downstream.image_size,
        Some(24),
        "decode_image hears the next stage's size"
    );
    let out = dir.path().join("out");
    let metrics = Metrics::new("custom");
    let progress = Arc::new(Progress::default());
    let summary = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(
            plan.open(
                SourceInput::parse(input.to_str().unwrap()),
                lock_output(&out).unwrap(),
                Arc::new(HashSet::new()),
            )
            .unwrap()
            .run(Shutdown::new(), metrics.clone(), progress),
        )
        .unwrap();
    assert_eq!(summary.rows, 6);
    assert_eq!(summary.failed, 1);

    let batches = read_output(&out);
    assert_eq!(ids(&batches).len(), 6, "every record is a row");
    let mut sizes = Vec::new();
    for b in &batches {
        let bytes = b
            .column_by_name(PIXEL_BYTES)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        let w = b
            .column_by_name(columns::PIXELS_WIDTH)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            sizes.push((
                bytes.is_valid(i).then(|| bytes.value(i)),
                w.is_valid(i).then(|| w.value(i)),
            ));
        }
    }
    sizes.sort();
    let mut want = vec![(Some(24 * 24 * 3), Some(24)); 5];
    want.insert(0, (None, None));
    assert_eq!(
        sizes, want,
        "24 px RGB images, and the broken one without pixels"
    );

    let text = metrics.render();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("stage=\"{NAME}\"")))
            .unwrap_or_else(|| panic!("{name} for {NAME} in:\n{text}"))
            .to_string()
    };
    assert!(line(names::RECORDS_IN).ends_with(" 6"), "{text}");
    assert!(line(names::RECORDS_OUT).ends_with(" 6"), "{text}");
}
