//! The triplet layout: `id`, `image` (encoded bytes), `captions` (list of strings, at
//! least one), `audio` (WAV bytes, optional), `split` (optional: `train`, `val`, `test`).
//!
//! Readers accept the large variants of each type (`LargeUtf8`, `LargeBinary`,
//! `LargeList`), as pyarrow and polars may write them, and cast them to the layout.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, ListArray, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::schema::references_type;

/// Triplet column names.
pub mod columns {
    /// Stable record id.
    pub const ID: &str = "id";
    /// Encoded image bytes (JPEG, PNG, …).
    pub const IMAGE: &str = "image";
    /// Reference captions.
    pub const CAPTIONS: &str = "captions";
    /// Reference audio as WAV bytes.
    pub const AUDIO: &str = "audio";
    /// `train`, `val` or `test`.
    pub const SPLIT: &str = "split";
}

/// Split names.
pub mod splits {
    /// Training rows.
    pub const TRAIN: &str = "train";
    /// Validation rows (held out during training).
    pub const VAL: &str = "val";
    /// Test rows (held out from everything).
    pub const TEST: &str = "test";
}

/// One image with its captions and, optionally, audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triplet {
    /// Stable id.
    pub id: String,
    /// Encoded image.
    pub image: Vec<u8>,
    /// Reference captions (at least one).
    pub captions: Vec<String>,
    /// Reference audio, WAV bytes.
    pub audio: Option<Vec<u8>>,
    /// Split name, when assigned.
    pub split: Option<String>,
}

/// The triplet Parquet schema (`schemas/triplets.json`).
pub fn triplet_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(columns::ID, DataType::Utf8, false),
        Field::new(columns::IMAGE, DataType::Binary, false),
        Field::new(columns::CAPTIONS, references_type(), false),
        Field::new(columns::AUDIO, DataType::Binary, true),
        Field::new(columns::SPLIT, DataType::Utf8, true),
    ]))
}

fn bad(path: &Path, message: String) -> Error {
    Error::Pipeline {
        path: path.to_path_buf(),
        message,
    }
}

fn column_as(
    batch: &RecordBatch,
    name: &str,
    ty: &DataType,
    path: &Path,
) -> Result<Option<ArrayRef>> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(a) => cast(a, ty)
            .map(Some)
            .map_err(|e| bad(path, format!("column {name:?}: {e}"))),
    }
}

/// Reads every triplet of a Parquet file, in file order. A missing `id`, `image` or
/// `captions` column, a null in one of them, or an empty caption list is an error that
/// names the file and row.
pub fn read_triplets(path: &Path) -> Result<Vec<Triplet>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let need = |name: &str, ty: &DataType| {
            column_as(&batch, name, ty, path)?.ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "no {name:?} column (triplet layout: id, image, captions, audio, split)"
                    ),
                )
            })
        };
        let ids = need(columns::ID, &DataType::Utf8)?;
        let images = need(columns::IMAGE, &DataType::Binary)?;
        let captions = need(columns::CAPTIONS, &references_type())?;
        let audio = column_as(&batch, columns::AUDIO, &DataType::Binary, path)?;
        let split = column_as(&batch, columns::SPLIT, &DataType::Utf8, path)?;
        let ids = downcast::<StringArray>(&ids);
        let images = downcast::<BinaryArray>(&images);
        let captions = downcast::<ListArray>(&captions);
        let audio = audio.as_ref().map(downcast::<BinaryArray>);
        let split = split.as_ref().map(downcast::<StringArray>);
        for i in 0..batch.num_rows() {
            let row = out.len();
            if ids.is_null(i) || images.is_null(i) || captions.is_null(i) {
                return Err(bad(
                    path,
                    format!("row {row}: id, image and captions must not be null"),
                ));
            }
            let list = captions.value(i);
            let texts = downcast::<StringArray>(&list);
            let caps: Vec<String> = (0..texts.len())
                .filter(|&j| texts.is_valid(j))
                .map(|j| texts.value(j).to_string())
                .collect();
            if caps.is_empty() {
                return Err(bad(
                    path,
                    format!("row {row} (id {}): no captions", ids.value(i)),
                ));
            }
            out.push(Triplet {
                id: ids.value(i).to_string(),
                image: images.value(i).to_vec(),
                captions: caps,
                audio: audio.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_vec()),
                split: split
                    .filter(|s| s.is_valid(i))
                    .map(|s| s.value(i).to_string()),
            });
        }
    }
    Ok(out)
}

fn downcast<T: 'static>(a: &ArrayRef) -> &T {
    a.as_any()
        .downcast_ref::<T>()
        .expect("cast to the layout type gives that array type")
}

/// Writes triplets as one zstd Parquet file in the triplet layout, atomically.
pub fn write_triplets(path: &Path, rows: &[Triplet]) -> Result<()> {
    let mut id = StringBuilder::new();
    let mut image = BinaryBuilder::new();
    let mut caps = ListBuilder::new(StringBuilder::new());
    let mut audio = BinaryBuilder::new();
    let mut split = StringBuilder::new();
    for t in rows {
        id.append_value(&t.id);
        image.append_value(&t.image);
        for c in &t.captions {
            caps.values().append_value(c);
        }
        caps.append(true);
        audio.append_option(t.audio.as_ref());
        split.append_option(t.split.as_ref());
    }
    let schema = triplet_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(image.finish()),
        Arc::new(caps.finish()),
        Arc::new(audio.finish()),
        Arc::new(split.finish()),
    ];
    // The list builder names its item field "item" and makes it nullable, as the layout.
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(1024))
        .build();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("triplets.parquet");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let rows = vec![
            Triplet {
                id: "a".into(),
                image: vec![1, 2, 3],
                captions: vec!["one".into(), "two".into()],
                audio: Some(vec![9]),
                split: Some(splits::TRAIN.into()),
            },
            Triplet {
                id: "b".into(),
                image: vec![4],
                captions: vec!["three".into()],
                audio: None,
                split: None,
            },
        ];
        write_triplets(&p, &rows).unwrap();
        assert_eq!(read_triplets(&p).unwrap(), rows);
    }
}
