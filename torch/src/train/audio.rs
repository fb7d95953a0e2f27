//! Training the neural audio path: the mel generator (image embedding → log-mel, MSE)
//! and the vocoder (log-mel → waveform, MSE plus multi-resolution STFT loss), on
//! image–caption–audio triplets.
//!
//! The caption model is frozen: its pooled image embeddings are computed once, as are
//! the targets (each reference clip resampled, cut or zero-padded to the
//! `(frames − 1) · hop` samples a `frames`-frame log-mel describes). Both networks train
//! in the same epochs on the same shuffled batches; the vocoder on random
//! `segment_frames`-frame crops of the reference log-mels, as MelGAN does, which makes
//! its steps cheap. Everything random comes from the seed: libtorch's generator for the
//! initial weights, [`SplitMix64`] streams per epoch for order and crops; on CPU with a
//! fixed thread count two runs give identical weights, and a resumed run the weights of
//! the uninterrupted one.
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
use super::loss::{multi_resolution_stft, SPEECH_16K};
use super::split::split_indices;
use crate::models::audio::{mel_params, Config, NeuralAudio, GENERATOR, VOCODER};
use crate::models::blip::Captioner;
use crate::TorchResult;
use capstream::datasets::triplets::Triplet;
use capstream::dsp::mel::{melspectrogram, power_to_db, DbRef};
use capstream::dsp::mel_inverse::mel_db_to_audio;
use capstream::dsp::resample::{resample, Quality};
use capstream::dsp::wav::read_wav;
use capstream::error::{Error, Result};
use capstream::imaging::{prepare, BicubicResizer, Limits};
use capstream::metrics::audio as am;
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
    /// Weight of the sample MSE in the vocoder loss.
    pub mse_weight: f64,
    /// Weight of the multi-resolution STFT loss in the vocoder loss.
    pub stft_weight: f64,
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
            segment_frames: 16,
            val_fraction: 0.1,
            grad_clip: 1.0,
            mse_weight: 1.0,
            stft_weight: 1.0,
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
        if self.segment_frames == 0 || self.segment_frames > cfg.mel.frames {
            return Err(Error::Config(format!(
                "train audio: segment_frames must be in 1..={}",
                cfg.mel.frames
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

/// One prepared example: its id, the frozen image embedding and the targets.
#[derive(Debug, Clone)]
pub struct AudioExample {
    /// Triplet id.
    pub id: String,
    /// Split of the triplet, if it had one.
    pub split: Option<String>,
    /// Pooled image embedding.
    pub embedding: Vec<f32>,
    /// Reference clip, `(frames − 1) · hop` samples.
    pub waveform: Vec<f32>,
    /// Its log-mel in dB, `[n_mels][frames]`.
    pub mel_db: Vec<f32>,
}

/// A triplet left out of training, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Triplet id.
    pub id: String,
    /// What was wrong.
    pub reason: String,
}

/// The reference clip of a WAV: mono, resampled, cut or zero-padded to `cfg`'s length.
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
    y.resize(cfg.mel.clip_samples(), 0.0);
    Ok(y)
}

/// The log-mel (dB) of a clip under `cfg`: `[n_mels][frames]`.
pub fn clip_mel_db(clip: &[f32], cfg: &Config) -> Vec<f32> {
    let (mel, _) = melspectrogram(clip, &mel_params(&cfg.mel));
    power_to_db(&mel, DbRef::Value(1.0), 1e-10, Some(cfg.mel.top_db))
}

/// Embeds every triplet's image with the caption model and prepares its targets.
/// Triplets without audio, or whose image or audio cannot be read, are skipped.
pub fn prepare_examples(
    triplets: &[Triplet],
    captioner: &Captioner,
    cfg: &Config,
    max_audio_seconds: f64,
    batch: usize,
) -> Result<(Vec<AudioExample>, Vec<Skipped>)> {
    let size = captioner.image_size();
    let limits = Limits::default();
    let mut resizer = BicubicResizer::new();
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut pending: Vec<(usize, Vec<u8>, Vec<f32>)> = Vec::new();
    let flush = |pending: &mut Vec<(usize, Vec<u8>, Vec<f32>)>,
                 examples: &mut Vec<AudioExample>|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let images: Vec<&[u8]> = pending.iter().map(|(_, rgb, _)| rgb.as_slice()).collect();
        let pixels = captioner.pixels(&images)?;
        let emb = captioner.embed(&pixels).to_device(Device::Cpu);
        for (row, (i, _, clip)) in pending.drain(..).enumerate() {
            let t = &triplets[i];
            examples.push(AudioExample {
                id: t.id.clone(),
                split: t.split.clone(),
                embedding: Vec::<f32>::try_from(emb.get(row as i64)).torch()?,
                mel_db: clip_mel_db(&clip, cfg),
                waveform: clip,
            });
        }
        Ok(())
    };
    for (i, t) in triplets.iter().enumerate() {
        let Some(wav) = &t.audio else {
            skipped.push(Skipped {
                id: t.id.clone(),
                reason: "no reference audio".into(),
            });
            continue;
        };
        let clip = match reference_clip(wav, cfg, max_audio_seconds) {
            Ok(c) => c,
            Err(e) => {
                skipped.push(Skipped {
                    id: t.id.clone(),
                    reason: format!("audio: {e}"),
                });
                continue;
            }
        };
        match prepare(&t.image, &limits, size, size, &mut resizer) {
            Ok(p) => pending.push((i, p.rgb, clip)),
            Err(e) => {
                skipped.push(Skipped {
                    id: t.id.clone(),
                    reason: format!("image: {e}"),
                });
                continue;
            }
        }
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

struct Tensors {
    emb: Tensor,
    mel: Tensor,
    wave: Tensor,
}

fn stack(examples: &[AudioExample], idx: &[usize], model: &NeuralAudio) -> Tensors {
    let cfg = model.config();
    let (d, m, f) = (cfg.generator.embed_dim, cfg.mel.n_mels, cfg.mel.frames);
    let padded = f * cfg.mel.hop;
    let mut emb = Vec::with_capacity(idx.len() * d);
    let mut mel = Vec::with_capacity(idx.len() * m * f);
    let mut wave = vec![0f32; idx.len() * padded];
    for (row, &i) in idx.iter().enumerate() {
        let e = &examples[i];
        emb.extend_from_slice(&e.embedding);
        mel.extend_from_slice(&e.mel_db);
        wave[row * padded..row * padded + e.waveform.len()].copy_from_slice(&e.waveform);
    }
    let n = idx.len() as i64;
    let dev = model.device();
    Tensors {
        emb: Tensor::from_slice(&emb)
            .reshape([n, d as i64])
            .to_device(dev),
        mel: model.normalize(
            &Tensor::from_slice(&mel)
                .reshape([n, m as i64, f as i64])
                .to_device(dev),
        ),
        wave: Tensor::from_slice(&wave)
            .reshape([n, padded as i64])
            .to_device(dev),
    }
}

fn params_with_prefix(model: &NeuralAudio, prefix: &str) -> Vec<(String, Tensor)> {
    crate::models::weights::named_variables(model.var_store())
        .into_iter()
        .filter(|(n, _)| n.starts_with(&format!("{prefix}.")))
        .collect()
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
    let mut gen_opt = AdamW::new(params_with_prefix(&model, GENERATOR), adam);
    let mut voc_opt = AdamW::new(params_with_prefix(&model, VOCODER), adam);
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

    let val = (!val_idx.is_empty()).then(|| stack(examples, &val_idx, &model));
    let baseline = griffin_lim_baseline(examples, &val_idx, &cfg, opts.griffin_lim_iters);
    let hop = cfg.mel.hop as i64;
    let seg = opts.segment_frames as i64;
    let crop_starts: Vec<Vec<usize>> = examples
        .iter()
        .map(|e| {
            voiced_crop_starts(
                &e.waveform,
                cfg.mel.frames,
                cfg.mel.hop,
                opts.segment_frames,
            )
        })
        .collect();
    let mut last_validation = serde_json::Value::Null;
    for epoch in start_epoch..opts.epochs {
        let t0 = Instant::now();
        let mut order = train_idx.clone();
        let mut rng = SplitMix64::new(opts.seed, epoch as u64);
        rng.shuffle(&mut order);
        let (mut gen_sum, mut voc_sum, mut n_steps) = (0.0, 0.0, 0usize);
        for chunk in order.chunks(opts.batch_size) {
            let b = stack(examples, chunk, &model);
            // Generator: embedding → normalized log-mel, MSE.
            gen_opt.zero_grad();
            let pred = model.generator().forward(&b.emb);
            let gen_loss = pred.mse_loss(&b.mel, tch::Reduction::Mean);
            gen_loss.backward();
            gen_opt.clip_grad_norm(opts.grad_clip);
            gen_opt.step(opts.lr);
            // Vocoder: a random crop of each reference log-mel → its samples.
            let mut mels = Vec::with_capacity(chunk.len());
            let mut waves = Vec::with_capacity(chunk.len());
            for (row, &i) in chunk.iter().enumerate() {
                let row = row as i64;
                // Crops start where the reference has sound: an all-silent crop has no
                // spectrum to converge to, and its spectral-convergence term explodes.
                let starts = &crop_starts[i];
                let s = starts[rng.below(starts.len() as u64) as usize] as i64;
                mels.push(b.mel.get(row).narrow(1, s, seg));
                waves.push(b.wave.get(row).narrow(0, s * hop, seg * hop));
            }
            let (mel_seg, wave_seg) = (Tensor::stack(&mels, 0), Tensor::stack(&waves, 0));
            voc_opt.zero_grad();
            let y = model.vocoder().forward(&mel_seg);
            let voc_loss = y.mse_loss(&wave_seg, tch::Reduction::Mean) * opts.mse_weight
                + multi_resolution_stft(&y, &wave_seg, &SPEECH_16K) * opts.stft_weight;
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
            emit(
                &mut log,
                json!({"event": "step", "epoch": epoch + 1, "step": gen_opt.steps(),
                       "generator_loss": num(g), "vocoder_loss": num(v), "lr": opts.lr}),
            )?;
        }
        let mut record = json!({
            "event": "epoch",
            "epoch": epoch + 1,
            "step": gen_opt.steps(),
            "train_generator_loss": num(gen_sum / n_steps as f64),
            "train_vocoder_loss": num(voc_sum / n_steps as f64),
            "seconds": num(t0.elapsed().as_secs_f64()),
        });
        if let Some(v) = &val {
            let metrics = validate(&model, v, examples, &val_idx)?;
            merge(&mut record, metrics);
            merge(&mut record, baseline.clone());
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

/// Crop starts (in frames) whose segment carries at least 1% of the clip's loudest
/// segment's energy; every start when the clip is silent.
fn voiced_crop_starts(wave: &[f32], frames: usize, hop: usize, seg: usize) -> Vec<usize> {
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

/// Validation: the generator's log-mel error (dB²), the vocoder on reference log-mels
/// (MSE, SNR, spectral convergence against the reference clip), and the whole path
/// (generator then vocoder: spectral convergence).
fn validate(
    model: &NeuralAudio,
    v: &Tensors,
    examples: &[AudioExample],
    idx: &[usize],
) -> Result<serde_json::Value> {
    let _guard = tch::no_grad_guard();
    let cfg = model.config();
    let samples = cfg.mel.clip_samples() as i64;
    let stft = capstream::dsp::StftParams::new(cfg.mel.n_fft, cfg.mel.hop);
    let pred = model.generator().forward(&v.emb);
    let mel_mse = (model.denormalize(&pred) - model.denormalize(&v.mel))
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    let vocoded = model
        .vocoder()
        .forward(&v.mel)
        .narrow(1, 0, samples)
        .to_device(Device::Cpu);
    let e2e = model
        .vocoder()
        .forward(&pred)
        .narrow(1, 0, samples)
        .to_device(Device::Cpu);
    let (mut mse, mut snr, mut sc, mut e2e_sc) = (vec![], vec![], vec![], vec![]);
    for (row, &i) in idx.iter().enumerate() {
        let reference = &examples[i].waveform;
        let y = Vec::<f32>::try_from(vocoded.get(row as i64)).torch()?;
        let z = Vec::<f32>::try_from(e2e.get(row as i64)).torch()?;
        mse.push(am::mse(reference, &y));
        snr.push(am::snr_db(reference, &y));
        sc.push(am::spectral_convergence(reference, &y, &stft));
        e2e_sc.push(am::spectral_convergence(reference, &z, &stft));
    }
    Ok(json!({
        "val_mel_mse_db2": num(mel_mse),
        "val_vocoder_mse": num(mean(&mse)),
        "val_vocoder_snr_db": num(mean(&snr)),
        "val_vocoder_sc": num(mean(&sc)),
        "val_end_to_end_sc": num(mean(&e2e_sc)),
    }))
}

/// Griffin-Lim from the same reference log-mels (mel → NNLS magnitudes → Griffin-Lim,
/// `init=None`, momentum 0.99): what the vocoder must beat.
fn griffin_lim_baseline(
    examples: &[AudioExample],
    idx: &[usize],
    cfg: &Config,
    iters: usize,
) -> serde_json::Value {
    let p = mel_params(&cfg.mel);
    let (mut snr, mut sc) = (vec![], vec![]);
    for &i in idx {
        let e = &examples[i];
        let y = mel_db_to_audio(
            &e.mel_db,
            cfg.mel.frames,
            &p,
            iters,
            Some(cfg.mel.clip_samples()),
        );
        snr.push(am::snr_db(&e.waveform, &y));
        sc.push(am::spectral_convergence(&e.waveform, &y, &p.stft));
    }
    json!({
        "griffin_lim_snr_db": num(mean(&snr)),
        "griffin_lim_sc": num(mean(&sc)),
    })
}
