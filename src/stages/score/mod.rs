//! `score`: per-record metrics where references exist.
//!
//! Caption scores per row (pycocoevalcap BLEU-1..4 and ROUGE-L, NLTK METEOR) from the
//! `caption` and `references` columns; audio scores per row (MSE, MAE, SNR, spectral
//! convergence, LSD, MCD) of a generated audio column against `reference_audio`.
//! CIDEr-D needs the whole corpus (document frequencies), so it is not a row value:
//! [`write_run_metrics`] computes the corpus values from the committed output at the
//! end of a run and writes `metrics.json` beside the Parquet files.

mod run_metrics;

pub use run_metrics::{write_run_metrics, METRICS_FILE, NOTES};

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float64Builder, ListArray, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use serde::Deserialize;

use crate::dsp::resample::{resample, Quality};
use crate::dsp::wav::read_wav;
use crate::error::{Error, Result};
use crate::metrics::audio::{score_audio, AudioMetricParams, PowerFloor};
use crate::metrics::caption::corpus::score_row;
use crate::metrics::caption::meteor::Meteor;
use crate::metrics::caption::wordnet::WordNet;
use crate::schema::{
    append_fields, column, columns, error_columns, ok_mask, references_type, score_fields,
    stage_input, string_list, with_columns, ErrorKind, RowError, SCORE_COLUMNS,
};
use crate::stages::Stage;

/// The stage's name.
pub const NAME: &str = "score";

/// Which generated audio is compared with `reference_audio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoredAudio {
    /// `neural_wav` (the generator and vocoder).
    Neural,
    /// `speech_wav` (eSpeak NG).
    Speech,
    /// No audio scores.
    None,
}

impl ScoredAudio {
    fn column(self) -> Option<&'static str> {
        match self {
            ScoredAudio::Neural => Some(columns::NEURAL_WAV),
            ScoredAudio::Speech => Some(columns::SPEECH_WAV),
            ScoredAudio::None => None,
        }
    }
}

/// `[[stage]] type = "score"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Compute NLTK METEOR (needs WordNet).
    #[serde(default = "yes")]
    pub meteor: bool,
    /// WordNet 3.0 dict folder (Debian `wordnet-base`).
    #[serde(default = "wordnet_dir")]
    pub wordnet_dir: PathBuf,
    /// Generated audio to score: `neural`, `speech` or `none`.
    #[serde(default = "neural")]
    pub audio: ScoredAudio,
    /// STFT size of the spectral audio metrics.
    #[serde(default = "n_fft")]
    pub n_fft: usize,
    /// STFT hop.
    #[serde(default = "hop")]
    pub hop: usize,
    /// Mel bands of the MCD.
    #[serde(default = "n_mels")]
    pub n_mels: usize,
    /// Cepstral coefficients of the MCD (c1..=cN).
    #[serde(default = "n_mcd")]
    pub n_mcd: usize,
    /// LSD and MCD floor both spectra this many dB below the reference's peak, so that
    /// silent padding does not dominate them (`metrics::audio::PowerFloor`). Unset:
    /// the pinned 1e-10 absolute floor.
    #[serde(default)]
    pub power_floor_db: Option<f64>,
    /// Longer reference audio makes the record a `too_large` error row.
    #[serde(default = "max_seconds")]
    pub max_audio_seconds: f64,
    /// Reference audio with more channels is an `invalid_audio` error row.
    #[serde(default = "super::audio_limits::max_audio_channels")]
    pub max_audio_channels: u16,
    /// Reference audio below this sample rate (Hz) is an `invalid_audio` error row.
    #[serde(default = "super::audio_limits::min_audio_rate")]
    pub min_audio_rate: u32,
    /// Reference audio above this sample rate (Hz) is an `invalid_audio` error row: a
    /// crafted header must not size a resampler's output.
    #[serde(default = "super::audio_limits::max_audio_rate")]
    pub max_audio_rate: u32,
}

fn yes() -> bool {
    true
}
fn wordnet_dir() -> PathBuf {
    PathBuf::from(crate::metrics::caption::wordnet::DEFAULT_DIR)
}
fn neural() -> ScoredAudio {
    ScoredAudio::Neural
}
fn n_fft() -> usize {
    1024
}
fn hop() -> usize {
    256
}
fn n_mels() -> usize {
    80
}
fn n_mcd() -> usize {
    13
}
fn max_seconds() -> f64 {
    60.0
}

impl ScoreConfig {
    /// What reference audio may declare; `None` when the values make no sense.
    fn reference_limits(&self) -> Option<crate::dsp::wav::WavLimits> {
        super::audio_limits::limits(
            self.max_audio_seconds,
            self.max_audio_channels,
            self.min_audio_rate,
            self.max_audio_rate,
        )
    }

    fn params(&self) -> AudioMetricParams {
        AudioMetricParams {
            n_fft: self.n_fft,
            hop: self.hop,
            n_mels: self.n_mels,
            n_mcd: self.n_mcd,
            floor: match self.power_floor_db {
                Some(db) => PowerFloor::BelowPeak(db),
                None => PowerFloor::Absolute,
            },
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let p = self.params();
        if p.n_fft < 2
            || p.hop == 0
            || p.n_mcd == 0
            || p.n_mcd >= p.n_mels
            || self
                .power_floor_db
                .is_some_and(|db| !(db.is_finite() && db > 0.0))
            || self.max_audio_seconds <= 0.0
            || self.reference_limits().is_none()
        {
            return Err(Error::Config(
                "score: need n_fft >= 2, hop > 0, 0 < n_mcd < n_mels, power_floor_db > 0, \
                 max_audio_seconds > 0, \
                 max_audio_channels > 0, 0 < min_audio_rate <= max_audio_rate"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What the stage reads.
    pub fn input_schema(&self) -> SchemaRef {
        let mut f = vec![
            Field::new(columns::REFERENCES, references_type(), true),
            Field::new(columns::REFERENCE_AUDIO, DataType::Binary, true),
            Field::new(columns::CAPTION, DataType::Utf8, true),
        ];
        if let Some(c) = self.audio.column() {
            f.push(Field::new(c, DataType::Binary, true));
        }
        stage_input(f)
    }
}

/// What the stage emits: its input plus the score columns.
pub fn output_schema(input: &SchemaRef) -> SchemaRef {
    append_fields(input, score_fields())
}

impl crate::stages::StageSpec for ScoreConfig {
    fn validate(&self) -> Result<()> {
        ScoreConfig::validate(self)
    }
    fn input_schema(&self) -> SchemaRef {
        ScoreConfig::input_schema(self)
    }
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        output_schema(input)
    }
    fn build(&self, _cx: &crate::stages::BuildContext) -> Result<Box<dyn Stage>> {
        Ok(Box::new(Score::new(self)?))
    }
}

/// The running stage.
pub struct Score {
    cfg: ScoreConfig,
    meteor: Option<Meteor>,
}

impl std::fmt::Debug for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Score")
            .field("meteor", &self.meteor.is_some())
            .finish()
    }
}

impl Score {
    /// Builds the stage, reading WordNet when METEOR is on.
    pub fn new(cfg: &ScoreConfig) -> Result<Self> {
        let meteor = if cfg.meteor {
            Some(Meteor::new(WordNet::open(&cfg.wordnet_dir)?))
        } else {
            None
        };
        Ok(Score {
            cfg: cfg.clone(),
            meteor,
        })
    }

    fn audio_scores(
        &self,
        reference: &[u8],
        generated: &[u8],
    ) -> std::result::Result<[f64; 6], (ErrorKind, String)> {
        let max = self.cfg.max_audio_seconds;
        let limits = self.cfg.reference_limits().unwrap_or_else(|| max.into());
        let r = read_wav(reference, limits).map_err(|e| match e {
            crate::dsp::wav::AudioError::TooLong(_) => {
                (ErrorKind::TooLarge, format!("reference audio: {e}"))
            }
            other => (ErrorKind::InvalidAudio, format!("reference audio: {other}")),
        })?;
        let g = read_wav(generated, max)
            .map_err(|e| (ErrorKind::Internal, format!("generated audio: {e}")))?;
        let mut y = g.mono();
        if g.sample_rate != r.sample_rate {
            y = resample(&[y], g.sample_rate, r.sample_rate, Quality::Balanced)
                .map_err(|e| (ErrorKind::Internal, e))?
                .remove(0);
        }
        Ok(score_audio(&r.mono(), &y, r.sample_rate, &self.cfg.params()).values())
    }
}

/// The references of row `i` that have text.
fn refs_of(list: &ListArray, i: usize) -> Vec<String> {
    let mut refs = string_list(list, i);
    refs.retain(|r| !r.trim().is_empty());
    refs
}

impl Stage for Score {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = ok_mask(&batch)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let captions = column::<StringArray>(&batch, columns::CAPTION)?;
        let refs = column::<ListArray>(&batch, columns::REFERENCES)?;
        let ref_audio = column::<BinaryArray>(&batch, columns::REFERENCE_AUDIO)?;
        let generated = match self.cfg.audio.column() {
            Some(c) => Some(column::<BinaryArray>(&batch, c)?),
            None => None,
        };
        let mut caption_cols: Vec<Float64Builder> =
            (0..6).map(|_| Float64Builder::with_capacity(n)).collect();
        let mut audio_cols: Vec<Float64Builder> =
            (0..6).map(|_| Float64Builder::with_capacity(n)).collect();
        let mut errors: Vec<Option<RowError>> = vec![None; n];
        for i in 0..n {
            let references = refs_of(refs, i);
            let caption_row = if ok[i] && captions.is_valid(i) && !references.is_empty() {
                match score_row(captions.value(i), &references, self.meteor.as_ref()) {
                    Ok(s) => Some([
                        s.bleu[0],
                        s.bleu[1],
                        s.bleu[2],
                        s.bleu[3],
                        s.meteor.unwrap_or(f64::NAN),
                        s.rouge_l,
                    ]),
                    Err(e) => {
                        errors[i] = Some(RowError::new(
                            ErrorKind::Internal,
                            format!("record {}: caption scores: {e}", ids.value(i)),
                        ));
                        None
                    }
                }
            } else {
                None
            };
            for (k, b) in caption_cols.iter_mut().enumerate() {
                b.append_option(caption_row.map(|r| r[k]).filter(|v| !v.is_nan()));
            }
            let audio_row = match (ok[i] && errors[i].is_none(), generated) {
                (true, Some(g)) if ref_audio.is_valid(i) && g.is_valid(i) => {
                    match self.audio_scores(ref_audio.value(i), g.value(i)) {
                        Ok(s) => Some(s),
                        Err((kind, msg)) => {
                            errors[i] = Some(RowError::new(
                                kind,
                                format!("record {}: {msg}", ids.value(i)),
                            ));
                            None
                        }
                    }
                }
                _ => None,
            };
            for (k, b) in audio_cols.iter_mut().enumerate() {
                // A silent reference has no spectral convergence: null, not NaN.
                b.append_option(audio_row.map(|r| r[k]).filter(|v| v.is_finite()));
            }
        }
        let [status, kind, message] = error_columns(&batch, &errors)?;
        let mut replace: Vec<(&str, ArrayRef)> = vec![
            (columns::STATUS, status),
            (columns::ERROR_KIND, kind),
            (columns::ERROR, message),
        ];
        for (name, mut b) in SCORE_COLUMNS
            .into_iter()
            .zip(caption_cols.into_iter().chain(audio_cols))
        {
            replace.push((name, Arc::new(b.finish())));
        }
        out.push(with_columns(
            &batch,
            output_schema(&batch.schema()),
            replace,
        )?);
        Ok(())
    }
}
