//! Sinks: where rows land.
//!
//! A sink writes whatever schema reaches it and reports each file it *commits*: a
//! committed file is complete and visible under its final name; nothing else is. Sinks
//! block, so the runtime gives each one a thread.

mod parquet;

pub use self::parquet::{committed_ids, part_files, ParquetSinkConfig};

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
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
    /// Commits everything still open. Called once, at the end of input.
    fn finish(&mut self) -> Result<Vec<Commit>>;
}

/// The `[sink]` table of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Parquet files in the output folder.
    Parquet(ParquetSinkConfig),
}

impl SinkConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            SinkConfig::Parquet(c) => c.validate(),
        }
    }

    /// Opens the sink on the output folder for rows of `schema`.
    pub fn build(&self, output: &Path, schema: SchemaRef, pipeline: &str) -> Result<Box<dyn Sink>> {
        Ok(match self {
            SinkConfig::Parquet(c) => Box::new(c.open(output, schema, pipeline)?),
        })
    }
}
