//! Training logs as JSON Lines: one object per step or epoch, flushed as written so
//! that a crashed run keeps everything up to its last line.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An append-only JSONL file.
#[derive(Debug)]
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonlLog {
    /// Opens `path` for appending (a resumed run continues the same log).
    pub fn append(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonlLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes one record. Non-finite numbers become `null` (JSON has no infinities).
    pub fn write(&mut self, record: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// A float for a log record: `null` when not finite.
pub fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
