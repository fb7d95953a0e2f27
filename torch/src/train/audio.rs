//! Training the neural audio path: the mel generator (caption text + image embedding →
//! log-mel) and the vocoder (log-mel → waveform), on image–caption–audio triplets whose
//! audio speaks the first caption.
//!
//! Preparation: the caption model is frozen and its pooled image embeddings computed
//! once; each reference clip is resampled and cut at `mel.max_frames`; its log-mel and
//! the character durations of its caption (`capstream::train::durations`: eSpeak NG
//! word by word, aligned by DTW) are computed once.
//!
//! The generator trains on whole clips: the length regulator repeats characters by
//! their aligned durations, the loss is the mel MSE over real frames plus the MSE of
//! the predicted `ln(1 + frames)`. The vocoder trains without a discriminator on random
//! `segment_frames`-frame crops of the reference log-mels (`train::loss`): log-mel L1
//! and the multi-resolution STFT loss on its waveform, and its head's magnitude and
//! phase supervised directly against the reference clip's STFT at the head's frames.
//! No sample MSE: where phase is uncertain it only pulls the output towards silence.
//!
//! Validation each epoch: the generator with its own predicted durations, conditioned
//! on each held-out row's first caption and scored against that row's clip (mel MSE in
//! dB², MCD, the log-mel figures), beside the mean-log-mel baseline; the vocoder on the
//! reference log-mels, beside Griffin-Lim; and the whole path. Everything random comes
//! from the seed: libtorch's generator for the initial weights, [`SplitMix64`] streams
//! per epoch for order and crops; on CPU with a fixed thread count two runs give
//! identical weights, and a resumed run the weights of the uninterrupted one.
//!
//! Output folder: `config.json` + `model.safetensors` (the latest epoch, loadable by the
//! `neural_audio` stage), `checkpoint-epoch-N/` (the same plus optimizer state and
//! `trainer_state.json`, for `--resume`), and `train_log.jsonl`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::adam::{AdamConfig, AdamW};
use super::loss::{log_mel_l1, multi_resolution_stft, spectrum_losses, stft_frames, SPEECH_16K};
use super::split::split_indices;
use crate::models::audio::{
    mel_params, Config, FramePlan, NeuralAudio, TextBatch, GENERATOR, VOCODER,
};
use crate::models::blip::Captioner;
use crate::TorchResult;
use capstream::datasets::triplets::Triplet;
use capstream::dsp::mel::{mel_filterbank, melspectrogram, power_to_db, DbRef};
use capstream::dsp::mel_inverse::mel_db_to_audio;
use capstream::dsp::resample::{resample, Quality};
use capstream::dsp::wav::read_wav;
use capstream::error::{Error, Result};
use capstream::imaging::{prepare, BicubicResizer, Limits};
use capstream::metrics::audio as am;
use capstream::speech::Speaker;
use capstream::train::durations::Aligner;
use capstream::train::log::{num, JsonlLog};
use capstream::train::rng::SplitMix64;

/// The log file in the output folder.
pub const LOG_FILE: &str = "train_log.jsonl";
/// The trainer state in a checkpoint folder.
pub const STATE_FILE: &str = "trainer_state.json";
const GEN_OPT_FILE: &str = "generator_optimizer.safetensors";
const VOC_OPT_FILE: &str = "vocoder_optimizer.safetensors";

/// Options of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioTrainOptions {
    /// Total epochs (a resumed run continues up to this many).
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam learning rate, both networks.
    pub lr: f64,
    /// Seed of weights, order and crops.
    pub seed: u64,
    /// Frames of the vocoder's training crops.
    pub segment_frames: usize,
    /// Share of training rows held out for validation when no row has split `val`.
    pub val_fraction: f64,
    /// Global gradient-norm clip per network.
    pub grad_clip: f64,
    /// Weight of the generator's log-duration MSE beside its mel MSE.
    pub duration_weight: f64,
    /// Weight of the vocoder's log-mel L1 (in units of `mel_std`).
    pub mel_weight: f64,
    /// Weight of the multi-resolution STFT loss in the vocoder loss.
    pub stft_weight: f64,
    /// Weight of the head's log-magnitude MSE.
    pub magnitude_weight: f64,
    /// Weight of the head's anti-wrapped phase losses.
    pub phase_weight: f64,
    /// Weight of the head's real/imaginary L1.
    pub complex_weight: f64,
    /// Griffin-Lim iterations of the baseline.
    pub griffin_lim_iters: usize,
    /// Longer reference audio is skipped (seconds).
    pub max_audio_seconds: f64,
}

impl Default for AudioTrainOptions {
    fn default() -> Self {
        AudioTrainOptions {
            epochs: 3,
            batch_size: 16,
            lr: 1e-3,
            seed: 0,
            segment_frames: 32,
            val_fraction: 0.1,
            grad_clip: 1.0,
            duration_weight: 1.0,
            mel_weight: 1.0,
            stft_weight: 1.0,
            magnitude_weight: 1.0,
            phase_weight: 1.0,
            complex_weight: 1.0,
            griffin_lim_iters: 32,
            max_audio_seconds: 60.0,
        }
    }
}

impl AudioTrainOptions {
    fn validate(&self, cfg: &Config) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return Err(Error::Config(
                "train audio: epochs, batch size and lr must be positive".into(),
            ));
        }
        if self.segment_frames < 2 || self.segment_frames > cfg.mel.max_frames {
            return Err(Error::Config(format!(
                "train audio: segment_frames must be in 2..={}",
                cfg.mel.max_frames
            )));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::Config(
                "train audio: val_fraction must be in [0, 1)".into(),
            ));
        }
        Ok(())
    }
}

/// One prepared example: its id, the frozen image embedding, the spoken caption and
/// the targets.
#[derive(Debug, Clone)]
pub struct AudioExample {
    /// Triplet id.
    pub id: String,
    /// Split of the triplet, if it had one.
    pub split: Option<String>,
    /// Pooled image embedding.
    pub embedding: Vec<f32>,
    /// The caption the clip speaks (the triplet's first).
    pub text: String,
    /// Its character ids, as the generator encodes them.
    pub char_ids: Vec<i64>,
    /// Frames of each character in the clip's log-mel (sums to `frames`).
    pub durations: Vec<usize>,
    /// Reference clip, `(frames − 1) · hop` samples.
    pub waveform: Vec<f32>,
    /// Its log-mel in dB, `[n_mels][frames]`.
    pub mel_db: Vec<f32>,
    /// Frames of the log-mel.
    pub frames: usize,
}

/// A triplet left out of training, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Triplet id.
    pub id: String,
    /// What was wrong.
    pub reason: String,
}

/// The reference clip of a WAV: mono, resampled, cut at `cfg.mel.max_frames` frames and
/// to a whole number of hops, so that its centred log-mel of `frames` frames describes
/// it exactly (`(frames − 1) · hop` samples).
pub fn reference_clip(
    wav: &[u8],
    cfg: &Config,
    max_seconds: f64,
) -> std::result::Result<Vec<f32>, String> {
    let audio = read_wav(wav, max_seconds).map_err(|e| e.to_string())?;
    let mut y = audio.mono();
    if audio.sample_rate != cfg.mel.sample_rate {
        y = resample(
            &[y],
            audio.sample_rate,
            cfg.mel.sample_rate,
            Quality::Balanced,
        )?
        .remove(0);
    }
    let frames = cfg.mel.frames_of(y.len()).min(cfg.mel.max_frames);
    if frames < 2 {
        return Err(format!(
            "clip of {} samples is shorter than one hop",
            y.len()
        ));
    }
    y.truncate(cfg.mel.samples(frames));
    Ok(y)
}

/// The log-mel (dB) of a clip under `cfg`: `[n_mels][frames]` and `frames`.
pub fn clip_mel_db(clip: &[f32], cfg: &Config) -> (Vec<f32>, usize) {
    let (mel, frames) = melspectrogram(clip, &mel_params(&cfg.mel));
    (
        power_to_db(&mel, DbRef::Value(1.0), 1e-10, Some(cfg.mel.top_db)),
        frames,
    )
}

/// Embeds every triplet's image with the caption model and prepares its targets,
/// aligning each spoken caption with `speaker` (the voice the clips were made with).
/// Triplets without audio or a caption, or whose image or audio cannot be read, are
/// skipped.
pub fn prepare_examples(
    triplets: &[Triplet],
    captioner: &Captioner,
    cfg: &Config,
    speaker: &Speaker,
    max_audio_seconds: f64,
    batch: usize,
) -> Result<(Vec<AudioExample>, Vec<Skipped>)> {
    let size = captioner.image_size();
    let limits = Limits::default();
    let mut resizer = BicubicResizer::new();
    let mut aligner = Aligner::new(speaker.clone(), mel_params(&cfg.mel), cfg.mel.top_db);
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut pending: Vec<(usize, Vec<u8>, AudioExample)> = Vec::new();
    let flush = |pending: &mut Vec<(usize, Vec<u8>, AudioExample)>,
                 examples: &mut Vec<AudioExample>|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let images: Vec<&[u8]> = pending.iter().map(|(_, rgb, _)| rgb.as_slice()).collect();
        let pixels = captioner.pixels(&images)?;
        let emb = captioner.embed(&pixels).to_device(Device::Cpu);
        for (row, (_, _, mut e)) in pending.drain(..).enumerate() {
            e.embedding = Vec::<f32>::try_from(emb.get(row as i64)).torch()?;
            examples.push(e);
        }
        Ok(())
    };
    for (i, t) in triplets.iter().enumerate() {
        let skip = |reason: String| Skipped {
            id: t.id.clone(),
            reason,
        };
        let Some(wav) = &t.audio else {
            skipped.push(skip("no reference audio".into()));
            continue;
        };
        let Some(text) = t.captions.first().filter(|c| !c.trim().is_empty()) else {
            skipped.push(skip("no caption for the audio to speak".into()));
            continue;
        };
        let clip = match reference_clip(wav, cfg, max_audio_seconds) {
            Ok(c) => c,
            Err(e) => {
                skipped.push(skip(format!("audio: {e}")));
                continue;
            }
        };
        let rgb = match prepare(&t.image, &limits, size, size, &mut resizer) {
            Ok(p) => p.rgb,
            Err(e) => {
                skipped.push(skip(format!("image: {e}")));
                continue;
            }
        };
        let (mel_db, frames) = clip_mel_db(&clip, cfg);
        let (char_ids, char_words) = cfg.generator.encode(text);
        let durations = aligner.align(text, &mel_db, frames, &char_words)?;
        pending.push((
            i,
            rgb,
            AudioExample {
                id: t.id.clone(),
                split: t.split.clone(),
                embedding: Vec::new(),
                text: text.clone(),
                char_ids,
                durations,
                waveform: clip,
                mel_db,
                frames,
            },
        ));
        if pending.len() >= batch.max(1) {
            flush(&mut pending, &mut examples)?;
        }
    }
    flush(&mut pending, &mut examples)?;
    Ok((examples, skipped))
}

/// Indices of training and validation examples (see [`split_indices`]).
pub fn split_examples(
    examples: &[AudioExample],
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let s: Vec<Option<&str>> = examples.iter().map(|e| e.split.as_deref()).collect();
    split_indices(&s, val_fraction, seed)
}

/// Where a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrainSummary {
    /// Epochs completed in all (including those before a resume).
    pub epochs: usize,
    /// Optimizer steps per network.
    pub steps: i64,
    /// Training and validation examples.
    pub train_examples: usize,
    /// Validation examples.
    pub val_examples: usize,
    /// The last epoch's validation record (as logged).
    pub last_validation: serde_json::Value,
    /// The output folder.
    pub out: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    epoch: usize,
    steps: i64,
    options: AudioTrainOptions,
}

/// One batch on the model's device.
struct Batch {
    emb: Tensor,
    text: TextBatch,
    /// The length regulator's plan under the aligned durations.
    plan: FramePlan,
    /// `ln(1 + frames)` of every character, `[batch, chars]` (0 on padding).
    log_durations: Tensor,
    /// Normalized log-mels, `[batch, n_mels, max(frames, segment)]`, each padded with
    /// its own floor.
    mel: Tensor,
    /// Clips zero-padded to `mel`'s frames × hop samples.
    wave: Tensor,
    /// `wave` with `n_fft / 2` zeros either side: centred STFT frames as plain slices.
    wave_ctx: Tensor,
}

fn batch(examples: &[AudioExample], idx: &[usize], model: &NeuralAudio, segment: usize) -> Batch {
    let cfg = model.config();
    let (d, m, hop) = (cfg.generator.embed_dim, cfg.mel.n_mels, cfg.mel.hop);
    let t = idx
        .iter()
        .map(|&i| examples[i].frames)
        .max()
        .unwrap_or(1)
        .max(segment);
    let n = idx.len();
    let mut emb = Vec::with_capacity(n * d);
    let mut mel = vec![0f32; n * m * t];
    let mut wave = vec![0f32; n * t * hop];
    for (row, &i) in idx.iter().enumerate() {
        let e = &examples[i];
        emb.extend_from_slice(&e.embedding);
        let floor = e.mel_db.iter().copied().fold(f32::INFINITY, f32::min);
        let dst = &mut mel[row * m * t..(row + 1) * m * t];
        for b in 0..m {
            let band = &mut dst[b * t..(b + 1) * t];
            band[..e.frames].copy_from_slice(&e.mel_db[b * e.frames..(b + 1) * e.frames]);
            band[e.frames..].fill(floor);
        }
        wave[row * t * hop..row * t * hop + e.waveform.len()].copy_from_slice(&e.waveform);
    }
    let dev = model.device();
    let ids: Vec<Vec<i64>> = idx.iter().map(|&i| examples[i].char_ids.clone()).collect();
    let text = TextBatch::new(&ids, dev);
    let durations: Vec<Vec<usize>> = idx.iter().map(|&i| examples[i].durations.clone()).collect();
    let l = text.ids.size()[1] as usize;
    let mut log_d = vec![0f32; n * l];
    for (row, dur) in durations.iter().enumerate() {
        for (c, &f) in dur.iter().enumerate() {
            log_d[row * l + c] = (f as f32).ln_1p();
        }
    }
    let wave = Tensor::from_slice(&wave)
        .reshape([n as i64, (t * hop) as i64])
        .to_device(dev);
    let half = (cfg.mel.n_fft / 2) as i64;
    Batch {
        emb: Tensor::from_slice(&emb)
            .reshape([n as i64, d as i64])
            .to_device(dev),
        plan: FramePlan::new(&durations, dev),
        log_durations: Tensor::from_slice(&log_d)
            .reshape([n as i64, l as i64])
            .to_device(dev),
        text,
        mel: model.normalize(
            &Tensor::from_slice(&mel)
                .reshape([n as i64, m as i64, t as i64])
                .to_device(dev),
        ),
        wave_ctx: wave.constant_pad_nd([half, half]),
        wave,
    }
}

/// The generator's loss on a batch: the mel MSE over real frames (normalized units)
/// and the MSE of the predicted log-durations over real characters.
fn generator_loss(model: &NeuralAudio, b: &Batch) -> (Tensor, Tensor) {
    let g = model.generator();
    let states = g.encode(&b.text.ids, &b.emb, &b.text.mask);
    let log_d = g.log_durations(&states, &b.text.mask);
    let pred = g.decode(&states, &b.plan);
    let t = pred.size()[2];
    let mask = b.plan.mask.transpose(1, 2); // [batch, 1, frames]
    let n_mels = pred.size()[1] as f64;
    let mel_loss = ((pred - b.mel.narrow(2, 0, t)).square() * &mask).sum(Kind::Float)
        / (mask.sum(Kind::Float) * n_mels).clamp_min(1.0);
    let char_mask = b.text.mask.squeeze_dim(2);
    let dur_loss = ((log_d - &b.log_durations).square() * &char_mask).sum(Kind::Float)
        / char_mask.sum(Kind::Float).clamp_min(1.0);
    (mel_loss, dur_loss)
}

fn params_with_prefix(model: &NeuralAudio, prefix: &str) -> Vec<(String, Tensor)> {
    crate::models::weights::named_variables(model.var_store())
        .into_iter()
        .filter(|(n, _)| n.starts_with(&format!("{prefix}.")))
        .collect()
}

/// The training set's average log-mel, frame by frame (`[n_mels][max_frames]`, dB):
/// the baseline the generator must beat. Frame `t` averages the clips that reach it;
/// frames no clip reaches take the last average.
pub fn mean_log_mel(examples: &[AudioExample], idx: &[usize], cfg: &Config) -> Vec<f32> {
    let (m, t) = (cfg.mel.n_mels, cfg.mel.max_frames);
    let mut sum = vec![0f64; m * t];
    let mut count = vec![0usize; t];
    for &i in idx {
        let e = &examples[i];
        for f in 0..e.frames.min(t) {
            count[f] += 1;
            for b in 0..m {
                sum[b * t + f] += f64::from(e.mel_db[b * e.frames + f]);
            }
        }
    }
    let mut out = vec![0f32; m * t];
    for f in 0..t {
        for b in 0..m {
            out[b * t + f] = if count[f] > 0 {
                (sum[b * t + f] / count[f] as f64) as f32
            } else if f > 0 {
                out[b * t + f - 1]
            } else {
                -100.0
            };
        }
    }
    out
}

/// Trains (or, with `resume`, continues training) and writes the output folder.
/// `on_record` sees every log record as it is written.
#[allow(clippy::too_many_arguments)]
pub fn train_audio(
    examples: &[AudioExample],
    model_config: &Config,
    opts: &AudioTrainOptions,
    device: Device,
    out: &Path,
    resume: Option<&Path>,
    on_record: &mut dyn FnMut(&serde_json::Value),
) -> Result<AudioTrainSummary> {
    let (mut model, state) = match resume {
        Some(dir) => {
            let model = NeuralAudio::from_dir(dir, device)?;
            let path = dir.join(STATE_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let state: TrainerState = serde_json::from_str(&text)?;
            (model, Some(state))
        }
        None => {
            tch::manual_seed(opts.seed as i64);
            (NeuralAudio::new(model_config, device)?, None)
        }
    };
    // A resumed run keeps the options that shaped its data and order; only the epoch
    // count may grow.
    let opts = match &state {
        Some(s) => AudioTrainOptions {
            epochs: opts.epochs,
            ..s.options.clone()
        },
        None => opts.clone(),
    };
    opts.validate(model.config())?;
    let cfg = model.config().clone();
    if let Some(e) = examples
        .iter()
        .find(|e| e.embedding.len() != cfg.generator.embed_dim)
    {
        return Err(Error::Config(format!(
            "example {}: embedding has {} values, the generator takes {}",
            e.id,
            e.embedding.len(),
            cfg.generator.embed_dim
        )));
    }
    let (train_idx, val_idx) = split_examples(examples, opts.val_fraction, opts.seed);
    if train_idx.is_empty() {
        return Err(Error::Config(
            "train audio: no training examples with audio".into(),
        ));
    }
    if state.is_none() {
        // Normalization from the training targets, fixed for the life of the model.
        let vals: Vec<f64> = train_idx
            .iter()
            .flat_map(|&i| examples[i].mel_db.iter().map(|&v| f64::from(v)))
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        model.set_normalization(mean as f32, var.sqrt().max(1e-3) as f32);
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut log = JsonlLog::append(&out.join(LOG_FILE))?;
    let mut emit = |log: &mut JsonlLog, v: serde_json::Value| -> Result<()> {
        log.write(&v)?;
        on_record(&v);
        Ok(())
    };

    let adam = AdamConfig::default();
    let gen_params = params_with_prefix(&model, GENERATOR);
    let voc_params = params_with_prefix(&model, VOCODER);
    let count = |p: &[(String, Tensor)]| p.iter().map(|(_, t)| t.numel()).sum::<usize>();
    let (gen_n, voc_n) = (count(&gen_params), count(&voc_params));
    let mut gen_opt = AdamW::new(gen_params, adam);
    let mut voc_opt = AdamW::new(voc_params, adam);
    let start_epoch = match (&state, resume) {
        (Some(s), Some(dir)) => {
            gen_opt.load_state(&dir.join(GEN_OPT_FILE))?;
            voc_opt.load_state(&dir.join(VOC_OPT_FILE))?;
            s.epoch
        }
        _ => 0,
    };
    if start_epoch == 0 {
        emit(
            &mut log,
            json!({
                "event": "start",
                "train_examples": train_idx.len(),
                "val_examples": val_idx.len(),
                "generator_parameters": gen_n,
                "vocoder_parameters": voc_n,
                "normalization": {"mean": model.config().mel_mean, "std": model.config().mel_std},
                "options": opts,
                "config": model.config(),
            }),
        )?;
    } else {
        emit(
            &mut log,
            json!({"event": "resume", "epoch": start_epoch, "step": gen_opt.steps()}),
        )?;
    }

    let mean_mel = mean_log_mel(examples, &train_idx, &cfg);
    let baselines = if val_idx.is_empty() {
        serde_json::Value::Null
    } else {
        let mut b = griffin_lim_baseline(examples, &val_idx, &cfg, opts.griffin_lim_iters);
        merge(
            &mut b,
            mean_mel_baseline(examples, &val_idx, &mean_mel, &cfg),
        );
        b
    };
    let hop = cfg.mel.hop as i64;
    let seg = opts.segment_frames as i64;
    let crop_starts: Vec<Vec<usize>> = examples
        .iter()
        .map(|e| voiced_crop_starts(&e.waveform, e.frames, cfg.mel.hop, opts.segment_frames))
        .collect();
    let fb = mel_filterbank_tensor(&cfg, model.device());
    let (head_fft, head_hop) = model.vocoder().head_stft();
    // Samples under the head's frames of a crop, from the context-padded clip: frame j
    // of the crop centred on sample j·head_hop of the crop.
    let head_span = (seg * cfg.vocoder.head_upsample as i64 - 1) * head_hop + head_fft;
    let mut last_validation = serde_json::Value::Null;
    for epoch in start_epoch..opts.epochs {
        let t0 = Instant::now();
        let mut order = train_idx.clone();
        let mut rng = SplitMix64::new(opts.seed, epoch as u64);
        rng.shuffle(&mut order);
        let batches = length_buckets(order, examples, opts.batch_size, &mut rng);
        let (mut gen_sum, mut voc_sum, mut n_steps) = (0.0, 0.0, 0usize);
        for chunk in &batches {
            let b = batch(examples, chunk, &model, opts.segment_frames);
            // Generator: text + embedding → normalized log-mel under the aligned
            // durations, and the durations themselves.
            gen_opt.zero_grad();
            let (mel_loss, dur_loss) = generator_loss(&model, &b);
            let gen_loss = &mel_loss + &dur_loss * opts.duration_weight;
            gen_loss.backward();
            gen_opt.clip_grad_norm(opts.grad_clip);
            gen_opt.step(opts.lr);
            // Vocoder: a random crop of each reference log-mel → its samples.
            let mut mels = Vec::with_capacity(chunk.len());
            let mut waves = Vec::with_capacity(chunk.len());
            let mut contexts = Vec::with_capacity(chunk.len());
            for (row, &i) in chunk.iter().enumerate() {
                let row = row as i64;
                // Crops start where the reference has sound: an all-silent crop has no
                // spectrum to converge to, and its spectral-convergence term explodes.
                let starts = &crop_starts[i];
                let s = starts[rng.below(starts.len() as u64) as usize] as i64;
                mels.push(b.mel.get(row).narrow(1, s, seg));
                waves.push(b.wave.get(row).narrow(0, s * hop, (seg - 1) * hop));
                contexts.push(b.wave_ctx.get(row).narrow(0, s * hop, head_span));
            }
            let mel_seg = Tensor::stack(&mels, 0);
            let (wave_seg, ctx_seg) = (Tensor::stack(&waves, 0), Tensor::stack(&contexts, 0));
            voc_opt.zero_grad();
            let parts = vocoder_loss(&model, &mel_seg, &wave_seg, &ctx_seg, &fb, &opts);
            let voc_loss = parts.total();
            voc_loss.backward();
            voc_opt.clip_grad_norm(opts.grad_clip);
            voc_opt.step(opts.lr);
            let (g, v) = (gen_loss.double_value(&[]), voc_loss.double_value(&[]));
            if !g.is_finite() || !v.is_finite() {
                return Err(Error::Stage {
                    stage: "train audio".into(),
                    message: format!(
                        "loss is not finite at step {} (generator {g}, vocoder {v}); lower --lr",
                        gen_opt.steps()
                    ),
                });
            }
            gen_sum += g;
            voc_sum += v;
            n_steps += 1;
            let mut record = json!({"event": "step", "epoch": epoch + 1, "step": gen_opt.steps(),
                "generator_loss": num(g), "generator_mel_loss": num(mel_loss.double_value(&[])),
                "generator_duration_loss": num(dur_loss.double_value(&[])),
                "vocoder_loss": num(v), "lr": opts.lr});
            merge(&mut record, parts.values());
            emit(&mut log, record)?;
        }
        let mut record = json!({
            "event": "epoch",
            "epoch": epoch + 1,
            "step": gen_opt.steps(),
            "train_generator_loss": num(gen_sum / n_steps as f64),
            "train_vocoder_loss": num(voc_sum / n_steps as f64),
            "seconds": num(t0.elapsed().as_secs_f64()),
        });
        if !val_idx.is_empty() {
            let t1 = Instant::now();
            merge(&mut record, validate(&model, examples, &val_idx, &opts)?);
            merge(&mut record, baselines.clone());
            merge(
                &mut record,
                json!({"val_seconds": num(t1.elapsed().as_secs_f64())}),
            );
        }
        emit(&mut log, record.clone())?;
        last_validation = record;
        let ckpt = out.join(format!("checkpoint-epoch-{}", epoch + 1));
        save_checkpoint(&model, &gen_opt, &voc_opt, &opts, epoch + 1, &ckpt)?;
        model.save(out)?;
    }
    Ok(AudioTrainSummary {
        epochs: opts.epochs.max(start_epoch),
        steps: gen_opt.steps(),
        train_examples: train_idx.len(),
        val_examples: val_idx.len(),
        last_validation,
        out: out.to_path_buf(),
    })
}

/// Batches of similar length, so that padding does not double the generator's work:
/// the shuffled order is cut into windows of `BUCKET_BATCHES` batches, each window
/// sorted by frames and cut into batches, and the batches shuffled.
fn length_buckets(
    order: Vec<usize>,
    examples: &[AudioExample],
    batch_size: usize,
    rng: &mut SplitMix64,
) -> Vec<Vec<usize>> {
    const BUCKET_BATCHES: usize = 32;
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(batch_size * BUCKET_BATCHES) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| examples[i].frames);
        batches.extend(w.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// Crop starts (in frames) whose segment carries at least 1% of the clip's loudest
/// segment's energy; every start when the clip is silent; 0 when the clip is shorter
/// than a segment (its crop is padded).
fn voiced_crop_starts(wave: &[f32], frames: usize, hop: usize, seg: usize) -> Vec<usize> {
    if frames <= seg {
        return vec![0];
    }
    let last = frames - seg;
    let energy: Vec<f64> = (0..=last)
        .map(|s| {
            let a = (s * hop).min(wave.len());
            let b = ((s + seg) * hop).min(wave.len());
            wave[a..b].iter().map(|&v| f64::from(v).powi(2)).sum()
        })
        .collect();
    let max = energy.iter().copied().fold(0.0, f64::max);
    let voiced: Vec<usize> = (0..=last)
        .filter(|&s| max > 0.0 && energy[s] >= 0.01 * max)
        .collect();
    if voiced.is_empty() {
        (0..=last).collect()
    } else {
        voiced
    }
}

/// The mel filterbank of the model's log-mel, `[n_mels, n_fft / 2 + 1]`.
fn mel_filterbank_tensor(cfg: &Config, device: Device) -> Tensor {
    let p = mel_params(&cfg.mel);
    let fb = mel_filterbank(p.sr, p.stft.n_fft, p.n_mels, p.fmin, p.fmax, p.htk, p.norm);
    Tensor::from_slice(&fb)
        .reshape([p.n_mels as i64, (p.stft.n_fft / 2 + 1) as i64])
        .to_device(device)
}

/// The vocoder loss of one batch of crops and its weighted parts.
struct VocoderLoss {
    parts: Vec<(&'static str, Tensor)>,
}

impl VocoderLoss {
    fn total(&self) -> Tensor {
        let mut parts = self.parts.iter();
        let first = parts.next().map(|(_, t)| t.shallow_clone());
        parts.fold(first.unwrap_or_else(|| Tensor::from(0f32)), |a, (_, t)| {
            a + t
        })
    }

    fn values(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.parts
                .iter()
                .map(|(k, t)| (format!("vocoder_{k}"), num(t.double_value(&[]))))
                .collect(),
        )
    }
}

/// `mel_seg` (normalized crops) → waveform, scored against `wave_seg` (the crops'
/// `(seg − 1) · hop` samples) and, at the head, against the STFT of `ctx_seg` (the
/// crops' samples with the head window's context).
fn vocoder_loss(
    model: &NeuralAudio,
    mel_seg: &Tensor,
    wave_seg: &Tensor,
    ctx_seg: &Tensor,
    fb: &Tensor,
    opts: &AudioTrainOptions,
) -> VocoderLoss {
    let v = model.vocoder();
    let (n_fft, head_hop) = v.head_stft();
    let head = v.head(mel_seg);
    let y = v.synthesize(&head.spectrum, wave_seg.size()[1]);
    let frames = head.phase.size()[2];
    let target = stft_frames(ctx_seg, n_fft, head_hop).narrow(2, 0, frames);
    let s = spectrum_losses(&head.log_magnitude, &head.phase, &head.spectrum, &target);
    let mel = log_mel_l1(
        &y,
        wave_seg,
        fb,
        n_fft,
        head_hop,
        f64::from(model.config().mel_std),
    );
    let stft = multi_resolution_stft(&y, wave_seg, &SPEECH_16K);
    VocoderLoss {
        parts: vec![
            ("mel", mel * opts.mel_weight),
            ("stft", stft * opts.stft_weight),
            ("magnitude", s.magnitude * opts.magnitude_weight),
            ("phase", s.phase * opts.phase_weight),
            ("complex", s.complex * opts.complex_weight),
        ],
    }
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn save_checkpoint(
    model: &NeuralAudio,
    gen_opt: &AdamW,
    voc_opt: &AdamW,
    opts: &AudioTrainOptions,
    epoch: usize,
    dir: &Path,
) -> Result<()> {
    model.save(dir)?;
    crate::models::weights::save(&gen_opt.state(), &dir.join(GEN_OPT_FILE))?;
    crate::models::weights::save(&voc_opt.state(), &dir.join(VOC_OPT_FILE))?;
    let state = TrainerState {
        epoch,
        steps: gen_opt.steps(),
        options: opts.clone(),
    };
    let path = dir.join(STATE_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&state)? + "\n")
        .map_err(|e| Error::io(&path, e))
}

fn mean(v: &[f64]) -> f64 {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}

/// The relative power floor of the reported LSD and MCD, dB (librosa's `top_db`).
const RELATIVE_FLOOR_DB: f64 = 80.0;

/// The audio metrics the card compares: 1024/256 STFTs, LSD and MCD floored 80 dB
/// below the reference's peak (`metrics::audio::PowerFloor`).
fn metric_params() -> am::AudioMetricParams {
    am::AudioMetricParams {
        floor: am::PowerFloor::BelowPeak(RELATIVE_FLOOR_DB),
        ..am::AudioMetricParams::default()
    }
}

/// Means of per-clip waveform scores, keyed `{prefix}_{metric}`; LSD and MCD also under
/// the pinned absolute floor (`_abs`), for the record.
fn score_clips(prefix: &str, pairs: &[(&[f32], Vec<f32>)], sr: u32) -> serde_json::Value {
    let p = metric_params();
    let abs = am::AudioMetricParams::default();
    let rows = pairs.iter().map(|(reference, y)| {
        let s = am::score_audio(reference, y, sr, &p).values();
        let a = am::score_audio(reference, y, sr, &abs);
        let mut row = [0.0; 8];
        row[..6].copy_from_slice(&s);
        row[6..].copy_from_slice(&[a.lsd_db, a.mcd]);
        row
    });
    let mut names = am::AudioScores::NAMES.to_vec();
    names.extend(["lsd_db_abs", "mcd_abs"]);
    column_means(prefix, &names, rows)
}

/// `{prefix}_{name}`: the mean of each column of `rows`, named by `names` in order.
fn column_means<const N: usize>(
    prefix: &str,
    names: &[&str],
    rows: impl Iterator<Item = [f64; N]>,
) -> serde_json::Value {
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); N];
    for row in rows {
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    serde_json::Value::Object(
        names
            .iter()
            .zip(&cols)
            .map(|(n, c)| (format!("{prefix}_{n}"), num(mean(c))))
            .collect(),
    )
}

/// A generated log-mel (`[n_mels][frames]` dB) laid over a reference's frames: cut,
/// or padded with the reference's floor (what it is silent at).
fn fit_frames(mel: &[f32], frames: usize, e: &AudioExample, n_mels: usize) -> Vec<f32> {
    let floor = e.mel_db.iter().copied().fold(f32::INFINITY, f32::min);
    let mut out = vec![floor; n_mels * e.frames];
    let k = frames.min(e.frames);
    for b in 0..n_mels {
        out[b * e.frames..b * e.frames + k].copy_from_slice(&mel[b * frames..b * frames + k]);
    }
    out
}

/// Means of per-clip log-mel scores of `estimates` (each already over its reference's
/// frames), keyed `{prefix}_{metric}`: MSE in dB², MCD of the mel spectra (relative
/// floor), and the original design's four figures on normalized log-mels.
fn score_mels(
    prefix: &str,
    examples: &[AudioExample],
    idx: &[usize],
    estimates: &[Vec<f32>],
    cfg: &Config,
) -> serde_json::Value {
    let p = am::AudioMetricParams {
        n_mels: cfg.mel.n_mels,
        ..metric_params()
    };
    let power = |db: &[f32]| -> Vec<f32> { db.iter().map(|&v| 10f32.powf(v / 10.0)).collect() };
    let rows = idx.iter().zip(estimates).map(|(&i, est)| {
        let e = &examples[i];
        let mse_db2 = am::mse(&e.mel_db, est);
        let mcd = am::mcd_of_mels(&power(&e.mel_db), e.frames, &power(est), e.frames, &p);
        let n = am::log_mel_scores(&e.mel_db, est, cfg.mel.top_db);
        [mse_db2, mcd, n.mse, n.mae, n.snr_db, n.spectral_convergence]
    });
    let names = [
        "mel_mse_db2",
        "mcd",
        "norm_mse",
        "norm_mae",
        "norm_snr_db",
        "norm_sc",
    ];
    column_means(prefix, &names, rows)
}

/// Validation (see the module docs): the generator with predicted and with aligned
/// durations, the vocoder on reference log-mels (and its time), the whole path.
fn validate(
    model: &NeuralAudio,
    examples: &[AudioExample],
    idx: &[usize],
    opts: &AudioTrainOptions,
) -> Result<serde_json::Value> {
    let _guard = tch::no_grad_guard();
    let cfg = model.config();
    let n_mels = cfg.mel.n_mels;
    let sr = cfg.mel.sample_rate;
    let mut generated = Vec::with_capacity(idx.len());
    let mut aligned = Vec::with_capacity(idx.len());
    let mut e2e = Vec::with_capacity(idx.len());
    let mut vocoded = Vec::with_capacity(idx.len());
    let mut vocoder_seconds = 0.0;
    for chunk in idx.chunks(opts.batch_size.max(1)) {
        let items: Vec<(&[f32], &str)> = chunk
            .iter()
            .map(|&i| (examples[i].embedding.as_slice(), examples[i].text.as_str()))
            .collect();
        for (&i, s) in chunk.iter().zip(model.synthesize(&items)?) {
            let e = &examples[i];
            generated.push(fit_frames(&s.mel_db, s.frames, e, n_mels));
            e2e.push((e.waveform.as_slice(), s.waveform));
        }
        // With the aligned durations: what the decoder does when the lengths are right.
        let b = batch(examples, chunk, model, 2);
        let g = model.generator();
        let states = g.encode(&b.text.ids, &b.emb, &b.text.mask);
        let pred = model
            .denormalize(&g.decode(&states, &b.plan))
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        for (row, &i) in chunk.iter().enumerate() {
            let e = &examples[i];
            let m = pred.get(row as i64).narrow(1, 0, e.frames as i64);
            aligned.push(Vec::<f32>::try_from(m.flatten(0, -1)).torch()?);
            let t0 = Instant::now();
            let x = Tensor::from_slice(&e.mel_db)
                .reshape([1, n_mels as i64, e.frames as i64])
                .to_device(model.device());
            let y = model.vocoder().forward(&model.normalize(&x)).get(0);
            let y = Vec::<f32>::try_from(y.to_kind(Kind::Float).to_device(Device::Cpu)).torch()?;
            vocoder_seconds += t0.elapsed().as_secs_f64();
            vocoded.push((e.waveform.as_slice(), y));
        }
    }
    let mut out = json!({"val_vocoder_seconds": num(vocoder_seconds)});
    merge(
        &mut out,
        score_mels("val_generator", examples, idx, &generated, cfg),
    );
    merge(
        &mut out,
        score_mels("val_generator_aligned", examples, idx, &aligned, cfg),
    );
    merge(&mut out, score_clips("val_vocoder", &vocoded, sr));
    merge(&mut out, score_clips("val_end_to_end", &e2e, sr));
    Ok(out)
}

/// The mean log-mel of the training set laid over each held-out reference's frames,
/// scored as the generator is.
fn mean_mel_baseline(
    examples: &[AudioExample],
    idx: &[usize],
    mean_mel: &[f32],
    cfg: &Config,
) -> serde_json::Value {
    let n_mels = cfg.mel.n_mels;
    let estimates: Vec<Vec<f32>> = idx
        .iter()
        .map(|&i| fit_frames(mean_mel, cfg.mel.max_frames, &examples[i], n_mels))
        .collect();
    score_mels("mean_mel", examples, idx, &estimates, cfg)
}

/// Griffin-Lim from the same reference log-mels (mel → NNLS magnitudes → Griffin-Lim,
/// `init=None`, momentum 0.99): what the vocoder must beat, in quality and in time.
fn griffin_lim_baseline(
    examples: &[AudioExample],
    idx: &[usize],
    cfg: &Config,
    iters: usize,
) -> serde_json::Value {
    let p = mel_params(&cfg.mel);
    let t0 = Instant::now();
    let pairs: Vec<(&[f32], Vec<f32>)> = idx
        .iter()
        .map(|&i| {
            let e = &examples[i];
            let y = mel_db_to_audio(&e.mel_db, e.frames, &p, iters, Some(e.waveform.len()));
            (e.waveform.as_slice(), y)
        })
        .collect();
    let seconds = t0.elapsed().as_secs_f64();
    let mut out = score_clips("griffin_lim", &pairs, cfg.mel.sample_rate);
    merge(&mut out, json!({"griffin_lim_seconds": num(seconds)}));
    out
}
