//! `capstream submit`: the pipeline's source, published onto its first edge.
//!
//! The source (files, Parquet, stdin) runs on a blocking thread as in embedded mode;
//! its batches are cut to `[nats] records_per_message` rows and published with a
//! `Nats-Msg-Id` made of their record ids, so submitting the same input twice inside
//! the server's duplicate window stores it once (and the sink drops ids it already
//! committed after that). Flow control has two levels: at most [`WINDOW`] publishes
//! wait for their acknowledgement at once, and publishing pauses while the first
//! stream holds more than `[nats] max_backlog` messages, so a large input never
//! floods the server ahead of the workers.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use super::codec::{encode, Outgoing, Pending};
use super::metrics::NatsMetrics;
use super::{message_id, record_ids, Connection, SOURCE};
use crate::error::{Error, Result};
use crate::pipeline::{Plan, Shutdown};
use crate::sources::SourceInput;
use crate::telemetry::Metrics;

/// Publishes awaiting their acknowledgement at most.
pub const WINDOW: usize = 256;

/// What `capstream submit` runs.
#[derive(Debug)]
pub struct SubmitOptions {
    /// The checked pipeline.
    pub plan: Plan,
    /// What `--input` named.
    pub input: SourceInput,
    /// Record ids not to publish (already committed, for `run --resume`).
    pub skip: Arc<HashSet<String>>,
}

/// What a submit published.
#[derive(Debug, Clone, Default)]
pub struct SubmitSummary {
    /// Records published.
    pub records: u64,
    /// Messages published.
    pub messages: u64,
    /// Messages the server had already stored (same message id inside its window).
    pub duplicates: u64,
    /// Wall time.
    pub seconds: f64,
    /// True when a stop request ended it before the input did.
    pub interrupted: bool,
}

/// Publishes the whole input (or until `shutdown` stops it) and waits for every
/// acknowledgement.
pub async fn run(
    conn: Connection,
    opts: SubmitOptions,
    shutdown: Shutdown,
    metrics: Metrics,
) -> Result<SubmitSummary> {
    let started = Instant::now();
    let plan = opts.plan;
    let n = plan.config.nats.clone();
    let mut source = plan.config.source.build(&opts.input, opts.skip.clone())?;
    let rows = n.records_per_message;
    let max_bytes = plan.config.batch.max_bytes;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
    let sd = shutdown.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        while !sd.is_stopping() {
            let Some(b) = source.next_batch(rows, max_bytes)? else {
                break;
            };
            if tx.blocking_send(b).is_err() {
                break;
            }
        }
        Ok(())
    });
    let nm = NatsMetrics::new(&metrics, &plan.config.name, SOURCE);
    let sm = metrics.stage(SOURCE);
    let edge = conn.topology.edges[0].clone();
    let label = edge.label();
    let mut window: VecDeque<Pending> = VecDeque::new();
    let mut summary = SubmitSummary::default();
    let mut since_check = 0u64;
    while let Some(batch) = rx.recv().await {
        if since_check >= 32 || summary.messages == 0 {
            since_check = 0;
            while conn.backlog(0).await? > n.max_backlog && !shutdown.is_stopping() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if shutdown.is_stopping() {
            summary.interrupted = true;
            break;
        }
        let ids = record_ids(&batch)?;
        let mid = message_id(SOURCE, "", &ids);
        let out = Outgoing {
            subject: &edge.subject,
            stage: SOURCE,
            edge: &label,
            message_id: &mid,
            extra: vec![],
        };
        window.push_back(conn.send(&out, batch.num_rows(), encode(&batch)?).await?);
        summary.messages += 1;
        summary.records += batch.num_rows() as u64;
        sm.records_out.inc_by(batch.num_rows() as u64);
        sm.batches.inc();
        since_check += 1;
        while window.len() >= WINDOW {
            let p = window.pop_front().expect("non-empty");
            settle(p, &nm, &mut summary).await?;
        }
    }
    drop(rx);
    while let Some(p) = window.pop_front() {
        settle(p, &nm, &mut summary).await?;
    }
    match reader.await {
        Ok(r) => r?,
        Err(e) => return Err(Error::Runtime(format!("source thread failed: {e}"))),
    }
    if shutdown.is_stopping() {
        summary.interrupted = true;
    }
    sm.beat();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Waits for one publish's acknowledgement and counts it.
async fn settle(p: Pending, nm: &NatsMetrics, summary: &mut SubmitSummary) -> Result<()> {
    if p.claimed {
        nm.claims.inc();
    }
    let (ack, secs) = p.wait().await?;
    nm.publish_seconds.observe(secs);
    if ack.duplicate {
        summary.duplicates += 1;
    }
    Ok(())
}
