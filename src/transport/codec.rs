//! Batches on the wire: one Arrow IPC stream (schema, batch, end marker) per message,
//! buffers compressed with zstd, described by headers; large payloads by claim check.
//!
//! Each message is self-contained (it repeats the schema), so any worker can decode any
//! message without state. The `id` column travels inside the batch like every other
//! column; headers only describe the payload (schema version, producing stage, edge,
//! row count) so that tools can route and inspect without decoding it. A payload above
//! [`Connection::inline_limit`] is stored in the pipeline's Object Store bucket and the
//! message carries only its name (`Capstream-Claim`); the consumer that acknowledges
//! the message deletes the object.

use std::io::Cursor;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{headers, nats_err, Connection};
use crate::config::NatsCompression;
use crate::error::{Error, Result};
use crate::schema::SCHEMA_VERSION;

/// Encodes `batch` as one Arrow IPC stream, its buffers compressed as configured.
pub fn encode(batch: &RecordBatch, compression: NatsCompression) -> Result<Bytes> {
    let codec = match compression {
        NatsCompression::Zstd => Some(CompressionType::ZSTD),
        NatsCompression::None => None,
    };
    let opts = IpcWriteOptions::default().try_with_compression(codec)?;
    let mut w = StreamWriter::try_new_with_options(Vec::new(), &batch.schema(), opts)?;
    w.write(batch)?;
    w.finish()?;
    Ok(Bytes::from(w.into_inner()?))
}

/// Decodes a payload written by [`encode`]: exactly one batch (an empty stream is an
/// error, several batches are concatenated).
pub fn decode(bytes: &[u8]) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    match batches.len() {
        0 => Err(Error::Nats("message holds no record batch".into())),
        1 => Ok(batches.into_iter().next().expect("one batch")),
        _ => Ok(arrow::compute::concat_batches(&schema, &batches)?),
    }
}

/// What travels with a payload.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The subject (an edge's, or a dead-letter subject).
    pub subject: &'a str,
    /// The producing stage.
    pub stage: &'a str,
    /// The `Capstream-Edge` label.
    pub edge: &'a str,
    /// `Nats-Msg-Id`.
    pub message_id: &'a str,
    /// Extra headers (dead-letter details).
    pub extra: Vec<(&'static str, String)>,
}

/// A publish sent and not yet acknowledged.
pub struct Pending {
    ack: PublishAckFuture,
    started: Instant,
    /// True when the payload went through the Object Store.
    pub claimed: bool,
}

impl Pending {
    /// Waits for the server's acknowledgement; returns it with the seconds since the
    /// publish was sent.
    pub async fn wait(self) -> Result<(async_nats::jetstream::publish::PublishAck, f64)> {
        let ack = self
            .ack
            .await
            .map_err(nats_err("publish not acknowledged"))?;
        Ok((ack, self.started.elapsed().as_secs_f64()))
    }
}

impl Connection {
    /// Sends an encoded batch of `rows` rows and returns without waiting for the
    /// acknowledgement, so that several publishes overlap. A payload above the inline
    /// limit is put in the Object Store first. An empty `payload` with a
    /// `Capstream-Claim` among `out.extra` forwards an existing claim (dead letters).
    pub async fn send(&self, out: &Outgoing<'_>, rows: usize, payload: Bytes) -> Result<Pending> {
        let mut h = HeaderMap::new();
        h.insert(headers::SCHEMA_VERSION, SCHEMA_VERSION);
        h.insert(headers::STAGE, out.stage);
        h.insert(headers::EDGE, out.edge);
        h.insert(headers::ROWS, rows.to_string());
        for (k, v) in &out.extra {
            h.insert(*k, v.as_str());
        }
        let started = Instant::now();
        let claimed = payload.len() > self.inline_limit;
        let body = if claimed {
            // Object names allow the id's characters except ':'; the message id is
            // unique per output, so a redelivered copy overwrites the same object.
            let name = out.message_id.replace(':', "_");
            self.claims
                .put(name.as_str(), &mut Cursor::new(payload.as_ref()))
                .await
                .map_err(nats_err(format!("object store put {name}")))?;
            h.insert(headers::CLAIM, name.as_str());
            Bytes::new()
        } else {
            payload
        };
        let ack = self
            .js
            .send_publish(
                out.subject.to_string(),
                PublishMessage::build()
                    .payload(body)
                    .headers(h)
                    .message_id(out.message_id),
            )
            .await
            .map_err(nats_err(format!("publish to {}", out.subject)))?;
        Ok(Pending {
            ack,
            started,
            claimed,
        })
    }

    /// The payload of a received message: inline, or fetched from the Object Store
    /// when claim-checked. Returns it with the claim's name, if any.
    pub async fn payload(
        &self,
        headers: Option<&HeaderMap>,
        inline: &Bytes,
    ) -> Result<(Bytes, Option<String>)> {
        let claim = headers
            .and_then(|h| h.get(headers::CLAIM))
            .map(|v| v.as_str().to_string());
        let Some(name) = claim else {
            return Ok((inline.clone(), None));
        };
        let mut obj = self
            .claims
            .get(name.as_str())
            .await
            .map_err(nats_err(format!("object store get {name}")))?;
        let mut buf = Vec::new();
        obj.read_to_end(&mut buf)
            .await
            .map_err(nats_err(format!("object store read {name}")))?;
        Ok((Bytes::from(buf), Some(name)))
    }

    /// Deletes a consumed claim; a missing object is fine (another copy's consumer
    /// deleted it).
    pub async fn release_claim(&self, name: &str) {
        if let Err(e) = self.claims.delete(name).await {
            tracing::debug!(object = name, error = %e, "Claim already gone.");
        }
    }
}

/// Checks a received message's schema version header, when present.
pub fn check_version(headers: Option<&HeaderMap>) -> Result<()> {
    match headers.and_then(|h| h.get(headers::SCHEMA_VERSION)) {
        Some(v) if v.as_str() != SCHEMA_VERSION => Err(Error::Nats(format!(
            "message has schema version {} but this worker reads {SCHEMA_VERSION}",
            v.as_str()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_with_metadata() {
        let mut b = crate::schema::EnvelopeBuilder::new();
        b.push("a", Some("a.png"), None, None, Ok(&[7u8; 3000]));
        b.push("b", None, Some(&["a cat".to_string()]), None, Ok(b"xy"));
        let batch = b.finish().unwrap();
        let bytes = encode(&batch, NatsCompression::Zstd).unwrap();
        assert!(bytes.len() < 3000, "zstd compresses the repeated bytes");
        let back = decode(&bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.schema().metadata(), batch.schema().metadata());
        // Uncompressed bodies carry the bytes as they are, and decode to the same batch.
        let plain = encode(&batch, NatsCompression::None).unwrap();
        assert!(plain.len() > 3000, "{} bytes", plain.len());
        assert_eq!(decode(&plain).unwrap(), batch);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"not arrow").is_err());
        assert!(decode(&[]).is_err());
    }
}
