//! Micro-batching: gathers rows by count, bytes and age before a stage sees them.
//!
//! A batch is handed over when it is full (`max_rows`, `max_bytes`) or its first row has
//! waited `max_delay_ms`, and in either case only once a worker of the stage is idle:
//! rows that arrive while every worker is busy join the waiting batch instead of
//! queueing behind a small one formed too early. This is how Triton's dynamic batcher
//! forms a batch when a model instance is free; with `max_delay_ms = 0` a batch is
//! whatever has queued by then, so a lone row waits for nothing.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::error::Result;
use crate::limits::BatchConfig;
use crate::telemetry::StageMetrics;

/// The rows gathered for the next batch.
#[derive(Default)]
struct Pending {
    parts: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    /// When the first row arrived.
    since: Option<Instant>,
}

impl Pending {
    /// Adds as many rows of `b` as fit; returns the rest.
    fn take(&mut self, b: RecordBatch, cfg: &BatchConfig) -> Option<RecordBatch> {
        let n = b.num_rows();
        if n == 0 {
            return None;
        }
        let room = cfg.max_rows.saturating_sub(self.rows);
        if room == 0 || self.bytes >= cfg.max_bytes {
            return Some(b);
        }
        let per_row = b.get_array_memory_size() / n;
        let take = room.min(n);
        self.parts.push(b.slice(0, take));
        self.rows += take;
        self.bytes += per_row * take;
        self.since.get_or_insert_with(Instant::now);
        (take < n).then(|| b.slice(take, n - take))
    }

    fn full(&self, cfg: &BatchConfig) -> bool {
        self.rows >= cfg.max_rows || self.bytes >= cfg.max_bytes
    }
}

/// Reads `rx` until it closes, handing micro-batches to `tx` whenever a worker has
/// announced itself on `idle` (one permit per worker waiting for a batch). Ends early
/// (Ok) when `tx` has no receiver left or `idle` is closed (no worker is left).
pub(crate) async fn run(
    schema: SchemaRef,
    cfg: BatchConfig,
    mut rx: mpsc::Receiver<RecordBatch>,
    tx: flume::Sender<RecordBatch>,
    idle: Arc<Semaphore>,
    metrics: StageMetrics,
) -> Result<()> {
    let delay = Duration::from_millis(cfg.max_delay_ms);
    let mut pending = Pending::default();
    // Rows of an input batch that did not fit in the pending one.
    let mut carry: Option<RecordBatch> = None;
    let mut closed = false;
    loop {
        if let Some(b) = carry.take() {
            carry = pending.take(b, &cfg);
        }
        if pending.rows == 0 {
            if closed {
                break;
            }
            match rx.recv().await {
                Some(b) => carry = pending.take(b, &cfg),
                None => closed = true,
            }
            metrics.channel_depth.set(rx.len() as i64);
            continue;
        }
        let full = pending.full(&cfg);
        let due_at = pending.since.unwrap_or_else(Instant::now) + delay;
        if !full && !closed && Instant::now() < due_at {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(b) => carry = pending.take(b, &cfg),
                    None => closed = true,
                },
                _ = tokio::time::sleep_until(due_at) => {}
            }
            continue;
        }
        if !full && !closed {
            // Due: what has already queued joins first.
            match rx.try_recv() {
                Ok(b) => {
                    carry = pending.take(b, &cfg);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
        }
        // Hand over when a worker is idle; until then rows keep joining while there is
        // room.
        let permit = if full || closed {
            idle.acquire().await
        } else {
            tokio::select! {
                biased;
                p = idle.acquire() => p,
                r = rx.recv() => {
                    match r {
                        Some(b) => carry = pending.take(b, &cfg),
                        None => closed = true,
                    }
                    continue;
                }
            }
        };
        match permit {
            Ok(p) => p.forget(),
            Err(_) => return Ok(()),
        }
        metrics.channel_depth.set(rx.len() as i64);
        let Pending { parts, .. } = std::mem::take(&mut pending);
        if !send(&schema, parts, &tx).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends `parts` as one batch; false when nobody receives any more.
async fn send(
    schema: &SchemaRef,
    mut parts: Vec<RecordBatch>,
    tx: &flume::Sender<RecordBatch>,
) -> Result<bool> {
    if parts.is_empty() {
        return Ok(true);
    }
    let batch = if parts.len() == 1 {
        parts.pop().expect("one element")
    } else {
        concat_batches(schema, parts.iter())?
    };
    Ok(tx.send_async(batch).await.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EnvelopeBuilder;

    fn one_row(id: &str) -> RecordBatch {
        let mut b = EnvelopeBuilder::new();
        b.push(id, None, None, None, Ok(b"x"));
        b.finish().unwrap()
    }

    struct Harness {
        input: mpsc::Sender<RecordBatch>,
        output: flume::Receiver<RecordBatch>,
        idle: Arc<Semaphore>,
        task: tokio::task::JoinHandle<Result<()>>,
    }

    fn start(max_rows: usize, max_delay_ms: u64) -> Harness {
        let (input, in_rx) = mpsc::channel(64);
        let (out_tx, output) = flume::bounded(8);
        let idle = Arc::new(Semaphore::new(0));
        let cfg = BatchConfig {
            max_rows,
            max_delay_ms,
            ..Default::default()
        };
        let metrics = crate::telemetry::Metrics::new("t").stage("s");
        let task = tokio::spawn(run(
            crate::schema::Edge::Source.schema(),
            cfg,
            in_rx,
            out_tx,
            idle.clone(),
            metrics,
        ));
        Harness {
            input,
            output,
            idle,
            task,
        }
    }

    #[tokio::test]
    async fn rows_arriving_while_the_worker_is_busy_join_the_next_batch() {
        let h = start(16, 0);
        // The worker is busy (no idle permit): nothing is handed over, however long
        // the rows wait, and they all join one batch.
        for i in 0..5 {
            h.input.send(one_row(&format!("r{i}"))).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(h.output.is_empty(), "handed over to a busy worker");
        h.idle.add_permits(1);
        assert_eq!(h.output.recv_async().await.unwrap().num_rows(), 5);
        // An idle worker and no delay: a lone row goes at once.
        h.idle.add_permits(1);
        h.input.send(one_row("lone")).await.unwrap();
        assert_eq!(h.output.recv_async().await.unwrap().num_rows(), 1);
        drop(h.input);
        h.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn batches_stop_at_max_rows_and_the_rest_waits_for_the_next_worker() {
        let h = start(16, 0);
        for i in 0..20 {
            h.input.send(one_row(&format!("r{i}"))).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.idle.add_permits(2);
        let first = h.output.recv_async().await.unwrap();
        let second = h.output.recv_async().await.unwrap();
        assert_eq!((first.num_rows(), second.num_rows()), (16, 4));
        // A closed input still hands over what is left, to the next idle worker.
        h.input.send(one_row("last")).await.unwrap();
        drop(h.input);
        h.idle.add_permits(1);
        assert_eq!(h.output.recv_async().await.unwrap().num_rows(), 1);
        h.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_delay_holds_a_part_batch_for_more_rows_and_no_worker_left_ends_it() {
        let h = start(4, 2000);
        h.idle.add_permits(1);
        h.input.send(one_row("a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(h.output.is_empty(), "sent before max_delay_ms");
        for id in ["b", "c", "d"] {
            h.input.send(one_row(id)).await.unwrap();
        }
        assert_eq!(
            h.output.recv_async().await.unwrap().num_rows(),
            4,
            "full: at once"
        );
        h.input.send(one_row("e")).await.unwrap();
        // Every worker has gone: the batcher ends instead of waiting forever.
        h.idle.close();
        h.task.await.unwrap().unwrap();
    }
}
