//! A batch's rows on their way out: split back by the input message each came from,
//! published with message ids made from the inputs, and the inputs acknowledged only
//! once the server stored their output.

use std::collections::HashMap;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};

use super::super::codec::{Outgoing, Pending};
use super::super::dead_letter::{self};
use super::super::{headers, message_id, record_ids};
use crate::error::{Error, Result};

use super::{Ctx, Incoming, WorkerSummary};

/// The stage's output rows, grouped by the input message their id came from.
pub(crate) fn split(
    ctx: &Ctx,
    inputs: &[Incoming],
    outs: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let out = concat_batches(&ctx.out_schema, &outs)?;
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (k, inc) in inputs.iter().enumerate() {
        if let Ok(b) = &inc.batch {
            for id in record_ids(b)? {
                owner.insert(id, k);
            }
        }
    }
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); inputs.len()];
    for (r, id) in record_ids(&out)?.into_iter().enumerate() {
        let k = owner.get(&id).ok_or_else(|| {
            Error::Runtime(format!(
                "{} emitted record {}, which was not in its input",
                ctx.stage,
                headers::escape(&id)
            ))
        })?;
        rows[*k].push(r as u32);
    }
    rows.into_iter()
        .map(|r| -> Result<RecordBatch> { Ok(take_record_batch(&out, &UInt32Array::from(r))?) })
        .collect()
}

/// Sends `out` (rows of `inc`, whose input held `in_ids`) downstream without waiting;
/// returns the rows sent and the publishes to settle.
pub(crate) async fn send_rows(
    ctx: &Ctx,
    inc: &Incoming,
    in_ids: &[String],
    out: &RecordBatch,
) -> Result<(usize, Vec<Pending>)> {
    if out.num_rows() == 0 {
        return Ok((0, Vec::new()));
    }
    let mid = message_id(&ctx.stage, &ctx.revision, &inc.submission, in_ids);
    let edge = ctx.output.label();
    let o = Outgoing {
        subject: &ctx.output.subject,
        stage: &ctx.stage,
        edge: &edge,
        message_id: &mid,
        extra: vec![(headers::SUBMISSION, inc.submission.clone())],
    };
    let pending = ctx.conn.send_batch(&o, out).await?;
    Ok((out.num_rows(), pending))
}

/// Waits until the server stored every publish of `pending`.
pub(crate) async fn settle(ctx: &Ctx, pending: Vec<Pending>) -> Result<()> {
    for p in pending {
        if p.claimed {
            ctx.nm.claims.inc();
        }
        let (_, secs) = p.wait().await?;
        ctx.nm.publish_seconds.observe(secs);
    }
    Ok(())
}

/// [`send_rows`], then [`settle`]: returns the rows stored.
pub(crate) async fn publish_rows(
    ctx: &Ctx,
    inc: &Incoming,
    in_ids: &[String],
    out: &RecordBatch,
) -> Result<usize> {
    let (rows, pending) = send_rows(ctx, inc, in_ids, out).await?;
    settle(ctx, pending).await?;
    Ok(rows)
}

/// Publishes each message's output, waits for the server's acks, then acknowledges
/// the inputs whose output is stored. A failed publish returns its input for a retry.
pub(crate) async fn publish_and_ack(
    ctx: &Ctx,
    inputs: Vec<Incoming>,
    outputs: Vec<RecordBatch>,
    sum: &mut WorkerSummary,
) {
    // Every output is sent before any acknowledgement is awaited, so the batch's
    // publishes overlap.
    let mut sent = Vec::with_capacity(inputs.len());
    for (inc, out) in inputs.into_iter().zip(outputs) {
        let r = match inc.batch.as_ref().map(record_ids) {
            Ok(Ok(ids)) => send_rows(ctx, &inc, &ids, &out).await,
            Ok(Err(e)) => Err(e),
            Err(r) => Err(Error::Nats(r.message.clone())),
        };
        sent.push((inc, r));
    }
    let mut acks = Vec::new();
    for (inc, r) in sent {
        let stored = match r {
            Ok((rows, pending)) => settle(ctx, pending).await.map(|()| rows),
            Err(e) => Err(e),
        };
        match stored {
            Ok(rows) => {
                ctx.sm.records_out.inc_by(rows as u64);
                acks.push(inc);
            }
            Err(e) => {
                tracing::warn!(stage = %ctx.stage, error = %e, "Output not stored; the input will be retried.");
                dead_letter::nak(ctx, &inc).await;
            }
        }
    }
    let done = futures_util::future::join_all(acks.iter().map(|inc| inc.msg.double_ack())).await;
    for (inc, r) in acks.iter().zip(done) {
        match r {
            Ok(()) => {
                sum.messages += 1;
                sum.records += inc.batch.as_ref().map(|b| b.num_rows() as u64).unwrap_or(0);
                if let Some(c) = &inc.claim {
                    ctx.conn.release_claim(c).await;
                }
            }
            // The server will redeliver it; the copy's output is dropped as a duplicate
            // (same message id) or by the sink's id index.
            Err(e) => {
                tracing::warn!(stage = %ctx.stage, error = %e, "Acknowledgement not confirmed.")
            }
        }
    }
}
