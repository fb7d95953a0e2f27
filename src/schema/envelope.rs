//! Row status, error categories and batch assembly helpers shared by sources and stages.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, ListBuilder, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::SchemaRef;

use super::{columns, Edge};
use crate::error::{Error, Result};

/// The outcome of a record so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every stage so far succeeded.
    Ok,
    /// A stage failed; `error_kind` and `error` say why.
    Error,
}

impl Status {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// Stable categories of record failure, stored in `error_kind` and used as the
/// `reason` label of the failure counters. Never rename a variant's string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input could not be read (permissions, vanished file, I/O error).
    Io,
    /// The input has no bytes.
    Empty,
    /// The record carries no image (null image column).
    MissingImage,
    /// Encoded bytes, pixel count or duration above the configured limit.
    TooLarge,
    /// The bytes are not an image format capstream decodes.
    UnsupportedFormat,
    /// The decoder rejected the bytes (truncated or corrupt data).
    Decode,
    /// A stage panicked on this record; the stream went on.
    Internal,
    /// Reference audio that is not a readable WAV (or has no samples).
    InvalidAudio,
    /// The speech synthesizer failed on this record's text.
    Speech,
    /// A stage did not finish the record's batch within its deadline (distributed
    /// mode: on every delivery).
    Timeout,
    /// The record's own id is unusable: too long, or holding control characters.
    /// The row is keyed by a hash of the raw id instead.
    InvalidId,
    /// The record's options (a request's prompt, beams or token budget) cannot be
    /// applied, e.g. a prompt and token budget longer than the model's positions.
    InvalidOptions,
}

impl ErrorKind {
    /// Every kind, for documentation and metric pre-registration.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Io,
        ErrorKind::Empty,
        ErrorKind::MissingImage,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedFormat,
        ErrorKind::Decode,
        ErrorKind::Internal,
        ErrorKind::InvalidAudio,
        ErrorKind::Speech,
        ErrorKind::Timeout,
        ErrorKind::InvalidId,
        ErrorKind::InvalidOptions,
    ];

    /// The value stored in `error_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Empty => "empty",
            ErrorKind::MissingImage => "missing_image",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::UnsupportedFormat => "unsupported_format",
            ErrorKind::Decode => "decode",
            ErrorKind::Internal => "internal",
            ErrorKind::InvalidAudio => "invalid_audio",
            ErrorKind::Speech => "speech",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidId => "invalid_id",
            ErrorKind::InvalidOptions => "invalid_options",
        }
    }
}

/// Why one record failed: a category and a message that names the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The category.
    pub kind: ErrorKind,
    /// A sentence naming the record and what was wrong with it.
    pub message: String,
}

impl RowError {
    /// A new row error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RowError {
            kind,
            message: message.into(),
        }
    }
}

/// The column `name` of `batch` as array type `T`; a missing or mistyped column is an
/// error naming it (schemas are checked at build, so this means a runtime bug).
pub fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Error::Runtime(format!(
                "batch has no column {name:?} of type {}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("?")
            ))
        })
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column::<StringArray>(batch, name)
}

/// `true` for each row whose status is ok.
pub fn ok_mask(batch: &RecordBatch) -> Result<Vec<bool>> {
    let status = string_column(batch, columns::STATUS)?;
    Ok((0..batch.num_rows())
        .map(|i| status.is_valid(i) && status.value(i) == Status::Ok.as_str())
        .collect())
}

/// The `status`, `error_kind` and `error` arrays after a stage: rows that already
/// failed keep their error, and `new_errors[i]` marks row `i` as failed here.
pub fn error_columns(
    batch: &RecordBatch,
    new_errors: &[Option<RowError>],
) -> Result<[ArrayRef; 3]> {
    let status = string_column(batch, columns::STATUS)?;
    let kind = string_column(batch, columns::ERROR_KIND)?;
    let message = string_column(batch, columns::ERROR)?;
    let n = batch.num_rows();
    if new_errors.len() != n {
        return Err(Error::Runtime(format!(
            "{} row outcomes for {} rows",
            new_errors.len(),
            n
        )));
    }
    let mut s = StringBuilder::with_capacity(n, n * 5);
    let mut k = StringBuilder::new();
    let mut m = StringBuilder::new();
    for (i, e) in new_errors.iter().enumerate() {
        match e {
            Some(e) => {
                s.append_value(Status::Error.as_str());
                k.append_value(e.kind.as_str());
                m.append_value(&e.message);
            }
            None => {
                s.append_value(status.value(i));
                k.append_option(kind.is_valid(i).then(|| kind.value(i)));
                m.append_option(message.is_valid(i).then(|| message.value(i)));
            }
        }
    }
    Ok([
        Arc::new(s.finish()),
        Arc::new(k.finish()),
        Arc::new(m.finish()),
    ])
}

/// Assembles a batch of `schema`: each column comes from `replace` when named there,
/// otherwise from `batch` by name. This is how a stage appends or replaces columns
/// while every envelope column passes through untouched.
pub fn with_columns(
    batch: &RecordBatch,
    schema: SchemaRef,
    replace: Vec<(&str, ArrayRef)>,
) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array = match replace.iter().find(|(name, _)| *name == field.name()) {
            Some((_, a)) => a.clone(),
            None => batch.column_by_name(field.name()).cloned().ok_or_else(|| {
                Error::Runtime(format!("batch has no column {:?} to carry", field.name()))
            })?,
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// The non-null strings of row `i` of a list-of-strings column (`references`,
/// `captions`): empty for a null row or a list of another item type.
pub fn string_list(list: &arrow::array::ListArray, i: usize) -> Vec<String> {
    if list.is_null(i) {
        return Vec::new();
    }
    let items = list.value(i);
    match items.as_any().downcast_ref::<StringArray>() {
        Some(s) => (0..s.len())
            .filter(|&j| s.is_valid(j))
            .map(|j| s.value(j).to_string())
            .collect(),
        None => Vec::new(),
    }
}

/// Row-by-row builder of [`Edge::Source`] batches, used by every source.
pub struct EnvelopeBuilder {
    id: StringBuilder,
    uri: StringBuilder,
    references: ListBuilder<StringBuilder>,
    reference_audio: BinaryBuilder,
    options: StringBuilder,
    image: BinaryBuilder,
    status: StringBuilder,
    error_kind: StringBuilder,
    error: StringBuilder,
    rows: usize,
    bytes: usize,
}

impl Default for EnvelopeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvelopeBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        EnvelopeBuilder {
            id: StringBuilder::new(),
            uri: StringBuilder::new(),
            references: ListBuilder::new(StringBuilder::new()),
            reference_audio: BinaryBuilder::new(),
            options: StringBuilder::new(),
            image: BinaryBuilder::new(),
            status: StringBuilder::new(),
            error_kind: StringBuilder::new(),
            error: StringBuilder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Appends one record. `outcome` is the image bytes or why there are none.
    pub fn push(
        &mut self,
        id: &str,
        uri: Option<&str>,
        references: Option<&[String]>,
        reference_audio: Option<&[u8]>,
        outcome: std::result::Result<&[u8], RowError>,
    ) {
        self.push_with_options(id, uri, references, reference_audio, None, outcome)
    }

    /// [`EnvelopeBuilder::push`] for a record that carries its own options (a
    /// request's, as JSON: [`RecordOptions::to_json`](super::RecordOptions::to_json)).
    pub fn push_with_options(
        &mut self,
        id: &str,
        uri: Option<&str>,
        references: Option<&[String]>,
        reference_audio: Option<&[u8]>,
        options: Option<&str>,
        outcome: std::result::Result<&[u8], RowError>,
    ) {
        self.id.append_value(id);
        self.options.append_option(options);
        self.uri.append_option(uri);
        match references {
            Some(refs) => {
                for r in refs {
                    self.references.values().append_value(r);
                }
                self.references.append(true);
            }
            None => self.references.append(false),
        }
        self.reference_audio.append_option(reference_audio);
        self.bytes += reference_audio.map_or(0, |a| a.len());
        match outcome {
            Ok(bytes) => {
                self.bytes += bytes.len();
                self.image.append_value(bytes);
                self.status.append_value(Status::Ok.as_str());
                self.error_kind.append_null();
                self.error.append_null();
            }
            Err(e) => {
                self.image.append_null();
                self.status.append_value(Status::Error.as_str());
                self.error_kind.append_value(e.kind.as_str());
                self.error.append_value(&e.message);
            }
        }
        self.rows += 1;
    }

    /// Rows appended since the last `finish`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Payload bytes appended since the last `finish`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Builds the batch and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let schema = Edge::Source.schema();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.uri.finish()),
            Arc::new(self.references.finish()),
            Arc::new(self.reference_audio.finish()),
            Arc::new(self.options.finish()),
            Arc::new(self.image.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.error_kind.finish()),
            Arc::new(self.error.finish()),
        ];
        self.rows = 0;
        self.bytes = 0;
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_kept_and_added() {
        let mut b = EnvelopeBuilder::new();
        b.push("a", Some("a.png"), None, None, Ok(b"xx"));
        b.push(
            "b",
            None,
            Some(&["a cat".to_string()]),
            None,
            Err(RowError::new(ErrorKind::Empty, "record b: no bytes")),
        );
        b.push("c", None, None, None, Ok(b"yy"));
        let batch = b.finish().unwrap();
        assert_eq!(ok_mask(&batch).unwrap(), vec![true, false, true]);
        let [s, k, m] = error_columns(
            &batch,
            &[
                None,
                None,
                Some(RowError::new(ErrorKind::Decode, "record c: bad")),
            ],
        )
        .unwrap();
        let s = s.as_any().downcast_ref::<StringArray>().unwrap();
        let k = k.as_any().downcast_ref::<StringArray>().unwrap();
        let m = m.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            (0..3).map(|i| s.value(i)).collect::<Vec<_>>(),
            ["ok", "error", "error"]
        );
        assert!(k.is_null(0));
        assert_eq!(k.value(1), "empty");
        assert_eq!(k.value(2), "decode");
        assert_eq!(m.value(2), "record c: bad");
    }
}
