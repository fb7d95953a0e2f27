//! Sources: where records come from.
//!
//! A source reads inputs and emits [`Edge::Source`](crate::schema::Edge::Source)
//! batches: one row per input, with a stable `id`, the encoded image bytes and any
//! references. An input that cannot be read still becomes a row, with `status =
//! "error"`. Sources block (file and Parquet reads), so the runtime gives each one a
//! thread; a source never spawns its own.

mod files;
mod parquet;
mod request;

pub use files::FilesSourceConfig;
pub use parquet::ParquetSourceConfig;
pub use request::{Request, RequestSource, RequestSourceConfig};

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::schema::{ErrorKind, RowError};

/// Reads input records in batches.
pub trait Source: Send {
    /// How many records the source will emit, when known up front.
    fn total(&self) -> Option<u64>;
    /// The next batch of at most `max_rows` rows (and about `max_bytes`), or `None` at
    /// the end.
    fn next_batch(&mut self, max_rows: usize, max_bytes: usize) -> Result<Option<RecordBatch>>;
    /// Records skipped so far because `--resume` found their id committed.
    fn skipped(&self) -> u64;
}

/// What `--input` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// A file, a folder or a glob pattern.
    Path(String),
    /// Standard input (`--input -`): a newline-separated list of paths.
    Stdin,
}

impl SourceInput {
    /// Parses a `--input` argument.
    pub fn parse(s: &str) -> SourceInput {
        if s == "-" {
            SourceInput::Stdin
        } else {
            SourceInput::Path(s.to_string())
        }
    }
}

/// The `[source]` table of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Image files: a folder (recursive), a glob, one file, or paths on stdin.
    Files(FilesSourceConfig),
    /// Parquet file(s) with an image-bytes column.
    Parquet(ParquetSourceConfig),
    /// Requests handed in by `capstream serve` (HTTP and NATS callers).
    Request(RequestSourceConfig),
}

impl SourceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            SourceConfig::Files(c) => c.validate(),
            SourceConfig::Parquet(c) => c.validate(),
            SourceConfig::Request(_) => Ok(()),
        }
    }

    /// Opens the source over `input`, skipping ids in `skip`.
    pub fn build(
        &self,
        input: &SourceInput,
        skip: Arc<HashSet<String>>,
    ) -> Result<Box<dyn Source>> {
        Ok(match self {
            SourceConfig::Files(c) => Box::new(c.open(input, skip)?),
            SourceConfig::Parquet(c) => Box::new(c.open(input, skip)?),
            SourceConfig::Request(_) => return Err(RequestSourceConfig::refuse_input()),
        })
    }
}

/// The id of a record without one: the first 128 bits of the SHA-256 of its bytes, in
/// hex. Identical content is one record, wherever it is found.
pub fn content_id(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..16])
}

/// Default `max_id_bytes`.
pub const DEFAULT_MAX_ID_BYTES: usize = 1024;

/// How much of an unusable id an error message quotes.
const QUOTED_ID_CHARS: usize = 64;

/// The id a record travels under, given the id its input carries: `raw` when it is
/// usable, else `invalid-id-<content_id(raw)>` with the error row's reason. An id
/// becomes a Parquet value, a NATS header and part of a file name, so it is at most
/// `max_bytes` long and holds no control characters (CR or LF would split a header).
pub fn record_id(raw: &str, uri: &str, max_bytes: usize) -> (String, Option<RowError>) {
    let why = if raw.len() > max_bytes {
        format!("is {} bytes, above max_id_bytes = {max_bytes}", raw.len())
    } else if let Some((at, c)) = raw.char_indices().find(|(_, c)| c.is_control()) {
        format!(
            "holds the control character U+{:04X} at byte {at}",
            c as u32
        )
    } else if raw.is_empty() {
        "is empty".to_string()
    } else {
        return (raw.to_string(), None);
    };
    let id = format!("invalid-id-{}", content_id(raw.as_bytes()));
    let quoted: String = raw.chars().take(QUOTED_ID_CHARS).collect();
    let more = if quoted.len() < raw.len() { "..." } else { "" };
    let message = format!("record {id} ({uri}): its id {quoted:?}{more} {why}");
    (id, Some(RowError::new(ErrorKind::InvalidId, message)))
}

/// Expands a path argument: a glob pattern, a folder (walked), or one file.
fn expand(
    input: &str,
    recursive: bool,
    keep: impl Fn(&std::path::Path) -> bool,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::error::Error;
    let path = std::path::Path::new(input);
    let mut out = Vec::new();
    if input.contains(['*', '?', '[']) {
        let paths = glob::glob(input)
            .map_err(|e| Error::Config(format!("bad glob pattern {input:?}: {e}")))?;
        for p in paths {
            let p = p.map_err(|e| {
                Error::io(e.path().to_path_buf(), std::io::Error::other(e.to_string()))
            })?;
            if p.is_file() && keep(&p) {
                out.push(p);
            }
        }
    } else if path.is_dir() {
        let walker = walkdir::WalkDir::new(path)
            .max_depth(if recursive { usize::MAX } else { 1 })
            .sort_by_file_name();
        for entry in walker {
            let entry = entry.map_err(|e| {
                let p = e.path().map(|p| p.to_path_buf()).unwrap_or_default();
                Error::io(p, std::io::Error::other(e.to_string()))
            })?;
            if entry.file_type().is_file() && keep(entry.path()) {
                out.push(entry.into_path());
            }
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    } else {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file, folder or glob match",
            ),
        ));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_ids_become_hash_keyed_errors_naming_the_raw_id() {
        assert_eq!(record_id("img-1", "f#0", 16), ("img-1".to_string(), None));
        let long = "x".repeat(5000);
        let (id, e) = record_id(&long, "f#1", 1024);
        assert_eq!(id, format!("invalid-id-{}", content_id(long.as_bytes())));
        let e = e.unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidId);
        assert!(
            e.message
                .starts_with(&format!("record {id} (f#1): its id \"xxxx")),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("\"... is 5000 bytes, above max_id_bytes = 1024"),
            "{}",
            e.message
        );
        let (a, e) = record_id("a\nb", "f#2", 1024);
        assert!(e.unwrap().message.contains("U+000A at byte 1"));
        let (b, _) = record_id("a\rb", "f#3", 1024);
        assert_ne!(a, b, "distinct raw ids stay distinct");
        assert!(record_id("", "f#4", 1024).1.is_some());
    }
}
