//! Parquet files with an image-bytes column: the backfill source.
//!
//! Nothing a file holds can stop the stream: an id that cannot be used, a cell over its
//! byte cap (checked from the column's offsets, before the bytes are copied) and a
//! file that stops reading halfway each become error rows, one per record, and the
//! next file is read. Bytes columns are read as stored (`binary`, `large_binary` or
//! `binary_view`), so a large column is never cast, copied or squeezed into 32-bit
//! offsets.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, BinaryViewArray, LargeBinaryArray, ListArray, RecordBatch,
    StringArray,
};
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
    /// Reference audio larger than this makes the record a `too_large` error row.
    #[serde(default = "default_max_audio_bytes")]
    pub max_audio_bytes: usize,
    /// Longer ids (and ids with control characters) become `invalid_id` error rows,
    /// keyed by a hash of the raw id.
    #[serde(default = "default_max_id_bytes")]
    pub max_id_bytes: usize,
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
fn default_max_audio_bytes() -> usize {
    64 << 20
}
fn default_max_id_bytes() -> usize {
    super::DEFAULT_MAX_ID_BYTES
}

impl ParquetSourceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let cap = crate::limits::MAX_RECORD_BYTES as usize;
        for (key, v) in [
            ("max_image_bytes", self.max_image_bytes),
            ("max_audio_bytes", self.max_audio_bytes),
        ] {
            if v == 0 || v > cap {
                return Err(Error::Config(format!(
                    "[source] {key} = {v} is outside 1..={cap}"
                )));
            }
        }
        if self.max_id_bytes == 0 {
            return Err(Error::Config(
                "[source] max_id_bytes must be at least 1".into(),
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
    /// Rows the file holds, from its footer.
    rows: usize,
    /// Rows before the loaded batch.
    row: usize,
    batch: Option<(RecordBatch, usize)>,
    /// Why the rest of the file cannot be read; its rows become error rows.
    broken: Option<String>,
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
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_rows.max(1))
            .build()?;
        self.current = Some(OpenFile {
            path,
            reader,
            rows,
            row: 0,
            batch: None,
            broken: None,
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
        let images = BytesColumn::of(batch, &self.cfg.image_column)?
            .ok_or_else(|| Error::Config(format!("no image column {:?}", self.cfg.image_column)))?;
        let refs = column_as(batch, &self.cfg.references_column, &references_type())?;
        let refs = refs
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref::<ListArray>());
        let audio = BytesColumn::of(batch, &self.cfg.audio_column)?;

        let n = batch.num_rows();
        let mut i = *start;
        while i < n && self.builder.rows() < max_rows && self.builder.bytes() < max_bytes {
            let row = i;
            i += 1;
            let uri = format!("{}#{}", cur.path.display(), cur.row + row);
            let image = images.get(row);
            let (id, bad_id) = match ids.filter(|a| a.is_valid(row)) {
                Some(a) => super::record_id(a.value(row), &uri, self.cfg.max_id_bytes),
                None => (content_id(image.unwrap_or(uri.as_bytes())), None),
            };
            if self.skip.contains(&id) {
                self.skipped += 1;
                continue;
            }
            let references: Option<Vec<String>> = refs.filter(|r| r.is_valid(row)).map(|r| {
                let v = r.value(row);
                let s = v
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to List<Utf8>");
                (0..s.len())
                    .filter(|&j| s.is_valid(j))
                    .map(|j| s.value(j).to_string())
                    .collect()
            });
            let audio = audio.as_ref().and_then(|a| a.get(row));
            let too_big_audio = audio.filter(|a| a.len() > self.cfg.max_audio_bytes);
            let outcome = match (bad_id, image, too_big_audio) {
                (Some(e), _, _) => Err(e),
                (None, None, _) => Err(RowError::new(
                    ErrorKind::MissingImage,
                    format!("record {id} ({uri}): the image column is null"),
                )),
                (None, Some(b), _) if b.len() > self.cfg.max_image_bytes => Err(RowError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "record {id} ({uri}): image has {} bytes, above max_image_bytes = {}",
                        b.len(),
                        self.cfg.max_image_bytes
                    ),
                )),
                (None, Some(_), Some(a)) => Err(RowError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "record {id} ({uri}): reference audio has {} bytes, above \
                         max_audio_bytes = {}",
                        a.len(),
                        self.cfg.max_audio_bytes
                    ),
                )),
                (None, Some(b), None) => Ok(b),
            };
            // Only a good record carries its bytes on: nothing over a cap is copied.
            let audio = audio.filter(|_| outcome.is_ok());
            let references = references.filter(|_| outcome.is_ok());
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

    /// One error row per record the current file could not yield, until the builder
    /// is full; closes the file once every row is accounted for.
    fn take_broken(&mut self, max_rows: usize) {
        let cur = self.current.as_mut().expect("a file is open");
        let why = cur.broken.clone().unwrap_or_default();
        while cur.row < cur.rows && self.builder.rows() < max_rows {
            let uri = format!("{}#{}", cur.path.display(), cur.row);
            cur.row += 1;
            let id = content_id(uri.as_bytes());
            if self.skip.contains(&id) {
                self.skipped += 1;
                continue;
            }
            let message = format!("record {id} ({uri}): the Parquet file stopped reading: {why}");
            self.builder.push(
                &id,
                Some(&uri),
                None,
                None,
                Err(RowError::new(ErrorKind::Decode, message)),
            );
        }
        if cur.row >= cur.rows {
            self.current = None;
        }
    }
}

/// A bytes column as the file stores it.
enum BytesColumn {
    Small(BinaryArray),
    Large(LargeBinaryArray),
    View(BinaryViewArray),
}

impl BytesColumn {
    /// The named column, or `None` when the file lacks it. Other types (strings, fixed
    /// size) are cast to `large_binary`, whose offsets cannot overflow.
    fn of(batch: &RecordBatch, name: &str) -> Result<Option<BytesColumn>> {
        let Some(c) = batch.column_by_name(name) else {
            return Ok(None);
        };
        Ok(Some(match c.data_type() {
            DataType::Binary => BytesColumn::Small(c.as_binary::<i32>().clone()),
            DataType::LargeBinary => BytesColumn::Large(c.as_binary::<i64>().clone()),
            DataType::BinaryView => BytesColumn::View(c.as_binary_view().clone()),
            _ => {
                let c = cast(c, &DataType::LargeBinary).map_err(|e| {
                    Error::Config(format!("column {name:?} cannot be read as bytes: {e}"))
                })?;
                BytesColumn::Large(c.as_binary::<i64>().clone())
            }
        }))
    }

    /// Row `i`'s bytes, borrowed (its length comes from the offsets), or `None` when
    /// null.
    fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            BytesColumn::Small(a) => a.is_valid(i).then(|| a.value(i)),
            BytesColumn::Large(a) => a.is_valid(i).then(|| a.value(i)),
            BytesColumn::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
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
            if cur.broken.is_some() {
                self.take_broken(max_rows);
                continue;
            }
            if cur.batch.is_none() {
                match cur.reader.next() {
                    Some(Ok(b)) => cur.batch = Some((b, 0)),
                    Some(Err(e)) => {
                        tracing::warn!(file = %cur.path.display(), row = cur.row, error = %e, "A Parquet file stopped reading; its remaining rows become error rows.");
                        cur.broken = Some(e.to_string());
                        continue;
                    }
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
