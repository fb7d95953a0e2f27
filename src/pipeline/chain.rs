//! The one stage loop both modes share: building, starting, processing, flushing and
//! closing the stages of a chain, with panics caught, failures named by stage and the
//! standard per-batch metrics recorded.
//!
//! Embedded threads and NATS workers drive stages only through [`StageChain`]. They
//! differ in how a batch arrives (a micro-batcher's channel, a pull from a consumer)
//! and how its rows leave (a channel, a publish the server acknowledged); each counts
//! `records_out` when rows have left, since only it knows when they have. Everything
//! else a stage's metrics say (`records_in`, `batch_rows`, `records_failed` by kind,
//! `batch_seconds`, `batches`, the heartbeat) is counted here, so it means the same in
//! both modes.
//!
//! In embedded mode a chain holds one stage (each stage has its own threads and
//! channels); in a NATS worker it holds the stages of a `chain = true` run.
//!
//! This module must not know about channels, threads, NATS, deadlines or any stage's
//! columns beyond the shared `status` and `error_kind`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use arrow::array::{Array, RecordBatch, StringArray};

use super::{BuildContext, Stage};
use crate::error::{Error, Result};
use crate::schema::{columns, Status};
use crate::stages::StageConfig;
use crate::telemetry::StageMetrics;

/// The built, started stages of one chain, driven in order on the calling thread.
pub struct StageChain {
    label: String,
    stages: Vec<(String, Box<dyn Stage>)>,
    metrics: StageMetrics,
}

impl std::fmt::Debug for StageChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageChain")
            .field("label", &self.label)
            .finish()
    }
}

/// The name a chain of stages goes by in metrics, logs and message ids: its stages'
/// names joined by `+` (just the stage's name for a chain of one).
pub fn chain_label<'a>(stages: impl IntoIterator<Item = &'a StageConfig>) -> String {
    stages
        .into_iter()
        .map(StageConfig::name)
        .collect::<Vec<_>>()
        .join("+")
}

impl StageChain {
    /// Builds and starts each stage of `specs` on this thread (a model's tensors stay
    /// on the thread that made them); `metrics` are the chain's.
    pub fn build(specs: &[(StageConfig, BuildContext)], metrics: StageMetrics) -> Result<Self> {
        let mut stages = Vec::with_capacity(specs.len());
        for (cfg, cx) in specs {
            let name = cfg.name().to_string();
            let stage = guarded(&name, || {
                let mut s = cfg.build(cx)?;
                s.start()?;
                Ok(s)
            })?;
            stages.push((name, stage));
        }
        Ok(StageChain {
            label: chain_label(specs.iter().map(|(c, _)| c)),
            stages,
            metrics,
        })
    }

    /// The chain's name (see [`chain_label`]).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Runs one batch through every stage in order and returns the last stage's output.
    ///
    /// An `Err` (a stage's, or its panic) names the stage. `records_failed` counts the
    /// error rows the chain added, by kind: rows that came in as errors are not counted
    /// again.
    pub fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let started = Instant::now();
        let m = &self.metrics;
        let n = batch.num_rows();
        m.records_in.inc_by(n as u64);
        m.batch_rows.observe(n as f64);
        let before = error_counts(&batch);
        let mut batches = vec![batch];
        for (name, stage) in &mut self.stages {
            let mut out = Vec::new();
            for b in batches {
                guarded(name, || stage.process(b, &mut out))?;
            }
            batches = out;
        }
        let mut after: HashMap<String, u64> = HashMap::new();
        for b in &batches {
            for (k, v) in error_counts(b) {
                *after.entry(k).or_insert(0) += v;
            }
        }
        for (k, v) in after {
            let new = v.saturating_sub(before.get(&k).copied().unwrap_or(0));
            if new > 0 {
                m.failed(&k, new);
            }
        }
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        m.batches.inc();
        m.beat();
        Ok(batches)
    }

    /// At end of input: what each stage held back, passed through the stages after it
    /// before they are flushed in turn.
    pub fn flush(&mut self) -> Result<Vec<RecordBatch>> {
        let mut batches: Vec<RecordBatch> = Vec::new();
        for (name, stage) in &mut self.stages {
            let mut out = Vec::new();
            for b in batches {
                guarded(name, || stage.process(b, &mut out))?;
            }
            guarded(name, || stage.flush(&mut out))?;
            batches = out;
        }
        Ok(batches)
    }

    /// Closes every stage, first failure reported; every stage is closed even so.
    pub fn close(&mut self) -> Result<()> {
        let mut first = None;
        for (name, stage) in &mut self.stages {
            if let Err(e) = guarded(name, || stage.close()) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Runs `f` for stage `name`: a panic becomes an error, and every error names the stage.
fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ Error::Stage { .. })) => Err(e),
        Ok(Err(e)) => Err(Error::Stage {
            stage: name.to_string(),
            message: e.to_string(),
        }),
        Err(p) => Err(Error::Stage {
            stage: name.to_string(),
            message: format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            ),
        }),
    }
}

/// Per-kind counts of a batch's error rows.
pub(crate) fn error_counts(batch: &RecordBatch) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    let (Some(status), Some(kind)) = (
        batch
            .column_by_name(columns::STATUS)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
        batch
            .column_by_name(columns::ERROR_KIND)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
    ) else {
        return counts;
    };
    for i in 0..batch.num_rows() {
        if status.value(i) == Status::Error.as_str() {
            let k = if kind.is_valid(i) {
                kind.value(i)
            } else {
                "unknown"
            };
            *counts.entry(k.to_string()).or_insert(0) += 1;
        }
    }
    counts
}
