//! Image files from a folder, a glob, or a list of paths on stdin.

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde::Deserialize;

use super::{content_id, expand, Source, SourceInput};
use crate::error::{Error, Result};
use crate::schema::{EnvelopeBuilder, ErrorKind, RowError};

/// How a file's record id is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdPolicy {
    /// A hash of the file's bytes: stable when files move.
    #[default]
    ContentHash,
    /// The path as listed: stable when files change.
    Path,
}

/// `[source] type = "files"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSourceConfig {
    /// Walk sub-folders of a folder input.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// File extensions (case-insensitive) taken from folders and globs; paths given one
    /// by one (stdin, a single file) are always taken.
    #[serde(default = "default_extensions")]
    pub extensions: Vec<String>,
    /// How record ids are made.
    #[serde(default)]
    pub id: IdPolicy,
    /// Files larger than this are not read: they become `too_large` error rows.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

fn yes() -> bool {
    true
}

fn default_extensions() -> Vec<String> {
    ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
        .map(String::from)
        .to_vec()
}

fn default_max_file_bytes() -> u64 {
    50 << 20
}

impl FilesSourceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_file_bytes == 0 {
            return Err(Error::Config(
                "[source] max_file_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn open(
        &self,
        input: &SourceInput,
        skip: Arc<HashSet<String>>,
    ) -> Result<FilesSource> {
        let (paths, stdin) = match input {
            // Paths on stdin are read as they arrive, so `find … | capstream run` streams.
            SourceInput::Stdin => (Vec::new(), Some(std::io::BufReader::new(std::io::stdin()))),
            SourceInput::Path(p) => {
                let exts: Vec<String> = self.extensions.iter().map(|e| e.to_lowercase()).collect();
                let paths = expand(p, self.recursive, |path: &Path| {
                    path.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| exts.contains(&e.to_lowercase()))
                })?;
                (paths, None)
            }
        };
        Ok(FilesSource {
            cfg: self.clone(),
            paths,
            stdin,
            next: 0,
            skip,
            skipped: 0,
            builder: EnvelopeBuilder::new(),
        })
    }
}

/// The running files source.
pub struct FilesSource {
    cfg: FilesSourceConfig,
    paths: Vec<PathBuf>,
    stdin: Option<std::io::BufReader<std::io::Stdin>>,
    next: usize,
    skip: Arc<HashSet<String>>,
    skipped: u64,
    builder: EnvelopeBuilder,
}

impl FilesSource {
    fn next_path(&mut self) -> Result<Option<PathBuf>> {
        if let Some(stdin) = self.stdin.as_mut() {
            let mut line = String::new();
            loop {
                line.clear();
                if stdin
                    .read_line(&mut line)
                    .map_err(|e| Error::io("<stdin>", e))?
                    == 0
                {
                    return Ok(None);
                }
                let l = line.trim_end_matches(['\n', '\r']);
                if !l.trim().is_empty() {
                    return Ok(Some(PathBuf::from(l)));
                }
            }
        }
        let p = self.paths.get(self.next).cloned();
        self.next += 1;
        Ok(p)
    }

    /// Reads one file into the builder, or counts it as skipped.
    fn read_one(&mut self, path: &Path) {
        let uri = path.display().to_string();
        let path_id = || super::content_id(format!("path:{uri}").as_bytes());
        let read = (|| -> std::io::Result<std::result::Result<Vec<u8>, u64>> {
            let mut f = std::fs::File::open(path)?;
            let len = f.metadata()?.len();
            if len > self.cfg.max_file_bytes {
                return Ok(Err(len));
            }
            let mut buf = Vec::with_capacity(len as usize);
            // Read one byte past the limit in case the file grew since `metadata`.
            f.by_ref()
                .take(self.cfg.max_file_bytes + 1)
                .read_to_end(&mut buf)?;
            if buf.len() as u64 > self.cfg.max_file_bytes {
                return Ok(Err(buf.len() as u64));
            }
            Ok(Ok(buf))
        })();
        let (id, outcome) = match read {
            Ok(Ok(bytes)) => {
                let id = match self.cfg.id {
                    IdPolicy::ContentHash => content_id(&bytes),
                    IdPolicy::Path => path_id(),
                };
                (id, Ok(bytes))
            }
            Ok(Err(len)) => {
                let id = path_id();
                let msg = format!(
                    "record {id} ({uri}): file has {len} bytes, above max_file_bytes = {}",
                    self.cfg.max_file_bytes
                );
                (id, Err(RowError::new(ErrorKind::TooLarge, msg)))
            }
            Err(e) => {
                let id = path_id();
                let msg = format!("record {id} ({uri}): cannot read the file: {e}");
                (id, Err(RowError::new(ErrorKind::Io, msg)))
            }
        };
        if self.skip.contains(&id) {
            self.skipped += 1;
            return;
        }
        match outcome {
            Ok(bytes) => self.builder.push(&id, Some(&uri), None, None, Ok(&bytes)),
            Err(e) => self.builder.push(&id, Some(&uri), None, None, Err(e)),
        }
    }
}

impl Source for FilesSource {
    fn total(&self) -> Option<u64> {
        self.stdin.is_none().then_some(self.paths.len() as u64)
    }

    fn next_batch(&mut self, max_rows: usize, max_bytes: usize) -> Result<Option<RecordBatch>> {
        while self.builder.rows() < max_rows && self.builder.bytes() < max_bytes {
            let Some(path) = self.next_path()? else { break };
            self.read_one(&path);
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
