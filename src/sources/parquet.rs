//! Parquet files with an image-bytes column: the backfill source.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, ListArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde::Deserialize;

use super::{content_id, expand, Source, SourceInput};
use crate::error::{Error, Result};
use crate::schema::{references_type, EnvelopeBuilder, ErrorKind, RowError};

/// `[source] type = "parquet"`: which columns hold what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSourceConfig {
    /// Record ids; when the file lacks it, ids are content hashes of the image bytes.
    #[serde(default = "default_id")]
    pub id_column: String,
    /// Encoded image bytes (required).
    #[serde(default = "default_image")]
    pub image_column: String,
    /// Reference captions, a list of strings (optional; passes through).
    #[serde(default = "default_references")]
    pub references_column: String,
    /// Reference audio, WAV bytes (optional; passes through).
    #[serde(default = "default_audio")]
    pub audio_column: String,
    /// Images larger than this become `too_large` error rows.
    #[serde(default = "default_max_bytes")]
    pub max_image_bytes: usize,
}

fn default_id() -> String {
    "id".into()
}
fn default_image() -> String {
    "image".into()
}
fn default_references() -> String {
    "captions".into()
}
fn default_audio() -> String {
    "audio".into()
}
fn default_max_bytes() -> usize {
    50 << 20
}

impl ParquetSourceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_image_bytes == 0 {
            return Err(Error::Config(
                "[source] max_image_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn open(
        &self,
        input: &SourceInput,
        skip: Arc<HashSet<String>>,
    ) -> Result<ParquetSource> {
        let SourceInput::Path(p) = input else {
            return Err(Error::Config(
                "the parquet source reads files, folders or globs, not stdin".into(),
            ));
        };
        let files = expand(p, true, |path| {
            path.extension().and_then(|e| e.to_str()) == Some("parquet")
        })?;
        let mut total = 0u64;
        for f in &files {
            let file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
            if builder
                .schema()
                .field_with_name(&self.image_column)
                .is_err()
            {
                return Err(Error::Config(format!(
                    "{}: no image column {:?} (set image_column in [source])",
                    f.display(),
                    self.image_column
                )));
            }
            total += builder.metadata().file_metadata().num_rows() as u64;
        }
        Ok(ParquetSource {
            cfg: self.clone(),
            files: files.into(),
            current: None,
            total,
            skip,
            skipped: 0,
            builder: EnvelopeBuilder::new(),
        })
    }
}

struct OpenFile {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    row: usize,
    batch: Option<(RecordBatch, usize)>,
}

/// The running Parquet source.
pub struct ParquetSource {
    cfg: ParquetSourceConfig,
    files: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    total: u64,
    skip: Arc<HashSet<String>>,
    skipped: u64,
    builder: EnvelopeBuilder,
}

/// The named column cast to `to`, or `None` when the file lacks it.
fn column_as(batch: &RecordBatch, name: &str, to: &DataType) -> Result<Option<Arc<dyn Array>>> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) if c.data_type() == to => Ok(Some(c.clone())),
        Some(c) => Ok(Some(cast(c, to).map_err(|e| {
            Error::Config(format!("column {name:?} cannot be read as {to}: {e}"))
        })?)),
    }
}

impl ParquetSource {
    fn open_next(&mut self, batch_rows: usize) -> Result<bool> {
        let Some(path) = self.files.pop_front() else {
            return Ok(false);
        };
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let wanted = [
            &self.cfg.id_column,
            &self.cfg.image_column,
            &self.cfg.references_column,
            &self.cfg.audio_column,
        ];
        let schema = builder.schema().clone();
        let roots: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| wanted.contains(&f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_rows.max(1))
            .build()?;
        self.current = Some(OpenFile {
            path,
            reader,
            row: 0,
            batch: None,
        });
        Ok(true)
    }

    /// Appends rows of the current file's batch until the builder is full.
    fn take_rows(&mut self, max_rows: usize, max_bytes: usize) -> Result<()> {
        let cur = self.current.as_mut().expect("a file is open");
        let (batch, start) = cur.batch.as_ref().expect("a batch is loaded");
        let ids = column_as(batch, &self.cfg.id_column, &DataType::Utf8)?;
        let ids = ids
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref::<StringArray>());
        let images = column_as(batch, &self.cfg.image_column, &DataType::Binary)?
            .ok_or_else(|| Error::Config(format!("no image column {:?}", self.cfg.image_column)))?;
        let images = images
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("cast to Binary");
        let refs = column_as(batch, &self.cfg.references_column, &references_type())?;
        let refs = refs
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref::<ListArray>());
        let audio = column_as(batch, &self.cfg.audio_column, &DataType::Binary)?;
        let audio = audio
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref::<BinaryArray>());

        let n = batch.num_rows();
        let mut i = *start;
        while i < n && self.builder.rows() < max_rows && self.builder.bytes() < max_bytes {
            let uri = format!("{}#{}", cur.path.display(), cur.row + i);
            let image = images.is_valid(i).then(|| images.value(i));
            let id = match ids.filter(|a| a.is_valid(i)) {
                Some(a) => a.value(i).to_string(),
                None => content_id(image.unwrap_or(uri.as_bytes())),
            };
            i += 1;
            if self.skip.contains(&id) {
                self.skipped += 1;
                continue;
            }
            let references: Option<Vec<String>> = refs.filter(|r| r.is_valid(i - 1)).map(|r| {
                let v = r.value(i - 1);
                let s = v
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to List<Utf8>");
                (0..s.len())
                    .filter(|&j| s.is_valid(j))
                    .map(|j| s.value(j).to_string())
                    .collect()
            });
            let audio = audio.filter(|a| a.is_valid(i - 1)).map(|a| a.value(i - 1));
            let outcome = match image {
                None => Err(RowError::new(
                    ErrorKind::MissingImage,
                    format!("record {id} ({uri}): the image column is null"),
                )),
                Some(b) if b.len() > self.cfg.max_image_bytes => Err(RowError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "record {id} ({uri}): image has {} bytes, above max_image_bytes = {}",
                        b.len(),
                        self.cfg.max_image_bytes
                    ),
                )),
                Some(b) => Ok(b),
            };
            self.builder
                .push(&id, Some(&uri), references.as_deref(), audio, outcome);
        }
        if i >= n {
            cur.row += n;
            cur.batch = None;
        } else {
            cur.batch.as_mut().expect("loaded").1 = i;
        }
        Ok(())
    }
}

impl Source for ParquetSource {
    fn total(&self) -> Option<u64> {
        Some(self.total)
    }

    fn next_batch(&mut self, max_rows: usize, max_bytes: usize) -> Result<Option<RecordBatch>> {
        while self.builder.rows() < max_rows && self.builder.bytes() < max_bytes {
            if self.current.is_none() && !self.open_next(max_rows)? {
                break;
            }
            let cur = self.current.as_mut().expect("opened above");
            if cur.batch.is_none() {
                match cur.reader.next() {
                    Some(b) => cur.batch = Some((b?, 0)),
                    None => {
                        self.current = None;
                        continue;
                    }
                }
            }
            self.take_rows(max_rows, max_bytes)?;
        }
        if self.builder.rows() == 0 {
            return Ok(None);
        }
        Ok(Some(self.builder.finish()?))
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
