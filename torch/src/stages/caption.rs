//! The running `caption` stage: each worker thread loads its own copy of the
//! checkpoint (a model's tensors never cross threads) and captions whole micro-batches
//! under `no_grad`. Rows that failed upstream pass through untouched. A row whose image
//! is not at the model's size means the pipeline is misconfigured, which stops it. Its
//! contract (settings, schemas, the image size hint) is `capstream::stages::caption`.
//!
//! A row may carry its own prompt, beam width and token budget (the `options` column a
//! served request fills). Rows of one micro-batch that decode alike share one
//! `generate` call, each with its own prompt; a row whose options cannot be applied (a
//! prompt and budget longer than the decoder's positions, beams with sampling) becomes
//! an `invalid_options` error row instead of stopping the stream.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringArray, StringBuilder, UInt32Array,
};

use capstream::error::{Error, Result};
use capstream::schema::{
    column, columns, error_columns, ok_mask, options_column, with_columns, Edge, ErrorKind,
    RecordOptions, RowError,
};
use capstream::stages::caption::{CaptionConfig, NAME};
use capstream::stages::Stage;

use crate::models::blip::{Captioner, GenerationConfig, ImageCaptions};
use crate::models::device::{parse_device, parse_dtype};

/// The running stage: one loaded checkpoint.
pub struct Caption {
    captioner: Captioner,
    gen: GenerationConfig,
    prompt: String,
    strip_prompt: bool,
    model_name: String,
}

impl std::fmt::Debug for Caption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Caption({})", self.model_name)
    }
}

impl Caption {
    /// Loads the checkpoint at `model` on this thread.
    pub fn new(cfg: &CaptionConfig, model: PathBuf) -> Result<Self> {
        // Set even when the config leaves the count to libtorch: `set_num_threads`
        // also sizes MKL's own thread team, which otherwise keeps a default of its own
        // beside ATen's (the model side's commands set it explicitly too).
        tch::set_num_threads(cfg.threads.map_or_else(tch::get_num_threads, |n| n as i32));
        let device = parse_device(&cfg.device)?;
        let kind = parse_dtype(&cfg.dtype, device)?;
        let captioner = Captioner::from_dir(&model, device, kind)?;
        let model_name = model
            .canonicalize()
            .unwrap_or(model.clone())
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| model.display().to_string());
        Ok(Caption {
            captioner,
            gen: cfg.generation_for(&model)?,
            prompt: cfg.prompt.clone(),
            strip_prompt: cfg.strip_prompt,
            model_name,
        })
    }
}

impl Caption {
    /// Row `i`'s decoding settings and prompt: the stage's, with the row's options
    /// applied and checked against the model; the error says what cannot be applied.
    fn row_settings(
        &self,
        options: Option<&StringArray>,
        i: usize,
    ) -> std::result::Result<(GenerationConfig, String), String> {
        let o = RecordOptions::of_row(options, i)?;
        let mut gen = self.gen.clone();
        if let Some(b) = o.num_beams {
            gen.num_beams = b;
        }
        if let Some(m) = o.max_new_tokens {
            gen.max_new_tokens = m;
        }
        gen.validate().map_err(|e| e.to_string())?;
        let prompt = o.prompt.unwrap_or_else(|| self.prompt.clone());
        let prompt_len = self
            .captioner
            .prompt_ids(&prompt)
            .map_err(|e| format!("prompt {prompt:?}: {e}"))?
            .len();
        let positions = self.captioner.max_positions();
        if prompt_len + gen.max_new_tokens > positions {
            return Err(format!(
                "a prompt of {prompt_len} tokens plus max_new_tokens = {} exceeds the {positions} positions of model {}",
                gen.max_new_tokens, self.model_name
            ));
        }
        Ok((gen, prompt))
    }
}

impl Stage for Caption {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ok = ok_mask(&batch)?;
        let pixels = column::<BinaryArray>(&batch, columns::PIXELS)?;
        let width = column::<UInt32Array>(&batch, columns::PIXELS_WIDTH)?;
        let ids = column::<StringArray>(&batch, columns::ID)?;
        let size = self.captioner.image_size();
        let rows: Vec<usize> = (0..n).filter(|&i| ok[i] && pixels.is_valid(i)).collect();
        if let Some(&i) = rows.iter().find(|&&i| width.value(i) != size) {
            return Err(Error::Stage {
                stage: NAME.into(),
                message: format!(
                    "record {} was decoded at {}px but model {} needs {size}px: set image_size = {size} in decode_image",
                    ids.value(i),
                    width.value(i),
                    self.model_name
                ),
            });
        }
        // Each row's decoding: the stage's settings with the row's overrides.
        let options = options_column(&batch);
        let mut errors: Vec<Option<RowError>> = vec![None; n];
        let mut groups: Vec<(GenerationConfig, Vec<(usize, String)>)> = Vec::new();
        for &i in &rows {
            match self.row_settings(options, i) {
                Ok((gen, prompt)) => match groups.iter_mut().find(|(g, _)| *g == gen) {
                    Some((_, members)) => members.push((i, prompt)),
                    None => groups.push((gen, vec![(i, prompt)])),
                },
                Err(why) => {
                    errors[i] = Some(RowError::new(
                        ErrorKind::InvalidOptions,
                        format!("record {}: {why}", ids.value(i)),
                    ))
                }
            }
        }
        let mut results: Vec<Option<ImageCaptions>> = (0..n).map(|_| None).collect();
        for (gen, members) in &groups {
            let images: Vec<&[u8]> = members.iter().map(|&(i, _)| pixels.value(i)).collect();
            let px = self.captioner.pixels(&images)?;
            let prompts: Vec<&str> = members.iter().map(|(_, p)| p.as_str()).collect();
            let out = self
                .captioner
                .caption(&px, &prompts, gen, self.strip_prompt)?;
            for (&(i, _), res) in members.iter().zip(out) {
                results[i] = Some(res);
            }
        }
        let mut caption = StringBuilder::new();
        let mut token_ids = ListBuilder::new(Int64Builder::new());
        let mut model = StringBuilder::new();
        let mut embedding = ListBuilder::new(Float32Builder::new());
        for result in results {
            match result {
                Some(res) => {
                    let best = &res.captions[0];
                    caption.append_value(&best.text);
                    token_ids.values().append_slice(&best.token_ids);
                    token_ids.append(true);
                    model.append_value(&self.model_name);
                    embedding.values().append_slice(&res.embedding);
                    embedding.append(true);
                }
                None => {
                    caption.append_null();
                    token_ids.append(false);
                    model.append_null();
                    embedding.append(false);
                }
            }
        }
        let [status, kind, message] = error_columns(&batch, &errors)?;
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::STATUS, status),
            (columns::ERROR_KIND, kind),
            (columns::ERROR, message),
            (columns::CAPTION, Arc::new(caption.finish())),
            (columns::CAPTION_TOKEN_IDS, Arc::new(token_ids.finish())),
            (columns::CAPTION_MODEL, Arc::new(model.finish())),
            (columns::IMAGE_EMBEDDING, Arc::new(embedding.finish())),
        ];
        out.push(with_columns(&batch, Edge::Captioned.schema(), replace)?);
        Ok(())
    }
}
