//! Reading a run's Parquet output for the report: the columns it shows, by name, each
//! optional (a run without audio stages has no audio columns).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{
    Array, BinaryArray, Float64Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::schema::{columns, string_list};
use crate::sinks::part_files;

/// What the report knows of one output row.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Record id.
    pub id: String,
    /// `ok` or `error`.
    pub status: String,
    /// Error kind of a failed row.
    pub error_kind: Option<String>,
    /// Error message of a failed row.
    pub error: Option<String>,
    /// Generated caption.
    pub caption: Option<String>,
    /// Reference captions.
    pub references: Vec<String>,
    /// The image at model size (only for the first rows asked for).
    pub thumbnail: Option<image::RgbImage>,
    /// Reference audio (WAV).
    pub reference_audio: Option<Vec<u8>>,
    /// Spoken caption (WAV).
    pub speech_wav: Option<Vec<u8>>,
    /// Neural audio (WAV).
    pub neural_wav: Option<Vec<u8>>,
    /// Every float64 score column of the row (e.g. `bleu_4`, `audio_snr_db`).
    pub scores: BTreeMap<String, f64>,
}

fn strs<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    b.column_by_name(name)?.as_any().downcast_ref()
}

fn bins<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a BinaryArray> {
    b.column_by_name(name)?.as_any().downcast_ref()
}

fn opt_str(a: Option<&StringArray>, i: usize) -> Option<String> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_string())
}

fn opt_bin(a: Option<&BinaryArray>, i: usize) -> Option<Vec<u8>> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_vec())
}

/// The intermediate columns the report draws from (thumbnails, reference-audio
/// players); `capstream eval` keeps them, and a report on output without them leaves
/// out just those parts.
pub const MEDIA_COLUMNS: [&str; 4] = [
    columns::PIXELS,
    columns::PIXELS_WIDTH,
    columns::PIXELS_HEIGHT,
    columns::REFERENCE_AUDIO,
];

/// Every row of every committed part file of `dir`, in file order; images and audio are
/// kept for the first `keep_media` rows only, so that a large run stays in memory.
pub fn read_run(dir: &Path, keep_media: usize) -> Result<Vec<RunRow>> {
    let mut out = Vec::new();
    for path in part_files(dir)? {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let b = batch?;
            let ids = strs(&b, columns::ID)
                .ok_or_else(|| Error::Config(format!("{}: no id column", path.display())))?;
            let status = strs(&b, columns::STATUS);
            let kind = strs(&b, columns::ERROR_KIND);
            let err = strs(&b, columns::ERROR);
            let caption = strs(&b, columns::CAPTION);
            let refs: Option<&ListArray> = b
                .column_by_name(columns::REFERENCES)
                .and_then(|c| c.as_any().downcast_ref());
            let pixels = bins(&b, columns::PIXELS);
            let pw: Option<&UInt32Array> = b
                .column_by_name(columns::PIXELS_WIDTH)
                .and_then(|c| c.as_any().downcast_ref());
            let ph: Option<&UInt32Array> = b
                .column_by_name(columns::PIXELS_HEIGHT)
                .and_then(|c| c.as_any().downcast_ref());
            let score_cols: Vec<(String, &Float64Array)> = b
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter_map(|(k, f)| {
                    let a = b.column(k).as_any().downcast_ref::<Float64Array>()?;
                    Some((f.name().clone(), a))
                })
                .collect();
            for i in 0..b.num_rows() {
                let media = out.len() < keep_media;
                let references = refs.map(|r| string_list(r, i)).unwrap_or_default();
                let thumbnail = match (media, pixels, pw, ph) {
                    (true, Some(p), Some(w), Some(h))
                        if p.is_valid(i) && w.is_valid(i) && h.is_valid(i) =>
                    {
                        image::RgbImage::from_raw(w.value(i), h.value(i), p.value(i).to_vec())
                    }
                    _ => None,
                };
                out.push(RunRow {
                    id: ids.value(i).to_string(),
                    status: opt_str(status, i).unwrap_or_else(|| "ok".into()),
                    error_kind: opt_str(kind, i),
                    error: opt_str(err, i),
                    caption: opt_str(caption, i),
                    references,
                    thumbnail,
                    reference_audio: media
                        .then(|| opt_bin(bins(&b, columns::REFERENCE_AUDIO), i))
                        .flatten(),
                    speech_wav: media
                        .then(|| opt_bin(bins(&b, columns::SPEECH_WAV), i))
                        .flatten(),
                    neural_wav: media
                        .then(|| opt_bin(bins(&b, columns::NEURAL_WAV), i))
                        .flatten(),
                    scores: score_cols
                        .iter()
                        .filter(|(_, a)| a.is_valid(i))
                        .map(|(n, a)| (n.clone(), a.value(i)))
                        .collect(),
                });
            }
        }
    }
    Ok(out)
}
