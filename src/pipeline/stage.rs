//! The contract between the runtime and a stage.

use arrow::array::RecordBatch;

use crate::error::Result;

/// One step of a pipeline, owned by exactly one runtime thread.
///
/// The runtime builds a stage on the thread that will run it (so a model and its
/// thread-local libtorch state live on one thread), calls `start` once, then `process`
/// for each micro-batch, then `flush` and `close` when the input ends. A stage never
/// spawns threads, opens channels, reads the CLI or records the standard metrics.
///
/// A record that fails is not an `Err`: the stage emits it with `status = "error"`.
/// `Err` means the stage cannot go on, and stops the pipeline.
pub trait Stage: Send {
    /// Called once before the first batch.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Processes one batch, pushing zero or more output batches onto `out`.
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;

    /// Emits anything held back, at end of input.
    fn flush(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// Releases resources after the last flush.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
