//! Column names, edge schemas and the record envelope.
//!
//! This module owns every Arrow schema that travels between stages and the names of
//! their columns. The JSON files under `schemas/` are the data form of [`Edge::schema`];
//! a test keeps the two equal. It must not know how any stage computes its columns.
//!
//! Every record carries the *envelope*: a stable `id`, its `uri`, the references that
//! came with it, and `status` / `error_kind` / `error`. A record that fails in a stage
//! keeps travelling with `status = "error"`, so every input ends as an output row.

mod envelope;
mod json;
mod options;

pub use envelope::{
    column, error_columns, ok_mask, string_list, with_columns, EnvelopeBuilder, ErrorKind,
    RowError, Status,
};
pub use json::{schema_from_json, schema_to_json};
pub use options::{options_column, RecordOptions};

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// Column names. Stages and sinks refer to columns only through these constants.
pub mod columns {
    /// Stable record id: given by the source or a content hash.
    pub const ID: &str = "id";
    /// Where the record came from (a path, or `parquet-file#row`).
    pub const URI: &str = "uri";
    /// Encoded image bytes as read by the source.
    pub const IMAGE: &str = "image";
    /// Reference captions that came with the input, if any.
    pub const REFERENCES: &str = "references";
    /// Reference audio (encoded WAV bytes) that came with the input, if any.
    pub const REFERENCE_AUDIO: &str = "reference_audio";
    /// What one request asked of the stages (a JSON object, [`RecordOptions`](super::RecordOptions));
    /// null for records read from files, Parquet or NATS, which take the pipeline's settings.
    pub const OPTIONS: &str = "options";
    /// `"ok"` or `"error"`.
    pub const STATUS: &str = "status";
    /// Stable snake_case error category, null when ok.
    pub const ERROR_KIND: &str = "error_kind";
    /// Human message naming the record and what was wrong, null when ok.
    pub const ERROR: &str = "error";
    /// Width of the decoded image before resizing.
    pub const WIDTH: &str = "width";
    /// Height of the decoded image before resizing.
    pub const HEIGHT: &str = "height";
    /// The image at model size: 8-bit RGB, row-major HWC.
    pub const PIXELS: &str = "pixels";
    /// Width of `pixels`.
    pub const PIXELS_WIDTH: &str = "pixels_width";
    /// Height of `pixels`.
    pub const PIXELS_HEIGHT: &str = "pixels_height";
    /// The generated caption (prompt kept unless the stage strips it).
    pub const CAPTION: &str = "caption";
    /// Exactly what transformers' `generate` returns for the image.
    pub const CAPTION_TOKEN_IDS: &str = "caption_token_ids";
    /// Which checkpoint captioned the row.
    pub const CAPTION_MODEL: &str = "caption_model";
    /// The pooled image embedding of the vision tower.
    pub const IMAGE_EMBEDDING: &str = "image_embedding";
    /// Log-mel of the reference audio, `[n_mels][frames]` row-major.
    pub const REFERENCE_MEL: &str = "reference_mel";
    /// Frames of `reference_mel`.
    pub const REFERENCE_MEL_FRAMES: &str = "reference_mel_frames";
    /// The caption spoken by eSpeak NG, 16-bit PCM WAV bytes.
    pub const SPEECH_WAV: &str = "speech_wav";
    /// Sample rate of `speech_wav`.
    pub const SPEECH_SAMPLE_RATE: &str = "speech_sample_rate";
    /// Duration of `speech_wav` in seconds.
    pub const SPEECH_SECONDS: &str = "speech_seconds";
    /// Neural audio: generated log-mel in dB, `[n_mels][frames]` row-major.
    pub const NEURAL_MEL: &str = "neural_mel";
    /// Frames of `neural_mel`.
    pub const NEURAL_MEL_FRAMES: &str = "neural_mel_frames";
    /// Neural audio: the vocoded waveform as a PCM16 WAV file.
    pub const NEURAL_WAV: &str = "neural_wav";
    /// Sample rate of `neural_wav`.
    pub const NEURAL_SAMPLE_RATE: &str = "neural_sample_rate";
    /// Per-row pycocoevalcap BLEU-1 of `caption` against `references`.
    pub const BLEU_1: &str = "bleu_1";
    /// BLEU-2.
    pub const BLEU_2: &str = "bleu_2";
    /// BLEU-3.
    pub const BLEU_3: &str = "bleu_3";
    /// BLEU-4.
    pub const BLEU_4: &str = "bleu_4";
    /// Per-row NLTK METEOR.
    pub const METEOR: &str = "meteor";
    /// Per-row ROUGE-L.
    pub const ROUGE_L: &str = "rouge_l";
    /// Generated audio against `reference_audio`: mean squared error.
    pub const AUDIO_MSE: &str = "audio_mse";
    /// Mean absolute error.
    pub const AUDIO_MAE: &str = "audio_mae";
    /// Signal-to-noise ratio, dB.
    pub const AUDIO_SNR_DB: &str = "audio_snr_db";
    /// Spectral convergence.
    pub const AUDIO_SPECTRAL_CONVERGENCE: &str = "audio_spectral_convergence";
    /// Log-spectral distance, dB.
    pub const AUDIO_LSD_DB: &str = "audio_lsd_db";
    /// Mel-cepstral distortion, dB.
    pub const AUDIO_MCD: &str = "audio_mcd";
}

/// Columns that hold working data rather than results: the encoded input, the
/// decoded pixels, the reference audio and the log-mels. `[sink] columns = "results"`
/// (the default) leaves them out of the output.
pub const INTERMEDIATE_COLUMNS: [&str; 10] = [
    columns::IMAGE,
    columns::REFERENCE_AUDIO,
    columns::OPTIONS,
    columns::PIXELS,
    columns::PIXELS_WIDTH,
    columns::PIXELS_HEIGHT,
    columns::REFERENCE_MEL,
    columns::REFERENCE_MEL_FRAMES,
    columns::NEURAL_MEL,
    columns::NEURAL_MEL_FRAMES,
];

/// The name of the result schema: the full output less [`INTERMEDIATE_COLUMNS`]
/// (`schemas/results.json`, `capstream schema results`).
pub const RESULTS: &str = "results";

/// `schema` less the intermediate columns, labelled [`RESULTS`].
pub fn results_of(schema: &Schema) -> SchemaRef {
    let mut metadata = schema.metadata().clone();
    metadata.insert(META_EDGE.to_string(), RESULTS.to_string());
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .filter(|f| !INTERMEDIATE_COLUMNS.contains(&f.name().as_str()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
        metadata,
    ))
}

/// Schema-level metadata key holding the schema version.
pub const META_SCHEMA_VERSION: &str = "capstream.schema_version";
/// Schema-level metadata key holding the edge name.
pub const META_EDGE: &str = "capstream.edge";
/// The version of the edge schemas defined here.
pub const SCHEMA_VERSION: &str = "1";

/// A named edge of the canonical pipeline: the schema of the batches crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// What a source emits: envelope plus encoded image bytes.
    Source,
    /// What `decode_image` emits: envelope plus the image at model size.
    Decoded,
    /// What `caption` emits: the decoded row plus caption, token ids and embedding.
    Captioned,
    /// What `features` adds after `caption`: the reference audio's log-mel.
    Featured,
    /// What `speak` adds after `features`: the spoken caption.
    Spoken,
    /// After `neural_audio`.
    Voiced,
    /// After `score`: the full output of the backfill pipeline.
    Scored,
}

impl Edge {
    /// Every edge, in pipeline order.
    pub const ALL: [Edge; 7] = [
        Edge::Source,
        Edge::Decoded,
        Edge::Captioned,
        Edge::Featured,
        Edge::Spoken,
        Edge::Voiced,
        Edge::Scored,
    ];

    /// The edge's stable name (also its file name under `schemas/`).
    pub fn name(self) -> &'static str {
        match self {
            Edge::Source => "source",
            Edge::Decoded => "decoded",
            Edge::Captioned => "captioned",
            Edge::Featured => "featured",
            Edge::Spoken => "spoken",
            Edge::Voiced => "voiced",
            Edge::Scored => "scored",
        }
    }

    /// Looks an edge up by name.
    pub fn from_name(name: &str) -> Result<Edge> {
        Edge::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| Error::UnknownEdge(name.to_string()))
    }

    /// The Arrow schema of the edge, with version and edge name in its metadata.
    pub fn schema(self) -> SchemaRef {
        let fields = match self {
            Edge::Source => source_fields(),
            Edge::Decoded => decoded_fields(),
            Edge::Captioned => captioned_fields(),
            Edge::Featured => {
                let mut f = captioned_fields();
                f.extend(feature_fields());
                f
            }
            Edge::Spoken => {
                let mut f = captioned_fields();
                f.extend(feature_fields());
                f.extend(speech_fields());
                f
            }
            Edge::Voiced => {
                let mut f = captioned_fields();
                f.extend(feature_fields());
                f.extend(speech_fields());
                f.extend(neural_audio_fields());
                f
            }
            Edge::Scored => {
                let mut f = captioned_fields();
                f.extend(feature_fields());
                f.extend(speech_fields());
                f.extend(neural_audio_fields());
                f.extend(score_fields());
                f
            }
        };
        with_edge_metadata(fields, self)
    }
}

fn with_edge_metadata(fields: Vec<Field>, edge: Edge) -> SchemaRef {
    let metadata = HashMap::from([
        (META_SCHEMA_VERSION.to_string(), SCHEMA_VERSION.to_string()),
        (META_EDGE.to_string(), edge.name().to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Re-labels a schema as belonging to `edge`, keeping its fields.
pub fn relabel(schema: &Schema, edge: Edge) -> SchemaRef {
    with_edge_metadata(
        schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
        edge,
    )
}

/// The list-of-strings type used for reference captions.
pub fn references_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn envelope_head() -> Vec<Field> {
    vec![
        Field::new(columns::ID, DataType::Utf8, false),
        Field::new(columns::URI, DataType::Utf8, true),
        Field::new(columns::REFERENCES, references_type(), true),
        Field::new(columns::REFERENCE_AUDIO, DataType::Binary, true),
        Field::new(columns::OPTIONS, DataType::Utf8, true),
    ]
}

/// A stage's input schema: `id`, the columns it reads, and the status columns every
/// stage needs to pass failed records through.
pub fn stage_input(reads: Vec<Field>) -> SchemaRef {
    let mut f = vec![Field::new(columns::ID, DataType::Utf8, false)];
    f.extend(reads);
    f.extend(envelope_status());
    Arc::new(Schema::new(f))
}

fn envelope_status() -> Vec<Field> {
    vec![
        Field::new(columns::STATUS, DataType::Utf8, false),
        Field::new(columns::ERROR_KIND, DataType::Utf8, true),
        Field::new(columns::ERROR, DataType::Utf8, true),
    ]
}

fn source_fields() -> Vec<Field> {
    let mut f = envelope_head();
    f.push(Field::new(columns::IMAGE, DataType::Binary, true));
    f.extend(envelope_status());
    f
}

fn decoded_fields() -> Vec<Field> {
    let mut f = envelope_head();
    f.extend(envelope_status());
    f.extend([
        Field::new(columns::WIDTH, DataType::UInt32, true),
        Field::new(columns::HEIGHT, DataType::UInt32, true),
        Field::new(columns::PIXELS, DataType::Binary, true),
        Field::new(columns::PIXELS_WIDTH, DataType::UInt32, true),
        Field::new(columns::PIXELS_HEIGHT, DataType::UInt32, true),
    ]);
    f
}

fn captioned_fields() -> Vec<Field> {
    let mut f = decoded_fields();
    f.extend([
        Field::new(columns::CAPTION, DataType::Utf8, true),
        Field::new(
            columns::CAPTION_TOKEN_IDS,
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
        Field::new(columns::CAPTION_MODEL, DataType::Utf8, true),
        Field::new(
            columns::IMAGE_EMBEDDING,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ]);
    f
}

/// Columns the `features` stage appends.
pub fn feature_fields() -> Vec<Field> {
    vec![
        Field::new(
            columns::REFERENCE_MEL,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
        Field::new(columns::REFERENCE_MEL_FRAMES, DataType::UInt32, true),
    ]
}

/// Columns the `speak` stage appends.
pub fn speech_fields() -> Vec<Field> {
    vec![
        Field::new(columns::SPEECH_WAV, DataType::Binary, true),
        Field::new(columns::SPEECH_SAMPLE_RATE, DataType::UInt32, true),
        Field::new(columns::SPEECH_SECONDS, DataType::Float32, true),
    ]
}

/// The columns `score` adds, in order: six caption scores, then six audio scores.
pub const SCORE_COLUMNS: [&str; 12] = [
    columns::BLEU_1,
    columns::BLEU_2,
    columns::BLEU_3,
    columns::BLEU_4,
    columns::METEOR,
    columns::ROUGE_L,
    columns::AUDIO_MSE,
    columns::AUDIO_MAE,
    columns::AUDIO_SNR_DB,
    columns::AUDIO_SPECTRAL_CONVERGENCE,
    columns::AUDIO_LSD_DB,
    columns::AUDIO_MCD,
];

/// The columns `score` adds (float64, null where there was nothing to score).
pub fn score_fields() -> Vec<Field> {
    SCORE_COLUMNS
        .into_iter()
        .map(|n| Field::new(n, DataType::Float64, true))
        .collect()
}

/// The columns `neural_audio` adds.
pub fn neural_audio_fields() -> Vec<Field> {
    vec![
        Field::new(
            columns::NEURAL_MEL,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
        Field::new(columns::NEURAL_MEL_FRAMES, DataType::UInt32, true),
        Field::new(columns::NEURAL_WAV, DataType::Binary, true),
        Field::new(columns::NEURAL_SAMPLE_RATE, DataType::UInt32, true),
    ]
}

/// `input` with `fields` appended (replacing same-named ones), labelled `edge` when the
/// result is that canonical edge and unlabelled otherwise.
pub fn append_fields(input: &Schema, fields: Vec<Field>) -> SchemaRef {
    let mut out: Vec<Field> = input
        .fields()
        .iter()
        .filter(|f| !fields.iter().any(|n| n.name() == f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    out.extend(fields);
    for edge in Edge::ALL {
        let e = edge.schema();
        if e.fields().iter().map(|f| f.as_ref()).eq(out.iter()) {
            return e;
        }
    }
    let mut metadata = input.metadata().clone();
    metadata.remove(META_EDGE);
    Arc::new(Schema::new_with_metadata(out, metadata))
}

/// Checks that `actual` has every field of `required` with the same type and a
/// compatible nullability; returns the first difference in words.
pub fn check_compatible(required: &Schema, actual: &Schema) -> std::result::Result<(), String> {
    for want in required.fields() {
        match actual.field_with_name(want.name()) {
            Err(_) => return Err(format!("missing column {:?}", want.name())),
            Ok(have) if have.data_type() != want.data_type() => {
                return Err(format!(
                    "column {:?} is {} but {} is required",
                    want.name(),
                    have.data_type(),
                    want.data_type()
                ))
            }
            Ok(have) if have.is_nullable() && !want.is_nullable() => {
                return Err(format!(
                    "column {:?} is nullable but must not be",
                    want.name()
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_round_trip_by_name() {
        for e in Edge::ALL {
            assert_eq!(Edge::from_name(e.name()).unwrap(), e);
        }
        assert!(Edge::from_name("nope").is_err());
    }

    #[test]
    fn compatibility_names_the_column() {
        let src = Edge::Source.schema();
        let dec = Edge::Decoded.schema();
        let err = check_compatible(&dec, &src).unwrap_err();
        assert!(err.contains("\"width\""), "{err}");
        check_compatible(&src, &src).unwrap();
    }
}
