//! The Parquet sink: atomic part files, zstd, byte-bounded row groups.
//!
//! Rows go to `.part-<run>-<n>.parquet.tmp` in the output folder. A file is committed
//! by writing its footer, `fsync`, renaming it to `part-<run>-<n>.parquet` and syncing
//! the folder, so no reader ever sees a half-written file under a final name. A part
//! is committed when full (rows or bytes), when older than `commit_interval_ms` (the
//! runtime asks [`Sink::due`]), and at the end. A crash leaves only `.tmp` files,
//! which the next writer removes once it holds the folder's lock. `--resume` reads the
//! `id` column of every committed part file.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::Deserialize;

use super::columns::{project, Columns};
use super::lock::FolderLock;
use super::{Commit, Sink};
use crate::error::{Error, Result};
use crate::schema::{columns, META_SCHEMA_VERSION, SCHEMA_VERSION};

/// `[sink] type = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// zstd level, 1–22.
    #[serde(default = "default_level")]
    pub zstd_level: i32,
    /// zstd level for binary columns (image and audio bytes): raw pixels gain little
    /// from higher levels and cost the most time.
    #[serde(default = "default_binary_level")]
    pub binary_zstd_level: i32,
    /// A row group is closed once its buffered data reaches this many bytes.
    #[serde(default = "default_row_group_bytes")]
    pub max_row_group_bytes: usize,
    /// A file is committed once it holds this many rows.
    #[serde(default = "default_file_rows")]
    pub max_file_rows: usize,
    /// A file is committed once its row groups reach this many bytes.
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: usize,
    /// Also write every `*_wav` column as `wav/<id>.<column>.wav` beside the Parquet,
    /// for listening without tools.
    #[serde(default)]
    pub write_wav: bool,
    /// An embedded run also commits the open part once it is this old, so that a
    /// crash loses at most this much work. A NATS sink commits on `[nats]
    /// commit_interval_ms` instead, since its acknowledgements wait for the commit.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Which columns land in the files: `"results"`, `"all"` or a list.
    #[serde(default)]
    pub columns: Columns,
}

fn default_level() -> i32 {
    3
}
fn default_binary_level() -> i32 {
    1
}
fn default_row_group_bytes() -> usize {
    64 << 20
}
fn default_file_rows() -> usize {
    10_000
}
fn default_file_bytes() -> usize {
    512 << 20
}
fn default_commit_interval_ms() -> u64 {
    30_000
}

impl ParquetSinkConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        ZstdLevel::try_new(self.zstd_level)
            .map_err(|e| Error::Config(format!("[sink] zstd_level: {e}")))?;
        ZstdLevel::try_new(self.binary_zstd_level)
            .map_err(|e| Error::Config(format!("[sink] binary_zstd_level: {e}")))?;
        if self.max_row_group_bytes == 0
            || self.max_file_rows == 0
            || self.max_file_bytes == 0
            || self.commit_interval_ms == 0
        {
            return Err(Error::Config(
                "[sink] max_row_group_bytes, max_file_rows, max_file_bytes and \
                 commit_interval_ms must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Opens the sink on the locked folder for a pipeline whose last stage emits
    /// `full`. The lock makes removing temp parts safe: they can only be a crash's.
    pub(crate) fn open(
        &self,
        lock: FolderLock,
        full: &Schema,
        pipeline: &str,
    ) -> Result<ParquetSink> {
        let dir = lock.dir().to_path_buf();
        let schema = self.columns.select(full)?;
        remove_stale_temps(&dir)?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.zstd_level).expect("validated"),
            ))
            .set_max_row_group_bytes(Some(self.max_row_group_bytes))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "capstream.version".into(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
                KeyValue::new("capstream.pipeline".into(), pipeline.to_string()),
                KeyValue::new(META_SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
            ]))
            .set_column_bloom_filter_enabled(ColumnPath::from(columns::ID), true);
        // Dictionaries and min/max statistics are useless on image and audio bytes and
        // cost memory; keep them for strings.
        for f in schema.fields() {
            if matches!(f.data_type(), DataType::Binary | DataType::LargeBinary) {
                let col = ColumnPath::from(f.name().as_str());
                props = props
                    .set_column_compression(
                        col.clone(),
                        Compression::ZSTD(
                            ZstdLevel::try_new(self.binary_zstd_level).expect("validated"),
                        ),
                    )
                    .set_column_dictionary_enabled(col.clone(), false)
                    .set_column_statistics_enabled(col, EnabledStatistics::None);
            }
        }
        Ok(ParquetSink {
            cfg: self.clone(),
            dir,
            schema,
            props: props.build(),
            run: run_id(),
            seq: 0,
            open: None,
            _lock: lock,
        })
    }
}

/// A run id unique across runs on one machine: start time plus pid.
fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}{:03}-{}",
        now.as_secs(),
        now.subsec_millis(),
        std::process::id()
    )
}

fn remove_stale_temps(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".part-") && name.ends_with(".parquet.tmp") {
            let p = entry.path();
            tracing::warn!(file = %p.display(), "Removing an uncommitted file left by an interrupted run.");
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

struct OpenPart {
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: usize,
    opened: Instant,
}

/// The running Parquet sink.
pub struct ParquetSink {
    cfg: ParquetSinkConfig,
    dir: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    run: String,
    seq: u64,
    open: Option<OpenPart>,
    _lock: FolderLock,
}

impl ParquetSink {
    fn start_part(&mut self) -> Result<&mut OpenPart> {
        if self.open.is_none() {
            let name = format!("part-{}-{:05}.parquet", self.run, self.seq);
            self.seq += 1;
            let path = self.dir.join(&name);
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))?;
            self.open = Some(OpenPart {
                tmp,
                path,
                writer,
                rows: 0,
                opened: Instant::now(),
            });
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    fn commit(&mut self) -> Result<Option<Commit>> {
        let Some(part) = self.open.take() else {
            return Ok(None);
        };
        let file = part.writer.into_inner()?;
        file.sync_all().map_err(|e| Error::io(&part.tmp, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(&part.tmp, e))?.len();
        drop(file);
        std::fs::rename(&part.tmp, &part.path).map_err(|e| Error::io(&part.path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&self.dir, e))?;
        Ok(Some(Commit {
            path: part.path,
            rows: part.rows as u64,
            bytes,
        }))
    }
}

impl ParquetSink {
    /// Writes the WAV columns of `batch` as files (temp name, then rename).
    fn write_wavs(&self, batch: &RecordBatch) -> Result<()> {
        let ids = crate::schema::column::<StringArray>(batch, columns::ID)?;
        let dir = self.dir.join("wav");
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let Some(wavs) = col.as_any().downcast_ref::<arrow::array::BinaryArray>() else {
                continue;
            };
            let Some(stem) = field.name().strip_suffix("_wav") else {
                continue;
            };
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            for i in 0..batch.num_rows() {
                if wavs.is_null(i) {
                    continue;
                }
                let id = file_stem(ids.value(i));
                let path = dir.join(format!("{id}.{stem}.wav"));
                let tmp = dir.join(format!(".{id}.{stem}.wav.tmp"));
                std::fs::write(&tmp, wavs.value(i)).map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Longest id used as a file name as it is.
const PLAIN_STEM_BYTES: usize = 64;

/// A file-name stem for record `id`, one-to-one: an id of at most 64 letters, digits,
/// `-` and `_` (content hashes, most user ids) is its own stem; any other becomes its
/// first 40 such characters (others as `_`), `~` and 128 bits of its SHA-256. `~` is
/// never in a plain stem, so `a/b` and `a_b` cannot meet, and no id makes a name too
/// long for the file system.
pub fn file_stem(id: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !id.is_empty() && id.len() <= PLAIN_STEM_BYTES && id.chars().all(plain) {
        return id.to_string();
    }
    let prefix: String = id
        .chars()
        .take(40)
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    format!("{prefix}~{}", crate::sources::content_id(id.as_bytes()))
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<Vec<Commit>> {
        let batch = &project(batch, &self.schema)?;
        if self.cfg.write_wav {
            self.write_wavs(batch)?;
        }
        let mut commits = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let max_rows = self.cfg.max_file_rows;
            let part = self.start_part()?;
            let take = (max_rows - part.rows).min(batch.num_rows() - offset);
            part.writer.write(&batch.slice(offset, take))?;
            part.rows += take;
            offset += take;
            let full = part.rows >= max_rows
                || part.writer.bytes_written() + part.writer.in_progress_size()
                    >= self.cfg.max_file_bytes;
            if full {
                commits.extend(self.commit()?);
            }
        }
        Ok(commits)
    }

    fn finish(&mut self) -> Result<Vec<Commit>> {
        Ok(self.commit()?.into_iter().collect())
    }

    fn due(&self) -> Option<Instant> {
        let part = self.open.as_ref()?;
        Some(part.opened + Duration::from_millis(self.cfg.commit_interval_ms))
    }
}

/// Committed part files in `dir`, sorted.
pub fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("part-") && name.ends_with(".parquet") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Every id in the committed part files of `dir`, for `--resume`.
pub fn committed_ids(dir: &Path) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    for path in part_files(dir)? {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let Some(idx) = builder
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == columns::ID)
        else {
            return Err(Error::Config(format!(
                "{}: no {:?} column; not a capstream output",
                path.display(),
                columns::ID
            )));
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let col = batch.column(0);
            let col = col
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Config(format!("{}: id is not a string", path.display())))?;
            for i in 0..col.len() {
                if col.is_valid(i) {
                    ids.insert(col.value(i).to_string());
                }
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::BinaryArray;
    use arrow::datatypes::Field;

    use super::*;
    use crate::sinks::{lock_output, SinkConfig};

    #[test]
    fn wav_side_files_are_one_per_id_whatever_the_id() {
        let d = tempfile::tempdir().unwrap();
        let long = "y".repeat(300);
        let ids = [
            "a/b",
            "a_b",
            "a?b",
            long.as_str(),
            "../../etc/passwd",
            "0f3c",
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new(columns::ID, DataType::Utf8, false),
            Field::new(columns::STATUS, DataType::Utf8, false),
            Field::new(columns::SPEECH_WAV, DataType::Binary, true),
        ]));
        let wavs: Vec<Vec<u8>> = (0..ids.len()).map(|k| vec![k as u8; 8]).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(StringArray::from(vec!["ok"; ids.len()])),
                Arc::new(BinaryArray::from(
                    wavs.iter().map(|w| w.as_slice()).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let cfg: SinkConfig = toml::from_str("type = \"parquet\"\nwrite_wav = true").unwrap();
        let mut sink = cfg
            .build(lock_output(d.path()).unwrap(), &schema, "t")
            .unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        let dir = d.path().join("wav");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for (k, id) in ids.iter().enumerate() {
            let name = format!("{}.speech.wav", file_stem(id));
            assert!(name.len() < 120, "{name}");
            assert_eq!(std::fs::read(dir.join(&name)).unwrap(), wavs[k], "{id}");
        }
        assert_eq!(file_stem("a_b"), "a_b");
        assert_eq!(file_stem("0f3c"), "0f3c");
        assert!(file_stem("a/b").starts_with("a_b~"));
        assert!(file_stem("../../etc/passwd").starts_with("______etc_passwd~"));
    }
}
