//! The contract between the runtime and a stage: the [`Stage`] trait and the
//! [`BuildContext`] a stage is built with.
//!
//! It lives with the stages, not the runtime, so that a stage depends on nothing the
//! runtime owns (`pipeline` names stages; stages never name `pipeline`).

use std::path::PathBuf;

use arrow::array::RecordBatch;

use super::Hints;
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

/// What a stage's `build` may use: everything outside the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The pipeline file's folder, for relative paths in it.
    pub base_dir: PathBuf,
    /// A model folder given on the command line, overriding the pipeline file's.
    pub model_override: Option<PathBuf>,
    /// An audio model folder given on the command line (`--audio-model`).
    pub audio_model_override: Option<PathBuf>,
    /// What the next stage asks of this one ([`StageSpec::upstream_hints`]), read
    /// before any stage is built: e.g. the image size a caption model takes.
    ///
    /// [`StageSpec::upstream_hints`]: crate::stages::StageSpec::upstream_hints
    pub downstream: Hints,
}
