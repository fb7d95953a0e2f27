//! The `options` column: what one request asked of the stages.
//!
//! A pipeline's stages take their settings from the pipeline file. A request served by
//! `capstream serve` may override a few of them for its own record (a prompt, the beam
//! width, the token budget, whether to speak), and those overrides travel with the
//! record as a JSON object in the envelope, so that rows of different requests can share
//! one model batch. This module owns that object's keys and their parsing; it must not
//! know how a stage applies them. Records from files, Parquet or NATS carry null.

use arrow::array::{Array, RecordBatch, StringArray};
use serde::{Deserialize, Serialize};

use super::columns;

/// One record's overrides. Absent keys take the pipeline's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordOptions {
    /// `caption`: the conditional prompt ("" for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `caption`: beam search width (1 = greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_beams: Option<usize>,
    /// `caption`: tokens generated after the prompt, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// `speak`: false skips synthesis for this record (its speech columns stay null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speak: Option<bool>,
}

impl RecordOptions {
    /// True when nothing is overridden (the record then carries null).
    pub fn is_empty(&self) -> bool {
        *self == RecordOptions::default()
    }

    /// The JSON object stored in the column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain fields serialize")
    }

    /// Parses a stored object; the error says which key is wrong.
    pub fn parse(text: &str) -> std::result::Result<RecordOptions, String> {
        serde_json::from_str(text).map_err(|e| format!("options {text:?}: {e}"))
    }

    /// Row `i`'s options: default for a null value or a batch without the column.
    pub fn of_row(
        column: Option<&StringArray>,
        i: usize,
    ) -> std::result::Result<RecordOptions, String> {
        match column {
            Some(c) if c.is_valid(i) => RecordOptions::parse(c.value(i)),
            _ => Ok(RecordOptions::default()),
        }
    }
}

/// The batch's `options` column, when it has one.
pub fn options_column(batch: &RecordBatch) -> Option<&StringArray> {
    batch
        .column_by_name(columns::OPTIONS)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_and_unknown_keys_are_named() {
        let o = RecordOptions {
            prompt: Some("a picture of".into()),
            num_beams: Some(3),
            max_new_tokens: None,
            speak: Some(false),
        };
        let json = o.to_json();
        assert_eq!(
            json,
            r#"{"prompt":"a picture of","num_beams":3,"speak":false}"#
        );
        assert_eq!(RecordOptions::parse(&json).unwrap(), o);
        assert!(RecordOptions::default().is_empty());
        assert_eq!(RecordOptions::default().to_json(), "{}");
        let e = RecordOptions::parse(r#"{"beams": 2}"#).unwrap_err();
        assert!(e.contains("unknown field `beams`"), "{e}");
        let e = RecordOptions::parse(r#"{"num_beams": -1}"#).unwrap_err();
        assert!(
            e.contains("num_beams") || e.contains("invalid value"),
            "{e}"
        );
        let col = StringArray::from(vec![None, Some(r#"{"speak":true}"#)]);
        assert!(RecordOptions::of_row(Some(&col), 0).unwrap().is_empty());
        assert_eq!(
            RecordOptions::of_row(Some(&col), 1).unwrap().speak,
            Some(true)
        );
        assert!(RecordOptions::of_row(None, 5).unwrap().is_empty());
    }
}
