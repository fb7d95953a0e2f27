//! A source read the way both modes read it: each batch's own counts recorded under
//! the `source` stage, so the embedded source thread and `capstream submit` agree.
//!
//! It counts only what the source itself did (records skipped by `--resume`, error
//! rows it made from unreadable or oversized inputs); rows out and batches are the
//! caller's, since a micro-batch and a message differ.

use arrow::array::RecordBatch;

use super::chain::error_counts;
use crate::error::Result;
use crate::sources::Source;
use crate::telemetry::StageMetrics;

/// A source whose reads are counted into `metrics`.
pub(crate) struct CountedSource {
    source: Box<dyn Source>,
    metrics: StageMetrics,
    /// `source.skipped()` when last counted.
    skipped: u64,
}

impl CountedSource {
    pub(crate) fn new(source: Box<dyn Source>, metrics: StageMetrics) -> Self {
        CountedSource {
            source,
            metrics,
            skipped: 0,
        }
    }

    /// The source's next batch, its skipped records and error rows counted.
    pub(crate) fn next_batch(
        &mut self,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Option<RecordBatch>> {
        let next = self.source.next_batch(max_rows, max_bytes)?;
        let now = self.source.skipped();
        self.metrics.skipped(now.saturating_sub(self.skipped));
        self.skipped = now;
        if let Some(b) = &next {
            for (kind, n) in error_counts(b) {
                self.metrics.failed(&kind, n);
            }
        }
        Ok(next)
    }

    /// Records skipped so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }
}
