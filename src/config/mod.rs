//! Pipeline files: the TOML a user writes, parsed and checked.
//!
//! This module owns the serde types of `pipelines/*.toml` and their validation. Every
//! table rejects unknown keys, and errors name the file and the key. It must not build
//! stages or touch the runtime: `pipeline::Pipeline::build` turns a checked
//! [`PipelineConfig`] into running parts.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;
use crate::stages::StageConfig;

/// How stages are connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One process; stages joined by bounded in-memory channels.
    #[default]
    Embedded,
}

/// Micro-batching: a batch is sent on when any bound is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most rows in one batch.
    pub max_rows: usize,
    /// Most payload bytes in one batch (Arrow buffer memory).
    pub max_bytes: usize,
    /// Longest a first row waits for the batch to fill, in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: 16,
            max_bytes: 64 << 20,
            max_delay_ms: 50,
        }
    }
}

impl BatchConfig {
    fn validate(&self, what: &str) -> Result<()> {
        if self.max_rows == 0 || self.max_bytes == 0 {
            return Err(Error::Config(format!(
                "{what}: max_rows and max_bytes must be at least 1"
            )));
        }
        Ok(())
    }
}

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name used in metrics labels, logs and output metadata.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// How stages are connected.
    #[serde(default)]
    pub mode: Mode,
    /// Capacity of every channel between stages, in batches.
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
    /// Default micro-batching for every stage.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Where records come from.
    pub source: SourceConfig,
    /// The stages, in order.
    #[serde(default, rename = "stage")]
    pub stages: Vec<StageConfig>,
    /// Where rows land.
    pub sink: SinkConfig,
    /// The file this came from; set by [`PipelineConfig::load`].
    #[serde(skip)]
    pub path: PathBuf,
}

fn default_channel_capacity() -> usize {
    4
}

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates pipeline text; `path` is used in messages and to resolve
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: PipelineConfig = toml::from_str(text).map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.path = path.to_path_buf();
        cfg.validate().map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::Config("name must not be empty".into()));
        }
        if self.channel_capacity == 0 {
            return Err(Error::Config("channel_capacity must be at least 1".into()));
        }
        self.batch.validate("[batch]")?;
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(b) = s.batch() {
                b.validate(&format!("stage {} ({})", i + 1, s.name()))?;
            }
            if s.workers() == 0 {
                return Err(Error::Config(format!(
                    "stage {} ({}): workers must be at least 1",
                    i + 1,
                    s.name()
                )));
            }
            s.validate()
                .map_err(|e| Error::Config(format!("stage {} ({}): {e}", i + 1, s.name())))?;
        }
        self.source.validate()?;
        self.sink.validate()?;
        Ok(())
    }

    /// Resolves a path written in the pipeline file relative to the file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path
                .parent()
                .map(|d| d.join(p))
                .unwrap_or_else(|| p.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[source]
type = "files"
[sink]
type = "parquet"
"#;

    #[test]
    fn minimal_file_parses_with_defaults() {
        let cfg = PipelineConfig::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.batch, BatchConfig::default());
        assert_eq!(cfg.channel_capacity, 4);
        assert!(cfg.stages.is_empty());
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        for (text, key) in [
            (format!("{MINIMAL}\nbogus = 1\n"), "bogus"),
            (
                MINIMAL.replace("type = \"files\"", "type = \"files\"\nrecursiv = true"),
                "recursiv",
            ),
            (
                format!("{MINIMAL}\n[[stage]]\ntype = \"decode_image\"\nimage_sise = 3\n"),
                "image_sise",
            ),
            (format!("{MINIMAL}\n[batch]\nmax_row = 3\n"), "max_row"),
        ] {
            let err = PipelineConfig::parse(&text, Path::new("dir/p.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("dir/p.toml"), "{err}");
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn zero_limits_are_rejected() {
        let text = format!("{MINIMAL}\n[batch]\nmax_rows = 0\n");
        let err = PipelineConfig::parse(&text, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("max_rows"), "{err}");
    }
}
