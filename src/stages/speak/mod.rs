//! `speak`: the caption read aloud by eSpeak NG (the screen-reader voice), as WAV bytes.
//!
//! Rows without a caption (failed upstream) pass with null audio, and so do rows whose
//! request said `speak = false` (`capstream serve`'s `/v1/caption`). A synthesizer
//! failure on one caption makes that record an error row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, Float32Builder, RecordBatch, StringArray, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use serde::Deserialize;

use crate::dsp::wav::write_wav_pcm16;
use crate::error::{Error, Result};
use crate::schema::{
    append_fields, column, columns, error_columns, ok_mask, options_column, speech_fields,
    stage_input, with_columns, ErrorKind, RecordOptions, RowError,
};
use crate::speech::Speaker;
use crate::stages::Stage;

/// The stage's name.
pub const NAME: &str = "speak";

/// `[[stage]] type = "speak"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakConfig {
    /// eSpeak NG voice.
    #[serde(default = "voice")]
    pub voice: String,
    /// Words per minute.
    #[serde(default = "rate")]
    pub rate: u32,
    /// Pitch 0-99.
    #[serde(default = "pitch")]
    pub pitch: u32,
    /// Output sample rate.
    #[serde(default = "sr")]
    pub sample_rate: u32,
    /// Captions longer than this are cut (characters) before speaking.
    #[serde(default = "max_chars")]
    pub max_chars: usize,
    /// An utterance's deadline before the per-character allowance; past the whole
    /// deadline eSpeak NG is killed and the record becomes a `speech` error row.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Milliseconds added to the deadline per character of the caption.
    #[serde(default = "timeout_ms_per_char")]
    pub timeout_ms_per_char: u64,
}

fn voice() -> String {
    "en-us".into()
}
fn rate() -> u32 {
    175
}
fn pitch() -> u32 {
    50
}
fn sr() -> u32 {
    16000
}
fn max_chars() -> usize {
    500
}
fn timeout_ms() -> u64 {
    5_000
}
fn timeout_ms_per_char() -> u64 {
    20
}

impl SpeakConfig {
    fn speaker(&self) -> Speaker {
        Speaker {
            voice: self.voice.clone(),
            rate: self.rate,
            pitch: self.pitch,
            sample_rate: self.sample_rate,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            timeout_per_char: std::time::Duration::from_millis(self.timeout_ms_per_char),
            ..Default::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_chars == 0 {
            return Err(Error::Config("max_chars must be at least 1".into()));
        }
        self.speaker().validate()
    }
}

/// What the stage reads: a caption column.
pub fn input_schema() -> SchemaRef {
    stage_input(vec![Field::new(columns::CAPTION, DataType::Utf8, true)])
}

/// What the stage emits: its input plus the speech columns.
pub fn output_schema(input: &SchemaRef) -> SchemaRef {
    append_fields(input, speech_fields())
}

impl crate::stages::StageSpec for SpeakConfig {
    fn validate(&self) -> Result<()> {
        SpeakConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        input_schema()
    }
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        output_schema(input)
    }
    fn build(&self, _cx: &crate::stages::BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(Speak::new(self)))
    }
}

/// The running stage.
#[derive(Debug)]
pub struct Speak {
    speaker: Speaker,
    max_chars: usize,
}

impl Speak {
    /// Builds the stage.
    pub fn new(cfg: &SpeakConfig) -> Self {
        Speak {
            speaker: cfg.speaker(),
            max_chars: cfg.max_chars,
        }
    }
}

impl Stage for Speak {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = ok_mask(&batch)?;
        let captions = column::<StringArray>(&batch, columns::CAPTION)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let options = options_column(&batch);
        let mut wav = BinaryBuilder::new();
        let mut rate = UInt32Builder::with_capacity(n);
        let mut secs = Float32Builder::with_capacity(n);
        let mut errors: Vec<Option<RowError>> = vec![None; n];
        for i in 0..n {
            let wanted = match RecordOptions::of_row(options, i) {
                Ok(o) => o.speak != Some(false),
                Err(e) => {
                    if ok[i] {
                        errors[i] = Some(RowError::new(
                            ErrorKind::InvalidOptions,
                            format!("record {}: {e}", ids.value(i)),
                        ));
                    }
                    false
                }
            };
            if wanted && ok[i] && captions.is_valid(i) && !captions.value(i).trim().is_empty() {
                let t: String = captions.value(i).chars().take(self.max_chars).collect();
                match self.speaker.speak(&t) {
                    Ok(y) => {
                        wav.append_value(write_wav_pcm16(&y, self.speaker.sample_rate));
                        rate.append_value(self.speaker.sample_rate);
                        secs.append_value(y.len() as f32 / self.speaker.sample_rate as f32);
                        continue;
                    }
                    Err(e) => {
                        errors[i] = Some(RowError::new(
                            ErrorKind::Speech,
                            format!("record {}: {e}", ids.value(i)),
                        ));
                    }
                }
            }
            wav.append_null();
            rate.append_null();
            secs.append_null();
        }
        let [status, kind, message] = error_columns(&batch, &errors)?;
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::STATUS, status),
            (columns::ERROR_KIND, kind),
            (columns::ERROR, message),
            (columns::SPEECH_WAV, Arc::new(wav.finish())),
            (columns::SPEECH_SAMPLE_RATE, Arc::new(rate.finish())),
            (columns::SPEECH_SECONDS, Arc::new(secs.finish())),
        ];
        out.push(with_columns(
            &batch,
            output_schema(&batch.schema()),
            replace,
        )?);
        Ok(())
    }
}
