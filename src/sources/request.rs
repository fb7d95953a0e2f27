//! The request source: records that callers hand in one at a time (`capstream serve`'s
//! HTTP and NATS endpoints), emitted as [`Edge::Source`](crate::schema::Edge::Source)
//! batches like any other source's.
//!
//! This module owns the hand-over queue's receiving end and the batch it builds. The
//! queue is bounded by its owner, who refuses work when it is full; here a batch takes
//! whatever is waiting, up to the runtime's `max_rows` and `max_bytes`, and never waits
//! for more: gathering rows into model batches is the stage batchers' job
//! (`max_rows`, `max_delay_ms`). The source ends when every sender is gone.

use arrow::array::RecordBatch;
use bytes::Bytes;
use serde::Deserialize;

use super::Source;
use crate::error::{Error, Result};
use crate::schema::{EnvelopeBuilder, RecordOptions};

/// `[source] type = "request"`: records come from `capstream serve`'s callers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSourceConfig {}

impl RequestSourceConfig {
    /// A request source has no input path: only `capstream serve` feeds one.
    pub fn refuse_input() -> Error {
        Error::Config(
            "[source] type = \"request\" is fed by `capstream serve`, not by an input path; \
             `capstream run` needs a files or parquet source"
                .into(),
        )
    }
}

/// One record handed in by a caller.
#[derive(Debug, Clone)]
pub struct Request {
    /// The record id, unique among records in flight.
    pub id: String,
    /// Where it came from, for messages (`POST /v1/caption`, `nats capstream.caption`).
    pub uri: String,
    /// The encoded image.
    pub image: Bytes,
    /// What the caller asked of the stages.
    pub options: RecordOptions,
}

/// Emits the requests a [`flume::Receiver`] delivers.
pub struct RequestSource {
    rx: flume::Receiver<Request>,
    builder: EnvelopeBuilder,
}

impl RequestSource {
    /// A source over the receiving end of the hand-over queue.
    pub fn new(rx: flume::Receiver<Request>) -> Self {
        RequestSource {
            rx,
            builder: EnvelopeBuilder::new(),
        }
    }

    fn push(&mut self, r: &Request) {
        let options = (!r.options.is_empty()).then(|| r.options.to_json());
        self.builder.push_with_options(
            &r.id,
            Some(&r.uri),
            None,
            None,
            options.as_deref(),
            Ok(&r.image),
        );
    }
}

impl Source for RequestSource {
    fn total(&self) -> Option<u64> {
        None
    }

    /// Blocks for the first request, then takes what else is already waiting.
    fn next_batch(&mut self, max_rows: usize, max_bytes: usize) -> Result<Option<RecordBatch>> {
        let Ok(first) = self.rx.recv() else {
            return Ok(None);
        };
        self.push(&first);
        while self.builder.rows() < max_rows.max(1) && self.builder.bytes() < max_bytes {
            match self.rx.try_recv() {
                Ok(r) => self.push(&r),
                Err(_) => break,
            }
        }
        Ok(Some(self.builder.finish()?))
    }

    fn skipped(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{columns, Edge};
    use arrow::array::{Array, StringArray};

    fn request(id: &str, options: RecordOptions) -> Request {
        Request {
            id: id.into(),
            uri: "POST /v1/caption".into(),
            image: Bytes::from_static(b"\x89PNG"),
            options,
        }
    }

    #[test]
    fn a_batch_takes_what_waits_up_to_max_rows_and_ends_with_the_senders() {
        let (tx, rx) = flume::bounded(8);
        let mut src = RequestSource::new(rx);
        for i in 0..3 {
            tx.send(request(&format!("r{i}"), RecordOptions::default()))
                .unwrap();
        }
        tx.send(request(
            "r3",
            RecordOptions {
                speak: Some(false),
                ..Default::default()
            },
        ))
        .unwrap();
        let b = src.next_batch(2, usize::MAX).unwrap().unwrap();
        assert_eq!(b.schema(), Edge::Source.schema());
        assert_eq!(b.num_rows(), 2);
        let b = src.next_batch(16, usize::MAX).unwrap().unwrap();
        assert_eq!(b.num_rows(), 2, "only what was waiting");
        let ids = b
            .column_by_name(columns::ID)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.value(1), "r3");
        let opts = b
            .column_by_name(columns::OPTIONS)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(opts.is_null(0), "no options: null");
        assert_eq!(opts.value(1), r#"{"speak":false}"#);
        drop(tx);
        assert!(src.next_batch(16, usize::MAX).unwrap().is_none());
    }
}
