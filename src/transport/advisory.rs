//! Messages whose deliveries ran out with no outcome at all: a worker died on each
//! delivery, so no worker ever reached the failing-message policy. The server says so
//! in a max-deliveries advisory, which the pipeline captures in a stream; each
//! worker's [`advisory_loop`] reads its stage's advisories and dead-letters the
//! message as [`super::dead_letter`] would have, its records becoming error rows.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, AckKind};

use super::codec::decode_bounded;
use super::dead_letter::{dead_letter, dead_message, remove, Refused};
use super::pull::Puller;
use super::worker::{Ctx, Incoming};
use super::{error_rows, headers, nats_err, record_ids, REASON_MAX_DELIVER};
use crate::error::{Error, Result};
use crate::pipeline::Shutdown;
use crate::schema::{with_columns, ErrorKind};

/// The server's max-deliveries advisory (fields used here).
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream: String,
    stream_seq: u64,
    deliveries: i64,
}

/// Dead-letters this stage's messages whose deliveries ran out with no outcome. Returns
/// how many it handled.
pub(crate) async fn advisory_loop(ctx: Arc<Ctx>, shutdown: Shutdown) -> u64 {
    let mut n = 0;
    let name = super::dead_letter_consumer(&ctx.input.to);
    let stream = ctx.conn.topology.advisory_stream.clone();
    // Registered once bound, as the stage loops are: waiting out a leader election is
    // not a stall.
    let Some(mut puller) =
        Puller::bind_until(&ctx.conn, &stream, &name, ctx.nm.clone(), None, &shutdown).await
    else {
        return n;
    };
    let beat = ctx
        .health
        .register(format!("{} advisory loop", ctx.stage), ctx.loop_allowance());
    while !shutdown.is_stopping() {
        beat.beat();
        let msgs = match puller.pull(16, ctx.idle, Duration::ZERO).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "Advisory pull failed.");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for m in msgs {
            match exhausted(&ctx, &m).await {
                Ok(handled) => {
                    n += handled as u64;
                    if let Err(e) = m.double_ack().await {
                        tracing::warn!(error = %e, "Advisory ack not confirmed.");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot dead-letter an exhausted message yet.");
                    let _ = m.ack_with(AckKind::Nak(Some(ctx.nak_delay))).await;
                }
            }
        }
    }
    n
}

/// Handles one max-deliveries advisory; false when the message is already gone (the
/// server says it has no such message: acknowledged late, or dead-lettered by its last
/// worker). Any other failure to read it is an error, so the advisory is retried: a
/// stream without a leader for a moment must not lose the message.
async fn exhausted(ctx: &Ctx, advisory: &jetstream::Message) -> Result<bool> {
    let a: MaxDeliveries = serde_json::from_slice(&advisory.payload)?;
    let stream = ctx
        .conn
        .js
        .get_stream(&a.stream)
        .await
        .map_err(nats_err(format!("stream {}", a.stream)))?;
    let raw = match stream.get_raw_message(a.stream_seq).await {
        Ok(r) => r,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(false),
        Err(e) => {
            return Err(Error::Nats(format!(
                "message {} of {}: {e}",
                a.stream_seq, a.stream
            )))
        }
    };
    let why = format!(
        "no worker finished it in {} deliveries (max_deliver)",
        a.deliveries
    );
    let limit = ctx.conn.nats.max_message_bytes;
    let claim = raw
        .headers
        .get(headers::CLAIM)
        .map(|v| v.as_str().to_string());
    let decoded = async {
        let (payload, _) = ctx
            .conn
            .payload(Some(&raw.headers), &raw.payload)
            .await
            .map_err(|e| e.to_string())?;
        let b = decode_bounded(&payload, limit).map_err(|u| u.message)?;
        with_columns(&b, ctx.in_schema.clone(), vec![]).map_err(|e| e.to_string())
    }
    .await;
    let mut outputs = Vec::new();
    let mut ids = Vec::new();
    if let Ok(b) = &decoded {
        ids = record_ids(b)?;
        outputs.push(error_rows(b, &ctx.out_schema, ErrorKind::Internal, |id| {
            dead_message(ctx, id, &format!("stage {}: {why}", ctx.stage))
        })?);
    }
    let inc = Incoming {
        submission: super::submission_of(Some(&raw.headers)),
        msg: advisory.clone(),
        delivered: a.deliveries,
        stream_sequence: a.stream_seq,
        claim,
        batch: decoded.map_err(Refused::retry),
    };
    // The dead letter carries the original bytes, not the advisory's.
    if !dead_letter(
        ctx,
        &inc,
        &raw.payload,
        REASON_MAX_DELIVER,
        &why,
        &ids,
        outputs,
    )
    .await
    {
        return Err(Error::Nats("dead letter not stored".into()));
    }
    ctx.nm.dead_lettered(REASON_MAX_DELIVER);
    if !ids.is_empty() {
        ctx.sm
            .failed(ErrorKind::Internal.as_str(), ids.len() as u64);
    }
    remove(&ctx.conn, &a.stream, a.stream_seq).await;
    tracing::error!(
        stage = %ctx.stage,
        seq = a.stream_seq,
        deliveries = a.deliveries,
        "Dead-lettered a message whose deliveries ran out."
    );
    Ok(true)
}
