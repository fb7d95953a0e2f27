//! `metrics.json`: corpus scores of a run, from its committed output.
//!
//! Computed from the Parquet files rather than inside the stage so that the numbers
//! cover every committed row, including rows committed by an earlier, interrupted run
//! that `--resume` completed, and so that several score workers need not meet.

use std::path::Path;

use arrow::array::{Array, Float64Array, ListArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::error::{Error, Result};
use crate::metrics::caption::corpus::{score_corpus, CaptionItem};
use crate::metrics::caption::meteor::Meteor;
use crate::schema::{columns, string_list, SCORE_COLUMNS};
use crate::sinks::part_files;
use crate::train::log::num;

/// The file written beside the Parquet output.
pub const METRICS_FILE: &str = "metrics.json";

/// What `metrics.json` says about METEOR and tokenization.
pub const NOTES: [&str; 2] = [
    "METEOR is NLTK 3.10's meteor_score (exact, Porter stem and WordNet synonym matches), not the Java METEOR 1.5 that pycocoevalcap runs; the two differ.",
    "Captions and references are PTB-tokenized as pycocoevalcap does; BLEU, ROUGE-L and CIDEr-D follow pycocoevalcap exactly.",
];

/// The audio half of the score columns.
fn audio_columns() -> &'static [&'static str] {
    &SCORE_COLUMNS[6..]
}

/// Scores every committed row of `dir` that has a caption and references, writes
/// `dir/metrics.json` (atomically) and returns its content.
pub fn write_run_metrics(dir: &Path, meteor: Option<&Meteor>) -> Result<serde_json::Value> {
    let mut items = Vec::new();
    let (mut rows, mut errors, mut without_refs) = (0usize, 0usize, 0usize);
    let mut audio_sums = [(0.0f64, 0usize); 6];
    for path in part_files(dir)? {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let b = batch?;
            let get_str = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
            };
            let ids = get_str(columns::ID)
                .ok_or_else(|| Error::Config(format!("{}: no id column", path.display())))?;
            let status = get_str(columns::STATUS);
            let captions = get_str(columns::CAPTION);
            let refs = b
                .column_by_name(columns::REFERENCES)
                .and_then(|c| c.as_any().downcast_ref::<ListArray>().cloned());
            let audio: Vec<Option<Float64Array>> = audio_columns()
                .iter()
                .map(|n| {
                    b.column_by_name(n)
                        .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned())
                })
                .collect();
            for i in 0..b.num_rows() {
                rows += 1;
                if status.as_ref().is_some_and(|s| s.value(i) != "ok") {
                    errors += 1;
                    continue;
                }
                for (k, col) in audio.iter().enumerate() {
                    if let Some(c) = col.as_ref().filter(|c| c.is_valid(i)) {
                        audio_sums[k].0 += c.value(i);
                        audio_sums[k].1 += 1;
                    }
                }
                let mut references = refs.as_ref().map(|r| string_list(r, i)).unwrap_or_default();
                references.retain(|r| !r.trim().is_empty());
                match captions.as_ref().filter(|c| c.is_valid(i)) {
                    Some(c) if !references.is_empty() => items.push(CaptionItem {
                        id: ids.value(i).to_string(),
                        candidate: c.value(i).to_string(),
                        references,
                    }),
                    _ => without_refs += 1,
                }
            }
        }
    }
    let mut out = json!({
        "rows": rows,
        "error_rows": errors,
        "ok_rows_without_caption_or_references": without_refs,
        "items_scored": items.len(),
        "notes": NOTES,
    });
    if !items.is_empty() {
        let (corpus, per_item) = score_corpus(&items, meteor)
            .map_err(|e| Error::Config(format!("scoring {}: {e}", dir.display())))?;
        out["corpus"] = serde_json::to_value(corpus)?;
        out["per_item"] = serde_json::to_value(per_item)?;
    }
    let audio: serde_json::Map<String, serde_json::Value> = audio_columns()
        .iter()
        .zip(audio_sums)
        .filter(|(_, (_, n))| *n > 0)
        .map(|(name, (sum, n))| (name.to_string(), num(sum / n as f64)))
        .collect();
    if !audio.is_empty() {
        out["audio_rows_scored"] = json!(audio_sums.iter().map(|s| s.1).max().unwrap_or(0));
        out["audio"] = serde_json::Value::Object(audio);
    }
    let path = dir.join(METRICS_FILE);
    let tmp = dir.join(format!(".{METRICS_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_string_pretty(&out)? + "\n")
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(out)
}
