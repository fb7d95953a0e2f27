//! Training the caption model: BLIP fine-tuning from a checkpoint, or a BLIP trained
//! from a config, on image–caption triplets.
//!
//! The loss is `BlipForConditionalGeneration`'s (next-token cross-entropy with label
//! smoothing, padding and an optional prompt masked out as original BLIP does), the
//! optimizer AdamW under linear warmup and cosine decay, with gradient clipping and
//! accumulation. Each epoch every training image is seen once, with one of its
//! references drawn by the seed (or with every reference, `all_captions`, as BLIP's
//! COCO recipe does). Everything random comes from the seed: libtorch's generator for
//! fresh weights, [`SplitMix64`] streams per epoch for order and caption choice; on CPU
//! with a fixed thread count two runs give identical weights, and a resumed run the
//! weights of the uninterrupted one.
//!
//! Every epoch writes a Hugging Face checkpoint folder (config.json,
//! model.safetensors with the tied head tensors transformers writes, tokenizer and
//! preprocessor files), so transformers and `capstream caption` load the result as is.
//! Output folder: the latest epoch at the top, `checkpoint-epoch-N/` (the same plus
//! `optimizer.safetensors` and `trainer_state.json`, for `--resume`), and
//! `train_log.jsonl`. This module must not parse command lines or run pipelines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::adam::{AdamConfig, AdamW};
use super::audio::Skipped;
use super::split::split_indices;
use crate::models::blip::generation::generate;
use crate::models::blip::{
    BlipForConditionalGeneration, BlipTokenizer, Config, GenerationConfig, SpecialIds,
};
use capstream::datasets::synth::{synth_one, SynthOptions};
use capstream::datasets::triplets::Triplet;
use capstream::error::{Error, Result};
use capstream::imaging::{normalize_chw, prepare, BicubicResizer, Limits, CLIP_MEAN, CLIP_STD};
use capstream::metrics::caption::corpus::{score_corpus, CaptionItem};
use capstream::train::log::{num, JsonlLog};
use capstream::train::rng::SplitMix64;

/// The log file in the output folder.
pub const LOG_FILE: &str = "train_log.jsonl";
/// The trainer state in a checkpoint folder.
pub const STATE_FILE: &str = "trainer_state.json";
const OPT_FILE: &str = "optimizer.safetensors";
/// Tokenizer files copied into every checkpoint, when the source has them.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
];
/// Labels that the loss ignores (PyTorch's `ignore_index`).
const IGNORE: i64 = -100;

/// Options of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionTrainOptions {
    /// Total epochs.
    pub epochs: usize,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Optimizer steps of linear warmup from 0.
    pub warmup_steps: usize,
    /// The cosine decays to `lr * min_lr_ratio` at the last step.
    pub min_lr_ratio: f64,
    /// AdamW's decoupled weight decay (BLIP: 0.05).
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Label smoothing of the loss; `None` takes the config's `text_config.label_smoothing`.
    pub label_smoothing: Option<f64>,
    /// Text before every caption ("a picture of "), excluded from the loss.
    pub prompt: String,
    /// Longest training sequence in tokens, `[DEC]` and `[SEP]` included.
    pub max_tokens: usize,
    /// Every (image, reference) pair each epoch instead of one reference per image.
    pub all_captions: bool,
    /// Seed of weights, order and caption choice.
    pub seed: u64,
    /// Share of training rows held out for validation when no row has split `val`.
    pub val_fraction: f64,
    /// Validation images captioned each epoch for the caption metrics (0 = all).
    pub val_caption_images: usize,
    /// Tokens generated per validation caption, and the `max_new_tokens` written to
    /// the checkpoint's generation_config.json (`None`: `max_tokens − 1`, room for the
    /// longest training target and its `[SEP]`).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Fresh synthetic scenes drawn for every epoch (0: train on the data's training
    /// rows). Epoch `e` trains on scenes `e·N .. (e+1)·N` of `synth_seed`, so each is
    /// seen once, a resumed run draws the same ones, and the data's rows still give the
    /// validation set and the vocabulary.
    #[serde(default)]
    pub synth_per_epoch: usize,
    /// Seed of the fresh scenes; keep it apart from the seed of any evaluation data.
    #[serde(default = "default_synth_seed")]
    pub synth_seed: u64,
    /// Mixed precision: parameters and activations in bf16, f32 master weights and
    /// AdamW moments, softmax and loss in f32 (meant for CUDA; runs on CPU too).
    #[serde(default)]
    pub bf16: bool,
}

fn default_synth_seed() -> u64 {
    1
}

impl Default for CaptionTrainOptions {
    fn default() -> Self {
        CaptionTrainOptions {
            epochs: 3,
            batch_size: 16,
            grad_accum: 1,
            lr: 1e-5,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            weight_decay: 0.05,
            grad_clip: 1.0,
            label_smoothing: None,
            prompt: String::new(),
            max_tokens: 40,
            all_captions: false,
            seed: 0,
            val_fraction: 0.05,
            val_caption_images: 256,
            max_new_tokens: None,
            synth_per_epoch: 0,
            synth_seed: default_synth_seed(),
            bf16: false,
        }
    }
}

impl CaptionTrainOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("train caption: {m}")));
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("epochs, batch size and grad_accum must be positive");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be positive");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio must be in [0, 1]");
        }
        if let Some(ls) = self.label_smoothing {
            if !(0.0..1.0).contains(&ls) {
                return bad("label_smoothing must be in [0, 1)");
            }
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad("val_fraction must be in [0, 1)");
        }
        if self.max_tokens < 3 {
            return bad("max_tokens must be at least 3");
        }
        if self.synth_per_epoch > 0 && self.all_captions {
            return bad("all_captions cannot be combined with fresh synthetic scenes");
        }
        if self.max_new_tokens == Some(0) {
            return bad("max_new_tokens must be at least 1");
        }
        Ok(())
    }

    /// Tokens a caption may run to: what validation generates and what the
    /// checkpoint's generation_config.json asks of every later `generate`.
    pub fn new_tokens(&self) -> usize {
        self.max_new_tokens.unwrap_or(self.max_tokens - 1)
    }

    /// Learning rate of optimizer step `step` (0-based) of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let floor = self.lr * self.min_lr_ratio;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// One prepared image with its references.
#[derive(Debug, Clone)]
pub struct CaptionExample {
    /// Triplet id.
    pub id: String,
    /// Split of the triplet, if it had one.
    pub split: Option<String>,
    /// RGB bytes at the model's input size.
    pub rgb: Vec<u8>,
    /// Reference captions.
    pub captions: Vec<String>,
}

/// Decodes and resizes every triplet's image to `image_size` (bicubic, as the BLIP
/// image processor). Triplets whose image cannot be read, or without a caption, are
/// skipped with the reason.
pub fn prepare_caption_examples(
    triplets: &[Triplet],
    image_size: u32,
    limits: &Limits,
) -> (Vec<CaptionExample>, Vec<Skipped>) {
    let mut resizer = BicubicResizer::new();
    let mut examples = Vec::with_capacity(triplets.len());
    let mut skipped = Vec::new();
    for t in triplets {
        let captions: Vec<String> = t
            .captions
            .iter()
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .collect();
        if captions.is_empty() {
            skipped.push(Skipped {
                id: t.id.clone(),
                reason: "no caption".into(),
            });
            continue;
        }
        match prepare(&t.image, limits, image_size, image_size, &mut resizer) {
            Ok(p) => examples.push(CaptionExample {
                id: t.id.clone(),
                split: t.split.clone(),
                rgb: p.rgb,
                captions,
            }),
            Err(e) => skipped.push(Skipped {
                id: t.id.clone(),
                reason: format!("image: {e}"),
            }),
        }
    }
    (examples, skipped)
}

/// Where the model of a run comes from.
#[derive(Debug, Clone)]
pub enum CaptionInit {
    /// Fine-tune a checkpoint folder (config.json, weights, tokenizer).
    Pretrained(PathBuf),
    /// A fresh model: `config` is a `BlipConfig` JSON whose special ids and vocabulary
    /// size are taken from the tokenizer folder `tokenizer`.
    Config {
        /// The `BlipConfig` JSON.
        config: serde_json::Value,
        /// A folder with tokenizer.json (and the transformers tokenizer files).
        tokenizer: PathBuf,
    },
}

/// Where a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct CaptionTrainSummary {
    /// Epochs done in all.
    pub epochs: usize,
    /// Optimizer steps taken in all.
    pub steps: usize,
    /// Training images.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
    /// The last epoch's record (losses and validation metrics).
    pub last_epoch: serde_json::Value,
    /// The output folder.
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    epoch: usize,
    steps: usize,
    options: CaptionTrainOptions,
}

/// A loaded model with what its checkpoint folder needs besides the weights.
struct Model {
    blip: BlipForConditionalGeneration,
    config_json: serde_json::Value,
    tokenizer: BlipTokenizer,
    tokenizer_dir: PathBuf,
    ids: SpecialIds,
    bos: i64,
}

fn load_model(init: &CaptionInit, device: Device, seed: u64) -> Result<Model> {
    let (blip, config_json, tokenizer_dir) = match init {
        CaptionInit::Pretrained(dir) => {
            let path = dir.join("config.json");
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let cfg = Config::parse(&text, &path)?;
            let weights = crate::models::weights::find_weights(dir)?;
            let mut blip = BlipForConditionalGeneration::new(&cfg, &weights, device)?;
            blip.set_trainable(true);
            (blip, serde_json::from_str(&text)?, dir.clone())
        }
        CaptionInit::Config { config, tokenizer } => {
            let tk = BlipTokenizer::from_dir(tokenizer)?;
            let json = complete_config(config.clone(), &tk, tokenizer)?;
            let cfg = Config::parse(&json.to_string(), &tokenizer.join("config.json"))?;
            tch::manual_seed(seed as i64);
            (
                BlipForConditionalGeneration::init(&cfg, device),
                json,
                tokenizer.clone(),
            )
        }
    };
    let tokenizer = BlipTokenizer::from_dir(&tokenizer_dir)?;
    let t = &blip.config().text_config;
    Ok(Model {
        ids: SpecialIds {
            sep: t.sep_token_id,
            pad: t.pad_token_id,
        },
        bos: t.bos_token_id,
        blip,
        config_json,
        tokenizer,
        tokenizer_dir,
    })
}

/// Fills a `BlipConfig` JSON from the tokenizer: vocabulary size and special ids, plus
/// the keys transformers needs to recognize the architecture.
fn complete_config(
    mut config: serde_json::Value,
    tk: &BlipTokenizer,
    dir: &Path,
) -> Result<serde_json::Value> {
    let id = |tok: &str| {
        tk.token_id(tok).ok_or_else(|| Error::Model {
            path: dir.to_path_buf(),
            message: format!("tokenizer has no {tok} token"),
        })
    };
    let (bos, pad, sep) = (id("[DEC]")?, id("[PAD]")?, id("[SEP]")?);
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::Config("train caption: the config is not a JSON object".into()))?;
    obj.insert(
        "architectures".into(),
        json!(["BlipForConditionalGeneration"]),
    );
    obj.insert("model_type".into(), json!("blip"));
    let text = obj
        .entry("text_config")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| Error::Config("train caption: text_config is not an object".into()))?;
    text.insert("vocab_size".into(), json!(tk.vocab_size()));
    text.insert("bos_token_id".into(), json!(bos));
    text.insert("pad_token_id".into(), json!(pad));
    text.insert("sep_token_id".into(), json!(sep));
    text.insert("model_type".into(), json!("blip_text_model"));
    if let Some(v) = obj
        .get_mut("vision_config")
        .and_then(serde_json::Value::as_object_mut)
    {
        v.insert("model_type".into(), json!("blip_vision_model"));
    }
    Ok(config)
}

/// One batch of token sequences: `[DEC] prompt caption [SEP]`, right-padded.
struct TokenBatch {
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor,
}

fn caption_ids(m: &Model, prompt: &[i64], caption: &str, max_tokens: usize) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(max_tokens);
    ids.push(m.bos);
    ids.extend_from_slice(prompt);
    ids.extend(m.tokenizer.encode(caption)?);
    ids.truncate(max_tokens - 1);
    ids.push(m.ids.sep);
    Ok(ids)
}

fn token_batch(m: &Model, seqs: &[Vec<i64>], prompt_len: usize, device: Device) -> TokenBatch {
    let t = seqs.iter().map(Vec::len).max().unwrap_or(1);
    let b = seqs.len();
    let mut ids = vec![m.ids.pad; b * t];
    let mut mask = vec![0i64; b * t];
    let mut labels = vec![IGNORE; b * t];
    for (r, s) in seqs.iter().enumerate() {
        for (c, &id) in s.iter().enumerate() {
            ids[r * t + c] = id;
            mask[r * t + c] = 1;
            // `[DEC]` and the prompt are given, not predicted (original BLIP masks
            // the first `prompt_length` targets).
            if c > prompt_len {
                labels[r * t + c] = id;
            }
        }
    }
    let shape = [b as i64, t as i64];
    TokenBatch {
        input_ids: Tensor::from_slice(&ids).reshape(shape).to_device(device),
        attention_mask: Tensor::from_slice(&mask).reshape(shape).to_device(device),
        labels: Tensor::from_slice(&labels).reshape(shape).to_device(device),
    }
}

/// Normalized `[B, 3, S, S]` pixels of prepared images, in the model's kind.
fn pixels(examples: &[CaptionExample], idx: &[usize], size: usize, m: &Model) -> Tensor {
    let n = size * size * 3;
    let mut buf = vec![0f32; idx.len() * n];
    for (&i, out) in idx.iter().zip(buf.chunks_exact_mut(n)) {
        normalize_chw(&examples[i].rgb, CLIP_MEAN, CLIP_STD, out);
    }
    Tensor::from_slice(&buf)
        .reshape([idx.len() as i64, 3, size as i64, size as i64])
        .to_device(m.blip.device())
        .to_kind(m.blip.kind())
}

/// The mean loss of (image, reference) pairs, one batch.
fn pairs_loss(
    m: &Model,
    examples: &[CaptionExample],
    tokens: &[Vec<Vec<i64>>],
    pairs: &[(usize, usize)],
    prompt_len: usize,
    smoothing: f64,
) -> Tensor {
    let idx: Vec<usize> = pairs.iter().map(|&(i, _)| i).collect();
    let seqs: Vec<Vec<i64>> = pairs.iter().map(|&(i, c)| tokens[i][c].clone()).collect();
    let tb = token_batch(m, &seqs, prompt_len, m.blip.device());
    let size = m.blip.config().vision_config.image_size;
    let px = pixels(examples, &idx, size, m);
    m.blip.loss(
        &px,
        &tb.input_ids,
        &tb.attention_mask,
        &tb.labels,
        smoothing,
    )
}

/// The token ids of one image's references.
type RefTokens = Vec<Vec<i64>>;

/// Size of the fresh synthetic scenes: `dataset synth`'s default, which the data of the
/// default model uses; prepared to the model's size as the pipeline would.
const SYNTH_SIDE: u32 = 128;

/// Epoch `epoch`'s `n` fresh synthetic scenes, as JPEG like `dataset synth --format
/// jpeg` writes them, decoded and resized to `size`, with their references' token ids.
fn fresh_scenes(
    m: &Model,
    opts: &CaptionTrainOptions,
    prompt_ids: &[i64],
    epoch: usize,
    n: usize,
    size: usize,
) -> Result<(Vec<CaptionExample>, Vec<RefTokens>)> {
    let so = SynthOptions {
        count: n,
        seed: opts.synth_seed,
        size: SYNTH_SIDE,
        speaker: None,
        format: image::ImageFormat::Jpeg,
        threads: 1,
    };
    let first = epoch * n;
    let triplets: Vec<Triplet> = (first..first + n)
        .map(|i| synth_one(&so, i).map(|s| s.triplet))
        .collect::<Result<_>>()?;
    let (examples, skipped) = prepare_caption_examples(&triplets, size as u32, &Limits::default());
    if let Some(s) = skipped.first() {
        return Err(Error::Stage {
            stage: "train caption".into(),
            message: format!("fresh scene {}: {}", s.id, s.reason),
        });
    }
    let tokens = examples
        .iter()
        .map(|e| {
            e.captions
                .iter()
                .map(|c| caption_ids(m, prompt_ids, c, opts.max_tokens))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    Ok((examples, tokens))
}

/// Trains (or, with `resume`, continues training) and writes the output folder.
/// `on_record` sees every log record as it is written.
#[allow(clippy::too_many_arguments)]
pub fn train_caption(
    examples: &[CaptionExample],
    init: &CaptionInit,
    opts: &CaptionTrainOptions,
    device: Device,
    out: &Path,
    resume: Option<&Path>,
    on_record: &mut dyn FnMut(&serde_json::Value),
) -> Result<CaptionTrainSummary> {
    let (mut m, state) = match resume {
        Some(dir) => {
            let m = load_model(&CaptionInit::Pretrained(dir.to_path_buf()), device, 0)?;
            let path = dir.join(STATE_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let state: TrainerState = serde_json::from_str(&text)?;
            (m, Some(state))
        }
        None => (load_model(init, device, opts.seed)?, None),
    };
    // A resumed run keeps the options that shaped its schedule, data and order.
    let opts = match &state {
        Some(s) => s.options.clone(),
        None => opts.clone(),
    };
    opts.validate()?;
    let smoothing = opts
        .label_smoothing
        .unwrap_or(m.blip.config().text_config.label_smoothing);
    if let Some(text) = m
        .config_json
        .get_mut("text_config")
        .and_then(serde_json::Value::as_object_mut)
    {
        text.insert("label_smoothing".into(), json!(smoothing));
    }
    let size = m.blip.config().vision_config.image_size;
    if let Some(e) = examples.iter().find(|e| e.rgb.len() != size * size * 3) {
        return Err(Error::Config(format!(
            "example {}: image is not {size}x{size} RGB",
            e.id
        )));
    }
    let row_splits: Vec<Option<&str>> = examples.iter().map(|e| e.split.as_deref()).collect();
    let (train_idx, val_idx) = split_indices(&row_splits, opts.val_fraction, opts.seed);
    if train_idx.is_empty() {
        return Err(Error::Config("train caption: no training images".into()));
    }
    let prompt_ids = m.tokenizer.encode(&opts.prompt)?;
    // Token ids of every reference, once.
    let tokens: Vec<Vec<Vec<i64>>> = examples
        .iter()
        .map(|e| {
            e.captions
                .iter()
                .map(|c| caption_ids(&m, &prompt_ids, c, opts.max_tokens))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let pairs_per_epoch = if opts.synth_per_epoch > 0 {
        opts.synth_per_epoch
    } else if opts.all_captions {
        train_idx.iter().map(|&i| tokens[i].len()).sum()
    } else {
        train_idx.len()
    };
    let steps_per_epoch = pairs_per_epoch.div_ceil(opts.batch_size * opts.grad_accum);
    let total_steps = steps_per_epoch * opts.epochs;

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut log = JsonlLog::append(&out.join(LOG_FILE))?;
    let mut emit = |log: &mut JsonlLog, v: serde_json::Value| -> Result<()> {
        log.write(&v)?;
        on_record(&v);
        Ok(())
    };
    if opts.bf16 {
        // Before the optimizer takes its handles: it keeps f32 masters of what is bf16.
        m.blip.set_kind(Kind::BFloat16);
    }
    let params = crate::models::weights::named_variables(m.blip.var_store());
    let n_params: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut opt = AdamW::new(
        params,
        AdamConfig {
            weight_decay: opts.weight_decay,
            ..AdamConfig::default()
        },
    );
    let start_epoch = match (&state, resume) {
        (Some(s), Some(dir)) => {
            opt.load_state(&dir.join(OPT_FILE))?;
            s.epoch
        }
        _ => 0,
    };
    if start_epoch == 0 {
        emit(
            &mut log,
            json!({
                "event": "start",
                "kind": "caption",
                "train_images": train_idx.len(),
                "val_images": val_idx.len(),
                "parameters": n_params,
                "steps_per_epoch": steps_per_epoch,
                "total_steps": total_steps,
                "label_smoothing": smoothing,
                "options": opts,
                "config": m.config_json,
            }),
        )?;
    } else {
        emit(
            &mut log,
            json!({"event": "resume", "epoch": start_epoch, "step": opt.steps()}),
        )?;
    }

    let mut last_epoch = serde_json::Value::Null;
    for epoch in start_epoch..opts.epochs {
        let t0 = Instant::now();
        let mut rng = SplitMix64::new(opts.seed, epoch as u64);
        let fresh = match opts.synth_per_epoch {
            0 => None,
            n => Some(fresh_scenes(&m, &opts, &prompt_ids, epoch, n, size)?),
        };
        let (ep_examples, ep_tokens, epoch_idx): (&[CaptionExample], &[RefTokens], Vec<usize>) =
            match &fresh {
                Some((e, t)) => (e, t, (0..e.len()).collect()),
                None => (examples, &tokens, train_idx.clone()),
            };
        let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(pairs_per_epoch);
        for &i in &epoch_idx {
            if opts.all_captions {
                pairs.extend((0..ep_tokens[i].len()).map(|c| (i, c)));
            } else {
                pairs.push((i, rng.below(ep_tokens[i].len() as u64) as usize));
            }
        }
        rng.shuffle(&mut pairs);
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        for step_pairs in pairs.chunks(opts.batch_size * opts.grad_accum) {
            let step = opt.steps() as usize;
            let lr = opts.lr_at(step, total_steps);
            opt.zero_grad();
            let mut step_loss = 0.0;
            let micro: Vec<&[(usize, usize)]> = step_pairs.chunks(opts.batch_size).collect();
            // Each micro-batch's mean loss weighs by its share of the step's target
            // tokens, so that accumulating gives the gradient of the whole step's mean
            // (weighting by examples would favour batches of short captions).
            let targets = |c: &[(usize, usize)]| -> usize {
                c.iter()
                    .map(|&(i, k)| ep_tokens[i][k].len().saturating_sub(1 + prompt_ids.len()))
                    .sum()
            };
            let step_targets = targets(step_pairs).max(1);
            for chunk in &micro {
                let loss = pairs_loss(
                    &m,
                    ep_examples,
                    ep_tokens,
                    chunk,
                    prompt_ids.len(),
                    smoothing,
                );
                let w = targets(chunk) as f64 / step_targets as f64;
                (&loss * w).backward();
                step_loss += loss.double_value(&[]) * w;
            }
            if !step_loss.is_finite() {
                return Err(Error::Stage {
                    stage: "train caption".into(),
                    message: format!("loss is not finite at step {step}; lower --lr"),
                });
            }
            let grad_norm = if opts.grad_clip > 0.0 {
                opt.clip_grad_norm(opts.grad_clip)
            } else {
                f64::NAN
            };
            opt.step(lr);
            loss_sum += step_loss;
            loss_n += 1;
            emit(
                &mut log,
                json!({"event": "step", "epoch": epoch + 1, "step": opt.steps(),
                       "loss": num(step_loss), "lr": num(lr), "grad_norm": num(grad_norm)}),
            )?;
        }
        let mut record = json!({
            "event": "epoch",
            "epoch": epoch + 1,
            "step": opt.steps(),
            "train_loss": num(loss_sum / loss_n.max(1) as f64),
            "train_seconds": num(t0.elapsed().as_secs_f64()),
        });
        if !val_idx.is_empty() {
            let t1 = Instant::now();
            let v = validate(
                &m,
                examples,
                &tokens,
                &val_idx,
                &opts,
                smoothing,
                &prompt_ids,
            )?;
            if let (Some(a), serde_json::Value::Object(b)) = (record.as_object_mut(), v) {
                a.extend(b);
                a.insert("val_seconds".into(), num(t1.elapsed().as_secs_f64()));
            }
        }
        emit(&mut log, record.clone())?;
        last_epoch = record;
        let ckpt = out.join(format!("checkpoint-epoch-{}", epoch + 1));
        let weights = opt.full_precision();
        save_pretrained(&m, &weights, opts.new_tokens(), &ckpt)?;
        crate::models::weights::save(&opt.state(), &ckpt.join(OPT_FILE))?;
        let st = TrainerState {
            epoch: epoch + 1,
            steps: opt.steps() as usize,
            options: opts.clone(),
        };
        let path = ckpt.join(STATE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&st)? + "\n")
            .map_err(|e| Error::io(&path, e))?;
        save_pretrained(&m, &weights, opts.new_tokens(), out)?;
    }
    Ok(CaptionTrainSummary {
        epochs: opts.epochs.max(start_epoch),
        steps: opt.steps() as usize,
        train_images: train_idx.len(),
        val_images: val_idx.len(),
        last_epoch,
        out: out.to_path_buf(),
    })
}

/// Validation loss over every (image, reference) pair, and greedy captions of the first
/// `val_caption_images` images scored against their references.
fn validate(
    m: &Model,
    examples: &[CaptionExample],
    tokens: &[Vec<Vec<i64>>],
    val_idx: &[usize],
    opts: &CaptionTrainOptions,
    smoothing: f64,
    prompt_ids: &[i64],
) -> Result<serde_json::Value> {
    let _guard = tch::no_grad_guard();
    let pairs: Vec<(usize, usize)> = val_idx
        .iter()
        .flat_map(|&i| (0..tokens[i].len()).map(move |c| (i, c)))
        .collect();
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in pairs.chunks(opts.batch_size.max(8)) {
        let loss = pairs_loss(m, examples, tokens, chunk, prompt_ids.len(), smoothing);
        sum += loss.double_value(&[]) * chunk.len() as f64;
        n += chunk.len();
    }
    let k = if opts.val_caption_images == 0 {
        val_idx.len()
    } else {
        opts.val_caption_images.min(val_idx.len())
    };
    let captions = caption_images(m, examples, &val_idx[..k], opts, prompt_ids)?;
    let items: Vec<CaptionItem> = val_idx[..k]
        .iter()
        .zip(&captions)
        .map(|(&i, c)| CaptionItem {
            id: examples[i].id.clone(),
            candidate: c.clone(),
            references: examples[i].captions.clone(),
        })
        .collect();
    let (scores, _) = score_corpus(&items, None).map_err(|e| Error::Stage {
        stage: "train caption".into(),
        message: format!("validation metrics: {e}"),
    })?;
    let samples: Vec<serde_json::Value> = items
        .iter()
        .take(4)
        .map(|it| json!({"id": it.id, "caption": it.candidate, "reference": it.references[0]}))
        .collect();
    Ok(json!({
        "val_loss": num(sum / n.max(1) as f64),
        "val_captioned": k,
        "val_bleu_4": num(scores.bleu_4),
        "val_rouge_l": num(scores.rouge_l),
        "val_cider_d": num(scores.cider_d),
        "val_samples": samples,
    }))
}

/// Greedy captions (prompt stripped) of prepared images.
fn caption_images(
    m: &Model,
    examples: &[CaptionExample],
    idx: &[usize],
    opts: &CaptionTrainOptions,
    prompt_ids: &[i64],
) -> Result<Vec<String>> {
    let size = m.blip.config().vision_config.image_size;
    let gen = GenerationConfig {
        max_new_tokens: opts.new_tokens(),
        ..GenerationConfig::default()
    };
    let mut prompt = vec![m.bos];
    prompt.extend_from_slice(prompt_ids);
    let mut out = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(32) {
        let px = pixels(examples, chunk, size, m);
        let image_embeds = m.blip.vision_model().forward(&px);
        let prompts = vec![prompt.clone(); chunk.len()];
        let seqs = generate(m.blip.text_decoder(), &image_embeds, &prompts, &gen, m.ids)?;
        for per_image in seqs {
            let ids = per_image.first().map_or(&[][..], |s| &s[prompt.len()..]);
            out.push(m.tokenizer.decode(ids)?);
        }
    }
    Ok(out)
}

/// Writes a Hugging Face checkpoint folder: config.json, model.safetensors (`weights`:
/// the full-precision parameters), the tokenizer files, preprocessor_config.json and
/// generation_config.json (greedy decoding that stops at `[SEP]`, as BLIP's `generate`
/// does, within `max_new_tokens`).
fn save_pretrained(
    m: &Model,
    weights: &[(String, Tensor)],
    max_new_tokens: usize,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v)? + "\n").map_err(|e| Error::io(&p, e))
    };
    write("config.json", &m.config_json)?;
    crate::models::weights::save(
        &m.blip.state_dict_from(
            weights
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
        ),
        &dir.join("model.safetensors"),
    )?;
    if m.tokenizer_dir != dir {
        for f in TOKENIZER_FILES {
            let src = m.tokenizer_dir.join(f);
            if src.is_file() {
                std::fs::copy(&src, dir.join(f)).map_err(|e| Error::io(&src, e))?;
            }
        }
    }
    let s = m.blip.config().vision_config.image_size;
    let image_processor = json!({
        "do_convert_rgb": true,
        "do_normalize": true,
        "do_rescale": true,
        "do_resize": true,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "BlipImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 1.0 / 255.0,
        "size": {"height": s, "width": s},
    });
    write("preprocessor_config.json", &image_processor)?;
    let t = &m.blip.config().text_config;
    write(
        "generation_config.json",
        &json!({
            "bos_token_id": t.bos_token_id,
            "eos_token_id": t.sep_token_id,
            "pad_token_id": t.pad_token_id,
            "max_new_tokens": max_new_tokens,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let o = CaptionTrainOptions {
            lr: 1.0,
            warmup_steps: 4,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert_eq!(o.lr_at(0, 14), 0.25);
        assert_eq!(o.lr_at(3, 14), 1.0);
        assert!((o.lr_at(4, 14) - 1.0).abs() < 1e-12);
        assert!((o.lr_at(9, 14) - 0.55).abs() < 1e-12);
        assert!((o.lr_at(14, 14) - 0.1).abs() < 1e-12);
    }
}
