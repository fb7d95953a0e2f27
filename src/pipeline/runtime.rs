//! Running a pipeline: threads, channels, metrics and the end of a run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chain::{error_counts, StageChain};
use super::source::CountedSource;
use super::{batcher, Pipeline, Shutdown};
use crate::error::{Error, Result};
use crate::sinks::Commit;
use crate::telemetry::{Metrics, StageMetrics};

/// Live counters of a run, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records the source will emit, when known (0 = unknown).
    pub total: AtomicU64,
    /// Rows that reached the sink.
    pub done: AtomicU64,
    /// Of those, rows with `status = "error"`.
    pub failed: AtomicU64,
    /// Records skipped by `--resume`.
    pub skipped: AtomicU64,
    /// Stage worker threads the pipeline runs.
    pub workers: AtomicU64,
    /// Of those, the ones whose stages are built (models loaded): when it equals
    /// `workers`, the pipeline is ready for its first record.
    pub workers_built: AtomicU64,
}

impl Progress {
    /// Every stage worker has built its stages (a served model is loaded).
    pub fn built(&self) -> bool {
        let total = self.workers.load(Ordering::Relaxed);
        total > 0 && self.workers_built.load(Ordering::Relaxed) >= total
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Rows written.
    pub rows: u64,
    /// Of those, error rows.
    pub failed: u64,
    /// Records skipped by `--resume`.
    pub skipped: u64,
    /// Files committed, in order.
    pub files: Vec<PathBuf>,
    /// True when a stop request ended the run before the input was exhausted.
    pub interrupted: bool,
    /// Wall time of the run.
    pub seconds: f64,
}

fn joined(name: &str, r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::Runtime(format!("{name} panicked: {e}"))),
        Err(e) => Err(Error::Runtime(format!("{name} was cancelled: {e}"))),
    }
}

impl Pipeline {
    /// Runs until the source is exhausted or `shutdown` stops it; then drains every
    /// in-flight batch, finalizes the sink and returns what was written.
    pub async fn run(
        self,
        shutdown: Shutdown,
        metrics: Metrics,
        progress: Arc<Progress>,
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let Pipeline {
            plan,
            source,
            mut sink,
            contexts,
        } = self;
        let cap = plan.config.channel_capacity;
        let mut handles: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();

        // Source: a dedicated thread, since reading files and Parquet blocks.
        if let Some(total) = source.total() {
            progress.total.store(total, Ordering::Relaxed);
        }
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(cap);
        let src_metrics = metrics.stage("source");
        let mut source = CountedSource::new(source, src_metrics.clone());
        let batch_cfg = plan.config.batch;
        let sd = shutdown.clone();
        let prog = progress.clone();
        handles.push((
            "source".into(),
            tokio::task::spawn_blocking(move || {
                loop {
                    if sd.is_stopping() {
                        break;
                    }
                    let t = Instant::now();
                    let next = source.next_batch(batch_cfg.max_rows, batch_cfg.max_bytes)?;
                    prog.skipped.store(source.skipped(), Ordering::Relaxed);
                    let Some(batch) = next else { break };
                    src_metrics.batch_seconds.observe(t.elapsed().as_secs_f64());
                    src_metrics.records_out.inc_by(batch.num_rows() as u64);
                    src_metrics.batches.inc();
                    src_metrics.beat();
                    if tx.blocking_send(batch).is_err() {
                        break;
                    }
                }
                Ok(())
            }),
        ));

        // Stages: a batcher task and N worker threads each.
        let workers: usize = plan.config.stages.iter().map(|s| s.workers()).sum();
        progress.workers.store(workers as u64, Ordering::Relaxed);
        for (i, stage_cfg) in plan.config.stages.iter().enumerate() {
            let name = stage_cfg.name();
            let m = metrics.stage(name);
            let (mb_tx, mb_rx) = flume::bounded::<RecordBatch>(stage_cfg.workers());
            let (out_tx, out_rx) = mpsc::channel::<RecordBatch>(cap);
            let bcfg = stage_cfg.batch().unwrap_or(plan.config.batch);
            // Workers announce themselves idle here; the batcher hands a batch over only
            // then, so that rows arriving while all are busy join the next batch.
            let idle = Arc::new(tokio::sync::Semaphore::new(0));
            let live = Arc::new(AtomicU64::new(stage_cfg.workers() as u64));
            handles.push((
                format!("{name} batcher"),
                tokio::spawn(batcher::run(
                    plan.schemas[i].clone(),
                    bcfg,
                    rx,
                    mb_tx,
                    idle.clone(),
                    m.clone(),
                )),
            ));
            for w in 0..stage_cfg.workers() {
                let spec = (stage_cfg.clone(), contexts[i].clone());
                let rx = mb_rx.clone();
                let idle = Idle {
                    idle: idle.clone(),
                    live: live.clone(),
                };
                let tx = out_tx.clone();
                let m = m.clone();
                let sd = shutdown.clone();
                let prog = progress.clone();
                handles.push((
                    format!("{name} worker {w}"),
                    tokio::task::spawn_blocking(move || {
                        let r = run_stage(&spec, rx, tx, &m, &prog, &idle);
                        if let Err(e) = &r {
                            tracing::error!(stage = name, error = %e, "Stage cannot continue; stopping the pipeline.");
                            sd.stop();
                        }
                        r
                    }),
                ));
            }
            rx = out_rx;
        }

        // Sink: a dedicated thread. It commits the open part when the sink says it is
        // due, even while rows keep coming, so a crash loses at most one interval.
        let sink_metrics = metrics.stage("sink");
        let prog = progress.clone();
        let sd = shutdown.clone();
        let rt = tokio::runtime::Handle::current();
        let sink_handle = tokio::task::spawn_blocking(move || -> Result<Vec<Commit>> {
            let mut commits = Vec::new();
            let record = |written: Vec<Commit>, commits: &mut Vec<Commit>| {
                for c in written {
                    sink_metrics.committed(c.rows, c.bytes);
                    // As a NATS sink counts them: rows out are rows committed.
                    sink_metrics.records_out.inc_by(c.rows);
                    tracing::info!(file = %c.path.display(), rows = c.rows, "Committed output file.");
                    commits.push(c);
                }
            };
            let stopped = |e: Error| {
                sd.stop();
                e
            };
            loop {
                if sink.due().is_some_and(|due| due <= Instant::now()) {
                    record(sink.finish().map_err(stopped)?, &mut commits);
                }
                let next = match sink.due() {
                    None => rx.blocking_recv(),
                    Some(due) => {
                        match rt.block_on(tokio::time::timeout_at(due.into(), rx.recv())) {
                            Ok(next) => next,
                            // Due: committed at the top of the loop.
                            Err(_) => continue,
                        }
                    }
                };
                let Some(batch) = next else { break };
                sink_metrics.channel_depth.set(rx.len() as i64);
                let t = Instant::now();
                let n = batch.num_rows() as u64;
                let failed: u64 = error_counts(&batch).values().sum();
                sink_metrics.records_in.inc_by(n);
                record(sink.write(&batch).map_err(stopped)?, &mut commits);
                prog.done.fetch_add(n, Ordering::Relaxed);
                prog.failed.fetch_add(failed, Ordering::Relaxed);
                sink_metrics
                    .batch_seconds
                    .observe(t.elapsed().as_secs_f64());
                sink_metrics.batches.inc();
                sink_metrics.beat();
            }
            record(sink.finish()?, &mut commits);
            Ok(commits)
        });

        let join_all = async {
            let mut first_err = None;
            for (name, h) in handles {
                if let Err(e) = joined(&name, h.await) {
                    first_err.get_or_insert(e);
                }
            }
            let commits = match sink_handle.await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                    None
                }
                Err(e) => {
                    first_err.get_or_insert(Error::Runtime(format!("sink panicked: {e}")));
                    None
                }
            };
            match first_err {
                Some(e) => Err(e),
                None => Ok(commits.unwrap_or_default()),
            }
        };
        let commits = tokio::select! {
            r = join_all => r?,
            _ = shutdown.aborted() => return Err(Error::Aborted),
        };
        Ok(RunSummary {
            rows: progress.done.load(Ordering::Relaxed),
            failed: progress.failed.load(Ordering::Relaxed),
            skipped: progress.skipped.load(Ordering::Relaxed),
            files: commits.into_iter().map(|c| c.path).collect(),
            // A stop request means the user cut the run short, even if the input
            // happened to end (a pipe closed by the same Ctrl-C) meanwhile.
            interrupted: shutdown.is_stopping(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// A worker's side of its batcher's hand-over: a permit when it waits for a batch, and
/// when the last worker of the stage ends (done or failed), the batcher learns that
/// nobody will take another batch.
struct Idle {
    idle: Arc<tokio::sync::Semaphore>,
    live: Arc<AtomicU64>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.close();
        }
    }
}

/// One worker thread of a stage: the shared [`StageChain`] loop over micro-batches
/// from its batcher, rows sent on downstream as they come.
fn run_stage(
    spec: &(crate::stages::StageConfig, super::BuildContext),
    rx: flume::Receiver<RecordBatch>,
    tx: mpsc::Sender<RecordBatch>,
    m: &StageMetrics,
    progress: &Progress,
    idle: &Idle,
) -> Result<()> {
    let mut chain = StageChain::build(std::slice::from_ref(spec), m.clone())?;
    progress.workers_built.fetch_add(1, Ordering::Relaxed);
    let emit = |out: Vec<RecordBatch>| -> bool {
        for b in out {
            m.records_out.inc_by(b.num_rows() as u64);
            if tx.blocking_send(b).is_err() {
                return false;
            }
        }
        true
    };
    loop {
        idle.idle.add_permits(1);
        let Ok(batch) = rx.recv() else { break };
        if !emit(chain.process(batch)?) {
            // Downstream is gone: the pipeline is stopping.
            return chain.close();
        }
    }
    emit(chain.flush()?);
    chain.close()
}
