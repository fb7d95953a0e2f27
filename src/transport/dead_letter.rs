//! What becomes of a message a worker cannot finish: a delayed retry, or on its last
//! delivery the dead-letter subject, with its records continuing as error rows.
//!
//! - A message the stage failed on is returned with a delay (nak) until its last
//!   allowed delivery; then each of its records is tried alone, those that still fail
//!   become `internal` error rows, and the message goes to the dead-letter subject with
//!   the reason and delivery count ([`fail_stage`]).
//! - A message refused before the stage saw it ([`Refused`]) is retried while that can
//!   help (an unreadable claim, a payload this version cannot read, a batch past its
//!   deadline), and dead-lettered at once when it cannot (over `max_message_bytes`). Its
//!   records become `too_large` or `timeout` error rows where their ids are known.
//! - A message whose deliveries ran out with no outcome at all (a worker died on it
//!   every time) is found through the server's max-deliveries advisory, which the
//!   pipeline captures in a stream; [`super::advisory`] dead-letters it the same way.
//!
//! Header values (reasons, record ids) are escaped and capped (see
//! [`headers::escape`]): a record id with a line break or a 10 kB libtorch error must
//! never end the header block or panic the client.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use async_nats::jetstream::AckKind;
use bytes::Bytes;

use super::worker::{publish_rows, Ctx, Incoming, Ran, StageThread, WorkerSummary};
use super::{
    error_rows, headers, nats_err, record_ids, Connection, EdgeNames, REASON_TIMEOUT,
    REASON_TOO_LARGE, REASON_UNDECODABLE,
};
use crate::error::{Error, Result};
use crate::schema::ErrorKind;

/// Why a message did not reach its stage (or its stage gave up on it).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// The dead-letter reason (`undecodable`, `too_large`, `timeout`).
    pub(crate) reason: &'static str,
    /// The error kind of its records' rows.
    pub(crate) kind: ErrorKind,
    /// What is wrong, in words.
    pub(crate) message: String,
    /// Whether another delivery may go better.
    pub(crate) retry: bool,
    /// Its records' ids, when known without its batch.
    pub(crate) ids: Vec<String>,
    /// Its decoded batch, when it was decoded (a batch past its deadline).
    pub(crate) batch: Option<RecordBatch>,
}

impl Refused {
    /// A message this delivery could not read; others may.
    pub(crate) fn retry(message: String) -> Refused {
        Refused {
            reason: REASON_UNDECODABLE,
            kind: ErrorKind::Internal,
            message,
            retry: true,
            ids: Vec::new(),
            batch: None,
        }
    }

    /// A message over `max_message_bytes`: it will be on every delivery.
    pub(crate) fn too_large(message: String, ids: Vec<String>) -> Refused {
        Refused {
            reason: REASON_TOO_LARGE,
            kind: ErrorKind::TooLarge,
            message,
            retry: false,
            ids,
            batch: None,
        }
    }

    /// A batch that ran past its deadline.
    pub(crate) fn timeout(message: String, batch: Option<RecordBatch>) -> Refused {
        Refused {
            reason: REASON_TIMEOUT,
            kind: ErrorKind::Timeout,
            message,
            retry: true,
            ids: Vec::new(),
            batch,
        }
    }
}

/// Returns a message for a delayed redelivery.
pub(crate) async fn nak(ctx: &Ctx, inc: &Incoming) {
    ctx.nm.retries.inc();
    if let Err(e) = inc.msg.ack_with(AckKind::Nak(Some(ctx.nak_delay))).await {
        tracing::debug!(error = %e, "Nak not sent; the ack wait will redeliver.");
    }
}

pub(crate) fn dead_message(ctx: &Ctx, id: &str, what: &str) -> String {
    format!(
        "record {id}: {what}; dead-lettered to {}",
        ctx.input.dead_letter_subject
    )
}

/// A message refused before (or by the deadline of) its stage: retried while that can
/// help, else dead-lettered with its records as error rows.
pub(crate) async fn fail(ctx: &Ctx, inc: Incoming, sum: &mut WorkerSummary) {
    let Err(r) = inc.batch.clone() else {
        return;
    };
    if r.retry && inc.delivered < ctx.max_deliver {
        tracing::warn!(
            stage = %ctx.stage,
            delivery = inc.delivered,
            max_deliver = ctx.max_deliver,
            reason = r.reason,
            error = %headers::escape(&r.message),
            "Message refused; returned for a delayed retry."
        );
        nak(ctx, &inc).await;
        return;
    }
    let what = if r.retry {
        format!("{} (on each of {} deliveries)", r.message, inc.delivered)
    } else {
        r.message.clone()
    };
    tracing::error!(
        stage = %ctx.stage,
        delivery = inc.delivered,
        reason = r.reason,
        error = %headers::escape(&r.message),
        "Message refused for good; dead-lettering it."
    );
    let rows = match &r.batch {
        Some(b) => Some(b.clone()),
        None if !r.ids.is_empty() => super::id_batch(&r.ids).ok(),
        None => None,
    };
    let mut outputs = Vec::new();
    let mut ids = Vec::new();
    if let Some(b) = &rows {
        ids = record_ids(b).unwrap_or_default();
        match error_rows(b, &ctx.out_schema, r.kind, |id| {
            dead_message(ctx, id, &what)
        }) {
            Ok(rows) => outputs.push(rows),
            Err(e) => tracing::error!(error = %e, "Cannot build error rows."),
        }
    }
    let original = inc.msg.payload.clone();
    if dead_letter(ctx, &inc, &original, r.reason, &r.message, &ids, outputs).await {
        finish_dead(ctx, &inc, r.reason, r.kind, ids.len(), true, sum).await;
    } else {
        nak(ctx, &inc).await;
    }
}

/// Counts a dead-lettered message and ends it: terminated when none of its records
/// went on, acknowledged when some did.
async fn finish_dead(
    ctx: &Ctx,
    inc: &Incoming,
    reason: &str,
    kind: ErrorKind,
    failed: usize,
    all_failed: bool,
    sum: &mut WorkerSummary,
) {
    sum.dead_lettered += 1;
    ctx.nm.dead_lettered(reason);
    if failed > 0 {
        ctx.sm.failed(kind.as_str(), failed as u64);
    }
    let ack = if all_failed {
        AckKind::Term
    } else {
        AckKind::Ack
    };
    match inc.msg.double_ack_with(ack).await {
        Ok(()) => {
            sum.messages += 1;
            // A terminated message is not removed from a WorkQueue stream by every
            // server version; it is dead-lettered, so remove it.
            remove(&ctx.conn, &ctx.input.stream, inc.stream_sequence).await;
        }
        Err(e) => tracing::warn!(error = %e, "Termination not confirmed."),
    }
}

/// A message the stage failed on: retried later, or on its last delivery tried record
/// by record and dead-lettered.
pub(crate) async fn fail_stage(
    ctx: &Ctx,
    inc: Incoming,
    reason: &str,
    error: &str,
    stage: Option<&StageThread>,
    sum: &mut WorkerSummary,
) {
    if inc.delivered < ctx.max_deliver {
        tracing::warn!(
            stage = %ctx.stage,
            delivery = inc.delivered,
            max_deliver = ctx.max_deliver,
            error = %headers::escape(error),
            "Message failed; returned for a delayed retry."
        );
        nak(ctx, &inc).await;
        return;
    }
    tracing::error!(
        stage = %ctx.stage,
        delivery = inc.delivered,
        reason,
        error = %headers::escape(error),
        "Message failed on its last delivery; dead-lettering it."
    );
    // Records that still work alone go on; the rest become error rows.
    let mut outputs = Vec::new();
    let mut failed_ids = Vec::new();
    if let (Ok(batch), Some(t)) = (&inc.batch, stage) {
        for r in 0..batch.num_rows() {
            let one = batch.slice(r, 1);
            let alone = match t.run(one.clone()).await {
                Ran::Done(o) => concat_batches(&ctx.out_schema, &o).map_err(Error::from),
                Ran::Failed(e) => Err(e),
                Ran::TimedOut => Err(Error::Stage {
                    stage: ctx.stage.clone(),
                    message: format!(
                        "did not finish within batch_timeout_ms = {}",
                        ctx.batch_timeout.as_millis()
                    ),
                }),
            };
            match alone {
                Ok(o) => outputs.push(o),
                Err(e) => {
                    failed_ids.extend(record_ids(&one).unwrap_or_default());
                    let msg = e.to_string();
                    let what = format!(
                        "stage {} failed on each of {} deliveries: {msg}",
                        ctx.stage, inc.delivered
                    );
                    match error_rows(&one, &ctx.out_schema, ErrorKind::Internal, |id| {
                        dead_message(ctx, id, &what)
                    }) {
                        Ok(rows) => outputs.push(rows),
                        Err(e) => tracing::error!(error = %e, "Cannot build error rows."),
                    }
                }
            }
        }
    }
    let all_failed = match &inc.batch {
        Ok(b) => failed_ids.len() == b.num_rows(),
        Err(_) => true,
    };
    let original = inc.msg.payload.clone();
    if dead_letter(ctx, &inc, &original, reason, error, &failed_ids, outputs).await {
        finish_dead(
            ctx,
            &inc,
            reason,
            ErrorKind::Internal,
            failed_ids.len(),
            all_failed,
            sum,
        )
        .await;
    } else {
        nak(ctx, &inc).await;
    }
}

/// Deletes message `seq` from `stream` (dead-lettered: it must not block the stream).
pub(crate) async fn remove(conn: &Connection, stream: &str, seq: u64) {
    if seq == 0 {
        return;
    }
    match conn.js.get_stream(stream).await {
        Ok(s) => {
            if let Err(e) = s.delete_message(seq).await {
                tracing::debug!(error = %e, seq, "Message already removed.");
            }
        }
        Err(e) => tracing::warn!(error = %e, stream, "Cannot remove a dead-lettered message."),
    }
}

/// Publishes `outputs` (the message's surviving and error rows) downstream and the
/// original message to the dead-letter subject; true once both are stored.
pub(crate) async fn dead_letter(
    ctx: &Ctx,
    inc: &Incoming,
    original: &Bytes,
    reason: &str,
    error: &str,
    failed_ids: &[String],
    outputs: Vec<RecordBatch>,
) -> bool {
    let r = async {
        if !outputs.is_empty() {
            let out = concat_batches(&ctx.out_schema, &outputs)?;
            let in_ids = match &inc.batch {
                Ok(b) => record_ids(b)?,
                Err(_) => record_ids(&out)?,
            };
            let rows = publish_rows(ctx, inc, &in_ids, &out).await?;
            ctx.sm.records_out.inc_by(rows as u64);
        }
        let rows = match &inc.batch {
            Ok(b) => b.num_rows(),
            Err(r) => r
                .batch
                .as_ref()
                .map(|b| b.num_rows())
                .unwrap_or(r.ids.len()),
        };
        let mut extra = vec![
            (headers::DEAD_REASON, format!("{reason}: {error}")),
            (headers::DELIVERIES, inc.delivered.to_string()),
            (
                headers::ORIGIN,
                format!("{}:{}", ctx.input.stream, inc.stream_sequence),
            ),
            (headers::RECORD_IDS, failed_ids.join(",")),
        ];
        let payload = match &inc.claim {
            Some(c) => {
                extra.push((headers::CLAIM, c.clone()));
                Bytes::new()
            }
            None => original.clone(),
        };
        publish_dead_letter(
            &ctx.conn,
            &ctx.input,
            &ctx.stage,
            &extra,
            rows,
            payload,
            inc.stream_sequence,
        )
        .await
    }
    .await;
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Dead-lettering failed; the message will be retried.");
            false
        }
    }
}

/// Publishes a message's original bytes to `edge`'s dead-letter subject with `extra`
/// headers (reason, deliveries, origin, ids) and waits for the server to store it.
/// Dead letters keep their bytes as they came: never claim-checked again (a forwarded
/// claim travels in the headers).
pub(crate) async fn publish_dead_letter(
    conn: &Connection,
    edge: &EdgeNames,
    stage: &str,
    extra: &[(&'static str, String)],
    rows: usize,
    payload: Bytes,
    seq: u64,
) -> Result<()> {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in extra {
        headers::put(&mut h, k, v);
    }
    headers::put(&mut h, headers::STAGE, stage);
    headers::put(&mut h, headers::EDGE, &edge.label());
    headers::put(&mut h, headers::ROWS, &rows.to_string());
    conn.js
        .send_publish(
            edge.dead_letter_subject.clone(),
            async_nats::jetstream::message::PublishMessage::build()
                .payload(payload)
                .headers(h)
                .message_id(format!("dlq:{}:{seq}", edge.stream)),
        )
        .await
        .map_err(nats_err("publish dead letter"))?
        .await
        .map_err(nats_err("dead letter not acknowledged"))?;
    Ok(())
}
