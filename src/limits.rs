//! Limits every layer shares: micro-batch sizes and the per-record byte cap.
//!
//! A leaf: pipeline files (`config`), stages, sources and the runtime all read these,
//! so it must depend on nothing in the crate but its errors.

use serde::Deserialize;

use crate::error::{Error, Result};

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

/// The largest `max_bytes` of a batch.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// The largest per-record byte cap a source accepts (`max_image_bytes`,
/// `max_audio_bytes`, `max_file_bytes`).
pub const MAX_RECORD_BYTES: u64 = 512 << 20;

impl BatchConfig {
    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        if self.max_rows == 0 || self.max_bytes == 0 {
            return Err(Error::Config(format!(
                "{what}: max_rows and max_bytes must be at least 1"
            )));
        }
        // Arrow's 32-bit offsets hold 2 GiB a column: a batch plus one more record
        // (each capped at 512 MiB by its source) must stay below that.
        if self.max_bytes > MAX_BATCH_BYTES {
            return Err(Error::Config(format!(
                "{what}: max_bytes = {} is above {MAX_BATCH_BYTES} (1 GiB)",
                self.max_bytes
            )));
        }
        Ok(())
    }
}
