//! The response sink: each row goes back to the caller waiting for its record
//! (`capstream serve`), instead of into a file.
//!
//! This module owns the table of waiting callers ([`Waiters`]) and the answer a row
//! becomes ([`Answer`]). It must not know about HTTP or NATS: a caller registers an id
//! before its record enters the pipeline and gets one [`Answer`] back. A row whose
//! caller has gone (it gave up at its deadline) is counted, not kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, BinaryArray, Float32Array, Int64Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use dashmap::DashMap;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{Commit, Sink};
use crate::error::{Error, Result};
use crate::schema::{column, columns};

/// `[sink] type = "response"`: rows answer `capstream serve`'s callers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSinkConfig {}

impl ResponseSinkConfig {
    /// A response sink has no output folder: only `capstream serve` opens one.
    pub fn refuse_output() -> Error {
        Error::Config(
            "[sink] type = \"response\" answers `capstream serve`'s callers and writes no \
             folder; `capstream run` needs a parquet sink"
                .into(),
        )
    }
}

/// What one row says back to its caller: the envelope and whichever result columns
/// the pipeline made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The record id.
    pub id: String,
    /// `"ok"` or `"error"`.
    pub status: String,
    /// Stable error category, when failed.
    pub error_kind: Option<String>,
    /// The message naming the record, when failed.
    pub error: Option<String>,
    /// The caption.
    pub caption: Option<String>,
    /// The caption's token ids, as transformers' `generate` returns them.
    pub token_ids: Option<Vec<i64>>,
    /// The checkpoint that captioned it.
    pub model: Option<String>,
    /// The spoken caption, PCM16 WAV bytes.
    pub speech_wav: Option<Vec<u8>>,
    /// Its sample rate.
    pub speech_sample_rate: Option<u32>,
    /// Its length in seconds.
    pub speech_seconds: Option<f32>,
    /// When the sink answered.
    pub answered: Option<Instant>,
}

/// Callers waiting for their record's row, by record id.
#[derive(Debug, Clone, Default)]
pub struct Waiters {
    waiting: Arc<DashMap<String, oneshot::Sender<Answer>>>,
    unclaimed: Arc<AtomicU64>,
}

impl Waiters {
    /// Registers `id` before its record is handed in; the receiver gets its row.
    /// `None` when `id` is already waiting (ids in flight are unique).
    pub fn wait(&self, id: &str) -> Option<oneshot::Receiver<Answer>> {
        let (tx, rx) = oneshot::channel();
        match self.waiting.entry(id.to_string()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(v) => {
                v.insert(tx);
                Some(rx)
            }
        }
    }

    /// Withdraws `id` (its caller stopped waiting, or it never got in).
    pub fn forget(&self, id: &str) {
        self.waiting.remove(id);
    }

    /// Drops every waiting caller: each gets no row (the pipeline has stopped).
    pub fn clear(&self) {
        self.waiting.clear();
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Rows that arrived after their caller had gone.
    pub fn unclaimed(&self) -> u64 {
        self.unclaimed.load(Ordering::Relaxed)
    }

    fn answer(&self, a: Answer) {
        match self.waiting.remove(&a.id) {
            Some((_, tx)) => {
                if tx.send(a).is_err() {
                    self.unclaimed.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.unclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Answers each row's caller.
#[derive(Debug)]
pub struct ResponseSink {
    waiters: Waiters,
}

impl ResponseSink {
    /// A sink answering the callers registered in `waiters`.
    pub fn new(waiters: Waiters) -> Self {
        ResponseSink { waiters }
    }
}

fn opt_str(c: Option<&StringArray>, i: usize) -> Option<String> {
    c.filter(|c| c.is_valid(i)).map(|c| c.value(i).to_string())
}

fn typed<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
}

/// Row `i` of `batch` as an answer.
pub fn answer_of(batch: &RecordBatch, i: usize) -> Result<Answer> {
    let ids = column::<StringArray>(batch, columns::ID)?;
    let status = column::<StringArray>(batch, columns::STATUS)?;
    let token_ids = typed::<ListArray>(batch, columns::CAPTION_TOKEN_IDS)
        .filter(|l| l.is_valid(i))
        .and_then(|l| {
            l.value(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.values().to_vec())
        });
    let wav = typed::<BinaryArray>(batch, columns::SPEECH_WAV);
    let rate = typed::<UInt32Array>(batch, columns::SPEECH_SAMPLE_RATE);
    let secs = typed::<Float32Array>(batch, columns::SPEECH_SECONDS);
    Ok(Answer {
        id: ids.value(i).to_string(),
        status: status.value(i).to_string(),
        error_kind: opt_str(typed(batch, columns::ERROR_KIND), i),
        error: opt_str(typed(batch, columns::ERROR), i),
        caption: opt_str(typed(batch, columns::CAPTION), i),
        token_ids,
        model: opt_str(typed(batch, columns::CAPTION_MODEL), i),
        speech_wav: wav.filter(|w| w.is_valid(i)).map(|w| w.value(i).to_vec()),
        speech_sample_rate: rate.filter(|r| r.is_valid(i)).map(|r| r.value(i)),
        speech_seconds: secs.filter(|s| s.is_valid(i)).map(|s| s.value(i)),
        answered: Some(Instant::now()),
    })
}

impl Sink for ResponseSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<Vec<Commit>> {
        for i in 0..batch.num_rows() {
            self.waiters.answer(answer_of(batch, i)?);
        }
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<Commit>> {
        Ok(Vec::new())
    }

    fn due(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EnvelopeBuilder, ErrorKind, RowError};

    #[test]
    fn each_row_reaches_its_caller_and_late_rows_are_counted() {
        let waiters = Waiters::default();
        let a = waiters.wait("a").unwrap();
        let b = waiters.wait("b").unwrap();
        assert!(waiters.wait("a").is_none(), "an id in flight is unique");
        waiters.forget("b");
        drop(b);
        let mut env = EnvelopeBuilder::new();
        env.push("a", None, None, None, Ok(b"x"));
        env.push(
            "b",
            None,
            None,
            None,
            Err(RowError::new(ErrorKind::Decode, "record b: bad")),
        );
        let batch = env.finish().unwrap();
        let mut sink = ResponseSink::new(waiters.clone());
        assert!(sink.write(&batch).unwrap().is_empty());
        let got = a.blocking_recv().unwrap();
        assert_eq!((got.id.as_str(), got.status.as_str()), ("a", "ok"));
        assert_eq!(got.caption, None, "no caption column: none");
        assert_eq!(waiters.unclaimed(), 1, "b had stopped waiting");
        assert!(waiters.is_empty());
        let b = answer_of(&batch, 1).unwrap();
        assert_eq!(b.error_kind.as_deref(), Some("decode"));
        assert_eq!(b.error.as_deref(), Some("record b: bad"));
    }
}
