//! Sinks: where rows land.
//!
//! A sink writes the columns `[sink] columns` selects from whatever schema reaches it
//! and reports each file it *commits*: a committed file is complete and visible under
//! its final name; nothing else is. One writer holds an output folder at a time. Sinks
//! block, so the runtime gives each one a thread; they hold no timers: the runtime asks
//! [`Sink::due`] when a commit is due.

mod columns;
mod lock;
mod parquet;
mod response;

pub use self::columns::{project, Columns};
pub use self::lock::{lock_output, FolderLock, LOCK_FILE};
pub use self::parquet::{committed_ids, file_stem, part_files, ParquetSinkConfig};
pub use self::response::{answer_of, Answer, ResponseSink, ResponseSinkConfig, Waiters};

use std::path::PathBuf;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use serde::Deserialize;

use crate::error::Result;

/// One file made visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Its final path.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Writes batches; reports commits.
pub trait Sink: Send {
    /// Writes one batch; returns the files this committed (possibly none).
    fn write(&mut self, batch: &RecordBatch) -> Result<Vec<Commit>>;
    /// Commits everything still open; the sink stays usable, and the next write opens
    /// a new file. Called at the end of input and whenever a commit is due.
    fn finish(&mut self) -> Result<Vec<Commit>>;
    /// When the open file should be committed even if no more rows come, or `None`
    /// when nothing is open.
    fn due(&self) -> Option<Instant>;
}

/// The `[sink]` table of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Parquet files in the output folder.
    Parquet(ParquetSinkConfig),
    /// Answers to `capstream serve`'s callers, one per row.
    Response(ResponseSinkConfig),
}

impl SinkConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            SinkConfig::Parquet(c) => c.validate(),
            SinkConfig::Response(_) => Ok(()),
        }
    }

    /// The schema the sink writes for a pipeline whose last stage emits `full`.
    pub fn schema(&self, full: &Schema) -> Result<SchemaRef> {
        match self {
            SinkConfig::Parquet(c) => c.columns.select(full),
            SinkConfig::Response(_) => Ok(std::sync::Arc::new(full.clone())),
        }
    }

    /// Opens the sink on the locked output folder for a pipeline whose last stage
    /// emits `full`; batches written to it may carry more columns than it keeps.
    pub fn build(&self, lock: FolderLock, full: &Schema, pipeline: &str) -> Result<Box<dyn Sink>> {
        Ok(match self {
            SinkConfig::Parquet(c) => Box::new(c.open(lock, full, pipeline)?),
            SinkConfig::Response(_) => return Err(ResponseSinkConfig::refuse_output()),
        })
    }
}
