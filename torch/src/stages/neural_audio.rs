//! The running `neural_audio` stage: caption + image embedding → mel generator →
//! log-mel → vocoder → waveform. Its contract (settings, schemas) is
//! `capstream::stages::neural_audio`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, Float32Array, Float32Builder, ListArray, ListBuilder,
    RecordBatch, StringArray, UInt32Builder,
};

use capstream::dsp::mel_inverse::mel_db_to_audio;
use capstream::dsp::wav::write_wav_pcm16;
use capstream::error::{Error, Result};
use capstream::schema::{column, columns, with_columns};
use capstream::stages::neural_audio::{output_schema, NeuralAudioConfig, VocoderKind, NAME};
use capstream::stages::Stage;

use crate::models::audio::NeuralAudio;
use crate::models::device::parse_device;

/// The running stage.
#[derive(Debug)]
pub struct NeuralAudioStage {
    model: NeuralAudio,
    vocoder: VocoderKind,
    griffin_lim_iters: usize,
}

impl NeuralAudioStage {
    /// Loads the checkpoint at `dir`.
    pub fn new(cfg: &NeuralAudioConfig, dir: &std::path::Path) -> Result<Self> {
        let device = parse_device(&cfg.device)?;
        Ok(NeuralAudioStage {
            model: NeuralAudio::from_dir(dir, device)?,
            vocoder: cfg.vocoder,
            griffin_lim_iters: cfg.griffin_lim_iters,
        })
    }

    fn griffin_lim(&self, mel_db: &[f32], frames: usize) -> Vec<f32> {
        let c = &self.model.config().mel;
        mel_db_to_audio(
            mel_db,
            frames,
            &self.model.mel_params(),
            self.griffin_lim_iters,
            Some(c.samples(frames)),
        )
    }
}

impl Stage for NeuralAudioStage {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = capstream::schema::ok_mask(&batch)?;
        let emb = column::<ListArray>(&batch, columns::IMAGE_EMBEDDING)?;
        let captions = column::<StringArray>(&batch, columns::CAPTION)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let rows: Vec<usize> = (0..n)
            .filter(|&i| ok[i] && emb.is_valid(i) && captions.is_valid(i))
            .collect();
        let lists: Vec<ArrayRef> = rows.iter().map(|&i| emb.value(i)).collect();
        let mut items: Vec<(&[f32], &str)> = Vec::with_capacity(rows.len());
        for (&i, l) in rows.iter().zip(&lists) {
            let values = l.as_any().downcast_ref::<Float32Array>().ok_or_else(|| {
                Error::Runtime(format!(
                    "record {}: image_embedding is not float32",
                    ids.value(i)
                ))
            })?;
            items.push((values.values(), captions.value(i)));
        }
        let synthesized = self.model.synthesize(&items).map_err(|e| Error::Stage {
            stage: NAME.into(),
            message: format!("{e} (was the audio model trained on this caption model?)"),
        })?;
        let c = self.model.config().mel.clone();
        let mut mel_col = ListBuilder::new(Float32Builder::new());
        let mut frames_col = UInt32Builder::with_capacity(n);
        let mut wav_col = BinaryBuilder::new();
        let mut rate_col = UInt32Builder::with_capacity(n);
        let mut next = rows.iter().zip(synthesized).peekable();
        for i in 0..n {
            match next.peek() {
                Some((&r, _)) if r == i => {
                    let (_, s) = next.next().expect("peeked");
                    let wave = match self.vocoder {
                        VocoderKind::Neural => s.waveform,
                        VocoderKind::GriffinLim => self.griffin_lim(&s.mel_db, s.frames),
                    };
                    mel_col.values().append_slice(&s.mel_db);
                    mel_col.append(true);
                    frames_col.append_value(s.frames as u32);
                    wav_col.append_value(write_wav_pcm16(&wave, c.sample_rate));
                    rate_col.append_value(c.sample_rate);
                }
                _ => {
                    mel_col.append(false);
                    frames_col.append_null();
                    wav_col.append_null();
                    rate_col.append_null();
                }
            }
        }
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::NEURAL_MEL, Arc::new(mel_col.finish())),
            (columns::NEURAL_MEL_FRAMES, Arc::new(frames_col.finish())),
            (columns::NEURAL_WAV, Arc::new(wav_col.finish())),
            (columns::NEURAL_SAMPLE_RATE, Arc::new(rate_col.finish())),
        ];
        out.push(with_columns(
            &batch,
            output_schema(&batch.schema()),
            replace,
        )?);
        Ok(())
    }
}
