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
//!
//! Decoding is bounded: [`decode_bounded`] adds up the memory a payload declares (every
//! buffer's length, or for a compressed buffer the decompressed length in its 8-byte
//! prefix) from the IPC framing alone, before anything is decompressed or allocated, and
//! refuses a payload over `[nats] max_message_bytes`. Such a message still names its
//! records when its `id` column alone is small enough to read, so they can become error
//! rows instead of vanishing.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use arrow::array::{Array, RecordBatch, StringArray};
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
use crate::schema::{columns, SCHEMA_VERSION};

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
/// error, several batches are concatenated). Unbounded: for payloads this process made
/// or already checked; messages from the wire go through [`decode_bounded`].
pub fn decode(bytes: &[u8]) -> Result<RecordBatch> {
    decode_projected(bytes, None)
}

fn decode_projected(bytes: &[u8], projection: Option<Vec<usize>>) -> Result<RecordBatch> {
    // A crafted stream must not take the worker down with it, whatever the reader does.
    catch_unwind(AssertUnwindSafe(|| {
        let reader = StreamReader::try_new(Cursor::new(bytes), projection)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        match batches.len() {
            0 => Err(Error::Nats("message holds no record batch".into())),
            1 => Ok(batches.into_iter().next().expect("one batch")),
            _ => Ok(arrow::compute::concat_batches(&schema, &batches)?),
        }
    }))
    .unwrap_or_else(|_| {
        Err(Error::Nats(
            "the Arrow IPC reader panicked on the payload".into(),
        ))
    })
}

/// The memory an Arrow IPC stream declares, read from its framing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Declared {
    /// Bytes of every buffer of every batch, decompressed.
    pub total: u64,
    /// Bytes of the `id` column's buffers when it is the schema's first (Utf8) field.
    pub ids: Option<u64>,
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Adds up the decompressed sizes of `batch`'s buffers in `body`; the first `id_buffers`
/// of them are also added to `ids`.
fn buffer_bytes(
    batch: arrow_ipc::RecordBatch<'_>,
    body: &[u8],
    id_buffers: usize,
    ids: &mut u64,
) -> std::result::Result<u64, String> {
    let compressed = batch.compression().is_some();
    let mut total = 0u64;
    for (k, b) in batch.buffers().into_iter().flatten().enumerate() {
        let (off, len) = (b.offset(), b.length());
        let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len)) else {
            return Err("a buffer has a negative offset or length".into());
        };
        let end = off
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or("a buffer lies outside the message body")?;
        let size = if len == 0 {
            0
        } else if compressed {
            let prefix = body
                .get(off..end)
                .and_then(|b| b.get(..8))
                .map(|p| i64::from_le_bytes(p.try_into().expect("8 bytes")))
                .ok_or("a compressed buffer is shorter than its length prefix")?;
            match prefix {
                -1 => (len - 8) as u64,
                p if p >= 0 => p as u64,
                p => return Err(format!("a compressed buffer declares {p} bytes")),
            }
        } else {
            len as u64
        };
        if k < id_buffers {
            *ids = ids.saturating_add(size);
        }
        total = total.checked_add(size).ok_or("declared sizes overflow")?;
    }
    Ok(total)
}

/// What an encoded stream declares it decodes to, without decoding it.
pub fn declared(bytes: &[u8]) -> std::result::Result<Declared, String> {
    let mut pos = 0usize;
    let mut out = Declared::default();
    let mut ids = 0u64;
    let mut id_buffers = 0usize;
    while let Some(mut word) = le_i32(bytes, pos) {
        pos += 4;
        if word == -1 {
            word = le_i32(bytes, pos).ok_or("the stream ends inside a message header")?;
            pos += 4;
        }
        if word == 0 {
            break;
        }
        let meta_len = usize::try_from(word).map_err(|_| "a negative metadata length")?;
        let meta = pos
            .checked_add(meta_len)
            .and_then(|e| bytes.get(pos..e))
            .ok_or("the stream ends inside message metadata")?;
        let msg = arrow_ipc::root_as_message(meta).map_err(|e| format!("bad message: {e}"))?;
        pos += meta_len;
        let body_len =
            usize::try_from(msg.bodyLength()).map_err(|_| "a negative message body length")?;
        let body = pos
            .checked_add(body_len)
            .and_then(|e| bytes.get(pos..e))
            .ok_or("the stream ends inside a message body")?;
        pos += body_len;
        if let Some(schema) = msg.header_as_schema() {
            let first = schema.fields().and_then(|f| f.iter().next());
            let is_id = first.is_some_and(|f| {
                f.name() == Some(columns::ID) && f.type_type() == arrow_ipc::Type::Utf8
            });
            id_buffers = if is_id { 3 } else { 0 };
            continue;
        }
        let batch = match (
            msg.header_as_record_batch(),
            msg.header_as_dictionary_batch(),
        ) {
            (Some(b), _) => b,
            (None, Some(d)) => match d.data() {
                Some(b) => b,
                None => continue,
            },
            (None, None) => continue,
        };
        let n = buffer_bytes(batch, body, id_buffers, &mut ids)?;
        out.total = out.total.checked_add(n).ok_or("declared sizes overflow")?;
    }
    out.ids = (id_buffers > 0).then_some(ids);
    Ok(out)
}

/// Why a payload from the wire is not a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// True when it declares more than the limit (as opposed to being malformed).
    pub too_large: bool,
    /// What is wrong, in words.
    pub message: String,
    /// The record ids it holds, when they could be read safely; empty otherwise.
    pub ids: Vec<String>,
}

/// Decodes a payload from the wire, refusing one that declares more than `limit`
/// bytes of Arrow memory before anything is decompressed.
pub fn decode_bounded(bytes: &[u8], limit: usize) -> std::result::Result<RecordBatch, Undecodable> {
    let malformed = |message: String| Undecodable {
        too_large: false,
        message,
        ids: Vec::new(),
    };
    let d = declared(bytes).map_err(|e| malformed(format!("malformed Arrow IPC stream: {e}")))?;
    if d.total > limit as u64 {
        // The ids alone, if they are small enough: projection skips every other
        // column's buffers without decompressing them.
        let ids = match d.ids {
            Some(n) if n <= limit as u64 => decode_projected(bytes, Some(vec![0]))
                .ok()
                .and_then(|b| {
                    let a = b.column(0).as_any().downcast_ref::<StringArray>()?.clone();
                    Some((0..a.len()).map(|i| a.value(i).to_string()).collect())
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        return Err(Undecodable {
            too_large: true,
            message: format!(
                "the message declares {} bytes of Arrow data, over [nats] max_message_bytes = {limit}",
                d.total
            ),
            ids,
        });
    }
    decode(bytes).map_err(|e| malformed(e.to_string()))
}

/// Encodes `batch` in as many payloads as it takes for each to declare at most
/// `limit` bytes (rows split in halves until they fit; a single row over the limit
/// still goes, so that its consumer turns it into an error row). Returns each part
/// with its payload.
pub fn encode_within(
    batch: &RecordBatch,
    compression: NatsCompression,
    limit: usize,
) -> Result<Vec<(RecordBatch, Bytes)>> {
    let bytes = encode(batch, compression)?;
    let size = declared(&bytes).map_err(Error::Nats)?.total;
    if size <= limit as u64 || batch.num_rows() <= 1 {
        return Ok(vec![(batch.clone(), bytes)]);
    }
    let half = batch.num_rows() / 2;
    let mut parts = encode_within(&batch.slice(0, half), compression, limit)?;
    parts.extend(encode_within(
        &batch.slice(half, batch.num_rows() - half),
        compression,
        limit,
    )?);
    Ok(parts)
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

/// How long after a publish was sent its acknowledgement is waited for. async-nats
/// starts its own ack timer only when the future is first polled, so a window of
/// publishes awaited one after another, whose acks were all lost in a leader change,
/// would cost a full timeout each, in turn: minutes for a window of 256. Measured from
/// the send instead, they all expire together.
pub const PUBLISH_ACK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

impl Pending {
    /// Waits for the server's acknowledgement, at most until [`PUBLISH_ACK_DEADLINE`]
    /// after the send (an ack that already arrived is taken even past it); returns it
    /// with the seconds since the publish was sent.
    pub async fn wait(self) -> Result<(async_nats::jetstream::publish::PublishAck, f64)> {
        let left = PUBLISH_ACK_DEADLINE.saturating_sub(self.started.elapsed());
        let ack = tokio::time::timeout(left, self.ack)
            .await
            .map_err(|_| {
                Error::Nats("publish not acknowledged: no ack within 5 s of the send".into())
            })?
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
        headers::put(&mut h, headers::SCHEMA_VERSION, SCHEMA_VERSION);
        headers::put(&mut h, headers::STAGE, out.stage);
        headers::put(&mut h, headers::EDGE, out.edge);
        headers::put(&mut h, headers::ROWS, &rows.to_string());
        for (k, v) in &out.extra {
            headers::put(&mut h, k, v);
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
            headers::put(&mut h, headers::CLAIM, &name);
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

    /// Sends `batch` as one message, or as several when it would decode to more than
    /// `[nats] max_message_bytes` (so that its consumer accepts every part); part `i`
    /// of several has the message id `ID:i`, so redelivered inputs republish the same
    /// parts under the same ids. Returns without waiting for the acknowledgements.
    pub async fn send_batch(
        &self,
        out: &Outgoing<'_>,
        batch: &RecordBatch,
    ) -> Result<Vec<Pending>> {
        let parts = encode_within(batch, self.nats.compression, self.nats.max_message_bytes)?;
        let many = parts.len() > 1;
        let mut pending = Vec::with_capacity(parts.len());
        for (i, (part, payload)) in parts.into_iter().enumerate() {
            let mid = if many {
                format!("{}:{i}", out.message_id)
            } else {
                out.message_id.to_string()
            };
            let o = Outgoing {
                message_id: &mid,
                ..out.clone()
            };
            pending.push(self.send(&o, part.num_rows(), payload).await?);
        }
        Ok(pending)
    }

    /// The payload of a received message: inline, or fetched from the Object Store
    /// when claim-checked. Returns it with the claim's name, if any. An object larger
    /// than `[nats] max_message_bytes` is refused from its metadata, before it is read.
    pub async fn payload(
        &self,
        headers: Option<&HeaderMap>,
        inline: &Bytes,
    ) -> std::result::Result<(Bytes, Option<String>), ClaimError> {
        let claim = headers
            .and_then(|h| h.get(headers::CLAIM))
            .map(|v| v.as_str().to_string());
        let Some(name) = claim else {
            return Ok((inline.clone(), None));
        };
        let limit = self.nats.max_message_bytes;
        let obj = self
            .claims
            .get(name.as_str())
            .await
            .map_err(|e| ClaimError::Unavailable(format!("object store get {name}: {e}")))?;
        if obj.info.size > limit {
            return Err(ClaimError::TooLarge(format!(
                "claim-check object {name} holds {} bytes, over [nats] max_message_bytes = {limit}",
                obj.info.size
            )));
        }
        let mut buf = Vec::with_capacity(obj.info.size);
        // The metadata could lie; never read past the limit whatever it says.
        let mut bounded = obj.take(limit as u64 + 1);
        bounded
            .read_to_end(&mut buf)
            .await
            .map_err(|e| ClaimError::Unavailable(format!("object store read {name}: {e}")))?;
        if buf.len() > limit {
            return Err(ClaimError::TooLarge(format!(
                "claim-check object {name} is over [nats] max_message_bytes = {limit}"
            )));
        }
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

/// Why a claim-checked payload could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// The object store did not answer or the object is missing: worth a retry.
    Unavailable(String),
    /// The object is over the limit: it will be every time.
    TooLarge(String),
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::Unavailable(m) | ClaimError::TooLarge(m) => f.write_str(m),
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
        let u = decode_bounded(b"not arrow at all", 1 << 20).unwrap_err();
        assert!(!u.too_large, "{u:?}");
        assert!(decode_bounded(&[0xff; 64], 1 << 20).is_err());
    }

    /// One decoded-image row per id, with `bytes` of zero pixels each.
    fn pixels_batch(ids: &[&str], bytes: usize) -> RecordBatch {
        let mut b = crate::schema::EnvelopeBuilder::new();
        let zeros = vec![0u8; bytes];
        for id in ids {
            b.push(id, Some("a.png"), None, None, Ok(&zeros));
        }
        b.finish().unwrap()
    }

    #[test]
    fn the_declared_size_is_the_same_compressed_or_not() {
        let b = pixels_batch(&["a", "b"], 300_000);
        let z = declared(&encode(&b, NatsCompression::Zstd).unwrap()).unwrap();
        let p = declared(&encode(&b, NatsCompression::None).unwrap()).unwrap();
        assert_eq!(z.total, p.total);
        assert!(z.total >= 600_000, "{z:?}");
        assert!(z.ids.unwrap() < 100, "the id column alone is small: {z:?}");
    }

    #[test]
    fn a_zstd_bomb_is_refused_before_it_inflates_and_still_names_its_records() {
        let b = pixels_batch(&["bomb-1", "bomb-2"], 8 << 20);
        let bytes = encode(&b, NatsCompression::Zstd).unwrap();
        assert!(bytes.len() < 10_000, "16 MiB in {} bytes", bytes.len());
        let u = decode_bounded(&bytes, 1 << 20).unwrap_err();
        assert!(
            u.too_large && u.message.contains("max_message_bytes"),
            "{u:?}"
        );
        assert_eq!(u.ids, ["bomb-1", "bomb-2"]);
        assert_eq!(
            decode_bounded(&bytes, 32 << 20).unwrap(),
            b,
            "under the limit it decodes"
        );
    }

    #[test]
    fn a_forged_length_prefix_cannot_make_the_reader_allocate() {
        let b = pixels_batch(&["forged"], 777_777);
        let mut bytes = encode(&b, NatsCompression::Zstd).unwrap().to_vec();
        // The image buffer's 8-byte length prefix: the last match (its offsets buffer,
        // [0, 777777] as i32 plus zero padding, matches too, and comes first).
        let needle = 777_777i64.to_le_bytes();
        let at = bytes
            .windows(8)
            .rposition(|w| w == needle)
            .expect("the image buffer's length prefix");
        bytes[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
        let u = decode_bounded(&bytes, 64 << 20).unwrap_err();
        assert!(u.too_large, "{u:?}");
        bytes[at..at + 8].copy_from_slice(&(-7i64).to_le_bytes());
        let u = decode_bounded(&bytes, 64 << 20).unwrap_err();
        assert!(!u.too_large && u.message.contains("-7"), "{u:?}");
    }

    #[test]
    fn a_batch_over_the_limit_is_sent_in_parts_that_fit() {
        let b = pixels_batch(&["a", "b", "c", "d", "e"], 1 << 20);
        let parts = encode_within(&b, NatsCompression::Zstd, (2 << 20) + 4096).unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let rows: usize = parts.iter().map(|(p, _)| p.num_rows()).sum();
        assert_eq!(rows, 5);
        for (part, bytes) in &parts {
            assert!(declared(bytes).unwrap().total <= (2 << 20) + 4096);
            assert_eq!(&decode(bytes).unwrap(), part);
        }
        // One row over the limit still goes alone: its consumer makes it an error row.
        let one =
            encode_within(&pixels_batch(&["x"], 1 << 20), NatsCompression::Zstd, 1024).unwrap();
        assert_eq!(one.len(), 1);
    }
}
