//! Micro-batching: gathers rows by count, bytes and age before a stage sees them.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Result;
use crate::limits::BatchConfig;
use crate::telemetry::StageMetrics;

/// Reads `rx` until it closes, sending micro-batches to `tx`. Ends early (Ok) when `tx`
/// has no receiver left.
pub(crate) async fn run(
    schema: SchemaRef,
    cfg: BatchConfig,
    mut rx: mpsc::Receiver<RecordBatch>,
    tx: flume::Sender<RecordBatch>,
    metrics: StageMetrics,
) -> Result<()> {
    let delay = Duration::from_millis(cfg.max_delay_ms);
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            // No delay: what has queued joins the batch, and it goes as soon as nothing
            // more is waiting (Triton's max_queue_delay of 0), without a timer tick.
            Some(_) if delay.is_zero() => match rx.try_recv() {
                Ok(b) => Some(b),
                Err(mpsc::error::TryRecvError::Empty) => {
                    if !send(&schema, &mut pending, &tx).await? {
                        return Ok(());
                    }
                    rows = 0;
                    bytes = 0;
                    deadline = None;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            },
            Some(d) => tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep_until(d) => {
                    if !send(&schema, &mut pending, &tx).await? { return Ok(()) }
                    rows = 0; bytes = 0; deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        metrics.channel_depth.set(rx.len() as i64);
        let Some(batch) = next else { break };
        let n = batch.num_rows();
        if n == 0 {
            continue;
        }
        let per_row = batch.get_array_memory_size() / n;
        let mut offset = 0;
        while offset < n {
            let room = (cfg.max_rows - rows).max(1);
            let take = room.min(n - offset);
            pending.push(batch.slice(offset, take));
            offset += take;
            rows += take;
            bytes += per_row * take;
            if rows >= cfg.max_rows || bytes >= cfg.max_bytes {
                if !send(&schema, &mut pending, &tx).await? {
                    return Ok(());
                }
                rows = 0;
                bytes = 0;
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(Instant::now() + delay);
            }
        }
    }
    send(&schema, &mut pending, &tx).await?;
    Ok(())
}

/// Sends the pending rows as one batch; false when nobody receives any more.
async fn send(
    schema: &SchemaRef,
    pending: &mut Vec<RecordBatch>,
    tx: &flume::Sender<RecordBatch>,
) -> Result<bool> {
    if pending.is_empty() {
        return Ok(true);
    }
    let batch = if pending.len() == 1 {
        pending.pop().expect("one element")
    } else {
        let b = concat_batches(schema, pending.iter())?;
        pending.clear();
        b
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

    #[tokio::test]
    async fn with_no_delay_a_batch_is_what_has_queued_up_to_max_rows() {
        let (in_tx, in_rx) = mpsc::channel(64);
        for i in 0..20 {
            in_tx.send(one_row(&format!("r{i}"))).await.unwrap();
        }
        let (out_tx, out_rx) = flume::bounded(8);
        let cfg = BatchConfig {
            max_rows: 16,
            max_delay_ms: 0,
            ..Default::default()
        };
        let metrics = crate::telemetry::Metrics::new("t").stage("s");
        let task = tokio::spawn(run(
            crate::schema::Edge::Source.schema(),
            cfg,
            in_rx,
            out_tx,
            metrics,
        ));
        // The sender stays open: the batches go because nothing more is waiting, not
        // because the input ended.
        let first = out_rx.recv_async().await.unwrap();
        let second = out_rx.recv_async().await.unwrap();
        assert_eq!((first.num_rows(), second.num_rows()), (16, 4));
        in_tx.send(one_row("late")).await.unwrap();
        assert_eq!(out_rx.recv_async().await.unwrap().num_rows(), 1);
        drop(in_tx);
        task.await.unwrap().unwrap();
    }
}
