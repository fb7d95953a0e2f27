//! The thread a worker's stages run on, and the batch deadline around it.
//!
//! A stage's model lives on one thread; a batch that runs past `batch_timeout_ms`
//! cannot be taken back from it, so the thread is marked stuck and given up on, and
//! the loop builds a replacement. What the stages do to a batch is the shared
//! [`StageChain`]'s; this module adds only the thread and the clock.

use std::time::Duration;

use arrow::array::RecordBatch;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::pipeline::{chain_label, BuildContext, StageChain};
use crate::stages::StageConfig;
use crate::telemetry::StageMetrics;

/// One unit of work for a stage thread.
struct Job {
    batch: RecordBatch,
    reply: oneshot::Sender<Result<Vec<RecordBatch>>>,
}

/// How a batch sent to a stage thread ended.
pub(crate) enum Ran {
    /// The stage's output.
    Done(Vec<RecordBatch>),
    /// The stage failed on it.
    Failed(Error),
    /// It ran past the batch deadline; the thread is given up on.
    TimedOut,
}

/// A thread owning the built stages of one chain (usually a single stage).
pub(crate) struct StageThread {
    jobs: flume::Sender<Job>,
    name: String,
    deadline: Duration,
    /// Set once a batch ran past the deadline: the thread may never come back, so it
    /// takes no more work and its loop builds a replacement.
    stuck: std::sync::atomic::AtomicBool,
}

impl StageThread {
    /// Builds the chain on a new thread; returns once its stages are built and started.
    pub(super) async fn start(
        specs: Vec<(StageConfig, BuildContext)>,
        metrics: StageMetrics,
        deadline: Duration,
    ) -> Result<StageThread> {
        let (jobs, rx) = flume::bounded::<Job>(1);
        let (ready_tx, ready) = oneshot::channel::<Result<()>>();
        let name = chain_label(specs.iter().map(|(c, _)| c));
        std::thread::Builder::new()
            .name(format!("{name} stage"))
            .spawn(move || {
                let mut chain = match StageChain::build(&specs, metrics) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    let _ = job.reply.send(chain.process(job.batch));
                }
                // Each message's rows are published and acknowledged with it, so rows a
                // stage held back until the end of input have no message to go with;
                // say so rather than drop them silently.
                match chain.flush() {
                    Ok(out) if !out.is_empty() => tracing::error!(
                        stage = chain.label(),
                        rows = out.iter().map(|b| b.num_rows()).sum::<usize>(),
                        "Stage flushed rows at shutdown that distributed mode cannot deliver."
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "Flush at shutdown failed."),
                }
                if let Err(e) = chain.close() {
                    tracing::error!(error = %e, "Close at shutdown failed.");
                }
            })
            .map_err(|e| Error::io("stage thread", e))?;
        ready
            .await
            .map_err(|_| Error::Runtime(format!("{name} stage thread died while building")))??;
        Ok(StageThread {
            jobs,
            name,
            deadline,
            stuck: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn is_stuck(&self) -> bool {
        self.stuck.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one batch within the deadline.
    pub(crate) async fn run(&self, batch: RecordBatch) -> Ran {
        if self.is_stuck() {
            return Ran::TimedOut;
        }
        let (reply, rx) = oneshot::channel();
        let gone = || Error::Runtime(format!("{} stage thread is gone", self.name));
        let work = async {
            self.jobs
                .send_async(Job { batch, reply })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        };
        match tokio::time::timeout(self.deadline, work).await {
            Ok(Ok(out)) => Ran::Done(out),
            Ok(Err(e)) => Ran::Failed(e),
            Err(_) => {
                self.stuck.store(true, std::sync::atomic::Ordering::Relaxed);
                Ran::TimedOut
            }
        }
    }
}
