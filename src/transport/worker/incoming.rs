//! A pulled message on its way in: decoded into the stage's input schema (or refused,
//! with why), and kept alive with progress acks while its batch is in inference.

use std::time::Duration;

use arrow::array::RecordBatch;
use async_nats::jetstream::{self, AckKind};

use super::super::codec::{check_version, decode_bounded, ClaimError};
use super::super::dead_letter::Refused;
use super::super::headers;
use crate::schema::{check_compatible, with_columns};

use super::Ctx;

/// A received message and what is known about it.
pub(crate) struct Incoming {
    pub(crate) msg: jetstream::Message,
    pub(crate) delivered: i64,
    pub(crate) stream_sequence: u64,
    pub(crate) claim: Option<String>,
    /// The submission it descends from (see [`headers::SUBMISSION`]).
    pub(crate) submission: String,
    /// The decoded batch in the stage's input schema, or why it cannot be.
    pub(crate) batch: std::result::Result<RecordBatch, Refused>,
}

/// Sends `+WPI` for `msgs` every `every` until dropped, so the server does not
/// redeliver a batch that is still in inference. The batch deadline drops it: a batch
/// past its deadline gets no more.
pub(crate) struct ProgressTicker(tokio::task::JoinHandle<()>);

impl ProgressTicker {
    pub(crate) fn start(msgs: Vec<jetstream::Message>, every: Duration) -> ProgressTicker {
        ProgressTicker(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for m in &msgs {
                    if let Err(e) = m.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %e, "Progress ack not sent.");
                    }
                }
            }
        }))
    }
}

impl Drop for ProgressTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decodes one message into the stage's input schema.
pub(crate) async fn open(ctx: &Ctx, msg: jetstream::Message) -> Incoming {
    let (delivered, stream_sequence) = match msg.info() {
        Ok(i) => (i.delivered, i.stream_sequence),
        Err(_) => (1, 0),
    };
    if delivered > 1 {
        ctx.nm.redeliveries.inc();
    }
    // Known from the header even when the object cannot be read, so that a dead
    // letter can forward it.
    let mut claim = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::CLAIM))
        .map(|v| v.as_str().to_string());
    let limit = ctx.conn.nats.max_message_bytes;
    let batch = async {
        check_version(msg.headers.as_ref()).map_err(|e| Refused::retry(e.to_string()))?;
        let (payload, c) = ctx
            .conn
            .payload(msg.headers.as_ref(), &msg.payload)
            .await
            .map_err(|e| match e {
                ClaimError::TooLarge(m) => Refused::too_large(m, Vec::new()),
                ClaimError::Unavailable(m) => Refused::retry(m),
            })?;
        claim = c.or(claim.take());
        let b = decode_bounded(&payload, limit).map_err(|u| {
            if u.too_large {
                Refused::too_large(u.message, u.ids)
            } else {
                Refused::retry(u.message)
            }
        })?;
        check_compatible(&ctx.in_schema, &b.schema())
            .map_err(|d| Refused::retry(format!("payload does not fit {}: {d}", ctx.stage)))?;
        with_columns(&b, ctx.in_schema.clone(), vec![]).map_err(|e| Refused::retry(e.to_string()))
    }
    .await;
    Incoming {
        submission: super::super::submission_of(msg.headers.as_ref()),
        msg,
        delivered,
        stream_sequence,
        claim,
        batch,
    }
}
