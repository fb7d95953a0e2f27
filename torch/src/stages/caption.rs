//! The running `caption` stage: each worker thread loads its own copy of the
//! checkpoint (a model's tensors never cross threads) and captions whole micro-batches
//! under `no_grad`. Rows that failed upstream pass through untouched. A row whose image
//! is not at the model's size means the pipeline is misconfigured, which stops it. Its
//! contract (settings, schemas, the image size hint) is `capstream::stages::caption`.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringArray, StringBuilder, UInt32Array,
};

use capstream::error::{Error, Result};
use capstream::schema::{column, columns, ok_mask, with_columns, Edge};
use capstream::stages::caption::{CaptionConfig, NAME};
use capstream::stages::Stage;

use crate::models::blip::{Captioner, GenerationConfig};
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
        if let Some(n) = cfg.threads {
            tch::set_num_threads(n as i32);
        }
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
        let mut results = Vec::new();
        if !rows.is_empty() {
            let images: Vec<&[u8]> = rows.iter().map(|&i| pixels.value(i)).collect();
            let px = self.captioner.pixels(&images)?;
            let prompts = vec![self.prompt.as_str(); rows.len()];
            results = self
                .captioner
                .caption(&px, &prompts, &self.gen, self.strip_prompt)?;
        }
        let mut caption = StringBuilder::new();
        let mut token_ids = ListBuilder::new(Int64Builder::new());
        let mut model = StringBuilder::new();
        let mut embedding = ListBuilder::new(Float32Builder::new());
        let mut next = rows.iter().zip(results).peekable();
        for i in 0..n {
            match next.peek() {
                Some((&r, _)) if r == i => {
                    let (_, res) = next.next().expect("peeked");
                    let best = &res.captions[0];
                    caption.append_value(&best.text);
                    token_ids.values().append_slice(&best.token_ids);
                    token_ids.append(true);
                    model.append_value(&self.model_name);
                    embedding.values().append_slice(&res.embedding);
                    embedding.append(true);
                }
                _ => {
                    caption.append_null();
                    token_ids.append(false);
                    model.append_null();
                    embedding.append(false);
                }
            }
        }
        let replace: Vec<(&str, ArrayRef)> = vec![
            (columns::CAPTION, Arc::new(caption.finish())),
            (columns::CAPTION_TOKEN_IDS, Arc::new(token_ids.finish())),
            (columns::CAPTION_MODEL, Arc::new(model.finish())),
            (columns::IMAGE_EMBEDDING, Arc::new(embedding.finish())),
        ];
        out.push(with_columns(&batch, Edge::Captioned.schema(), replace)?);
        Ok(())
    }
}
