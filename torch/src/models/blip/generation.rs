//! Caption generation with transformers' semantics: greedy, sampling and beam search,
//! with its logits processors in its order (repetition penalty, no-repeat n-grams,
//! minimum new tokens, then temperature, top-k, top-p when sampling).
//!
//! Every row starts from `[DEC]` plus its own prompt word pieces; rows of a batch are
//! left-padded and positions come from the attention mask, so each row's output equals
//! its single-image output (transformers' own column edit of `input_ids` breaks this).

use tch::{Kind, Tensor};

use super::text::TextLMHeadModel;
use crate::TorchResult;
use capstream::error::{Error, Result};

pub use capstream::stages::caption::{EarlyStopping, GenerationConfig};

/// Special ids generation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// Generation stops after this token (`[SEP]`).
    pub sep: i64,
    /// Left padding (`[PAD]`).
    pub pad: i64,
}

/// Applies the non-sampling processors in place to `scores` `[R, V]` (f32) for rows
/// whose token sequences are `seqs`; `new_tokens` were generated so far.
fn process(
    scores: &mut Tensor,
    seqs: &[Vec<i64>],
    new_tokens: usize,
    cfg: &GenerationConfig,
    ids: SpecialIds,
) {
    if cfg.repetition_penalty != 1.0 {
        for (r, seq) in seqs.iter().enumerate() {
            let idx = Tensor::from_slice(seq);
            let mut row = scores.get(r as i64);
            let sel = row.index_select(0, &idx);
            let p = cfg.repetition_penalty;
            let new = (&sel * p).where_self(&sel.lt(0.0), &(&sel / p));
            let _ = row.index_copy_(0, &idx, &new);
        }
    }
    let n = cfg.no_repeat_ngram_size;
    if n > 0 {
        for (r, seq) in seqs.iter().enumerate() {
            if seq.len() + 1 < n {
                continue;
            }
            let prefix = &seq[seq.len() + 1 - n..];
            let banned: Vec<i64> = seq
                .windows(n)
                .filter(|w| &w[..n - 1] == prefix)
                .map(|w| w[n - 1])
                .collect();
            if !banned.is_empty() {
                let _ = scores.get(r as i64).index_fill_(
                    0,
                    &Tensor::from_slice(&banned),
                    f64::NEG_INFINITY,
                );
            }
        }
    }
    if new_tokens < cfg.min_new_tokens {
        let _ = scores.narrow(1, ids.sep, 1).fill_(f64::NEG_INFINITY);
    }
}

/// Temperature, top-k and top-p, then one draw per row.
fn sample(scores: &Tensor, cfg: &GenerationConfig) -> Tensor {
    let mut s = scores / cfg.temperature;
    let v = s.size()[1];
    if cfg.top_k > 0 && (cfg.top_k as i64) < v {
        let (kth, _) = s.topk(cfg.top_k as i64, -1, true, true);
        let threshold = kth.narrow(1, cfg.top_k as i64 - 1, 1);
        s = s.masked_fill(&s.lt_tensor(&threshold), f64::NEG_INFINITY);
    }
    if cfg.top_p < 1.0 {
        let (sorted, order) = s.sort(-1, false);
        let cum = sorted.softmax(-1, Kind::Float).cumsum(-1, Kind::Float);
        let remove = cum.le(1.0 - cfg.top_p);
        // Keep at least the most probable token.
        let _ = remove.narrow(1, v - 1, 1).fill_(0);
        let remove = remove.scatter(1, &order, &remove);
        s = s.masked_fill(&remove, f64::NEG_INFINITY);
    }
    s.softmax(-1, Kind::Float)
        .multinomial(1, false)
        .squeeze_dim(1)
}

/// Last-position logits as f32 `[R, V]`.
fn last_logits(logits: &Tensor) -> Tensor {
    let t = logits.size()[1];
    logits.select(1, t - 1).to_kind(Kind::Float)
}

/// Left-pads `prompts` into `[R, L]` ids and mask.
fn left_pad(prompts: &[Vec<i64>], pad: i64, device: tch::Device) -> (Tensor, Tensor) {
    let l = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(prompts.len() * l);
    let mut mask = Vec::with_capacity(prompts.len() * l);
    for p in prompts {
        ids.extend(std::iter::repeat_n(pad, l - p.len()).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0i64, l - p.len()).chain(std::iter::repeat_n(1, p.len())));
    }
    let r = prompts.len() as i64;
    (
        Tensor::from_slice(&ids)
            .reshape([r, l as i64])
            .to_device(device),
        Tensor::from_slice(&mask)
            .reshape([r, l as i64])
            .to_device(device),
    )
}

/// Generates for each image (row of `image_embeds`) from its prompt (token ids starting
/// with `[DEC]`). Returns, per image, `num_return_sequences` id sequences: prompt
/// included, ending with `[SEP]` when it was generated.
pub fn generate(
    decoder: &TextLMHeadModel,
    image_embeds: &Tensor,
    prompts: &[Vec<i64>],
    cfg: &GenerationConfig,
    ids: SpecialIds,
) -> Result<Vec<Vec<Vec<i64>>>> {
    cfg.validate()?;
    let b = image_embeds.size()[0] as usize;
    if prompts.len() != b || prompts.iter().any(Vec::is_empty) {
        return Err(Error::Config(format!(
            "generation: {} non-empty prompts needed for {b} images",
            b
        )));
    }
    if cfg.num_beams > 1 {
        return beam_search(decoder, image_embeds, prompts, cfg, ids);
    }
    // Sampling with several sequences per image runs each image's rows side by side.
    let n = cfg.num_return_sequences;
    let rows: Vec<Vec<i64>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), n))
        .collect();
    let embeds = if n > 1 {
        image_embeds.repeat_interleave_self_int(n as i64, 0, None)
    } else {
        image_embeds.shallow_clone()
    };
    let device = embeds.device();
    if cfg.do_sample {
        tch::manual_seed(cfg.seed as i64);
    }
    let (input, mask) = left_pad(&rows, ids.pad, device);
    let mut cache = decoder.new_cache(&embeds);
    let mut logits = last_logits(&decoder.forward(&input, Some(&mask), &mut cache));
    let mut seqs = rows;
    let mut open = vec![true; seqs.len()];
    for step in 0..cfg.max_new_tokens {
        process(&mut logits, &seqs, step, cfg, ids);
        let next = if cfg.do_sample {
            sample(&logits, cfg)
        } else {
            logits.argmax(-1, false)
        };
        let next: Vec<i64> = Vec::<i64>::try_from(next.to_device(tch::Device::Cpu)).torch()?;
        let mut fed = Vec::with_capacity(next.len());
        for (r, &tok) in next.iter().enumerate() {
            if open[r] {
                seqs[r].push(tok);
                open[r] = tok != ids.sep;
                fed.push(tok);
            } else {
                fed.push(ids.pad);
            }
        }
        if !open.iter().any(|&o| o) || step + 1 == cfg.max_new_tokens {
            break;
        }
        let input = Tensor::from_slice(&fed).unsqueeze(1).to_device(device);
        logits = last_logits(&decoder.forward(&input, None, &mut cache));
    }
    Ok(seqs.chunks(n).map(|c| c.to_vec()).collect())
}

/// One finished or running hypothesis.
#[derive(Debug, Clone)]
struct Hyp {
    seq: Vec<i64>,
    score: f32,
    finished: bool,
}

fn beam_search(
    decoder: &TextLMHeadModel,
    image_embeds: &Tensor,
    prompts: &[Vec<i64>],
    cfg: &GenerationConfig,
    ids: SpecialIds,
) -> Result<Vec<Vec<Vec<i64>>>> {
    let b = prompts.len();
    let k = cfg.num_beams;
    let keep = 2 * k; // one stop token: max(2, 1 + 1) * num_beams candidates
    let device = image_embeds.device();
    let rows: Vec<Vec<i64>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), k))
        .collect();
    let prompt_len = rows.iter().map(Vec::len).max().unwrap_or(1);
    let max_length = prompt_len + cfg.max_new_tokens;
    let embeds = image_embeds.repeat_interleave_self_int(k as i64, 0, None);
    let (input, mask) = left_pad(&rows, ids.pad, device);
    let mut cache = decoder.new_cache(&embeds);
    let mut logits = last_logits(&decoder.forward(&input, Some(&mask), &mut cache));

    let mut running: Vec<Vec<i64>> = rows; // b * k
    let mut running_scores: Vec<f32> = (0..b * k)
        .map(|i| if i % k == 0 { 0.0 } else { -1e9 })
        .collect();
    let mut finished: Vec<Vec<Hyp>> = (0..b)
        .map(|_| {
            vec![
                Hyp {
                    seq: Vec::new(),
                    score: -1e9,
                    finished: false
                };
                k
            ]
        })
        .collect();
    let mut heuristic_open = vec![true; b];
    let lp = cfg.length_penalty;
    let mut cur_len = prompt_len;
    loop {
        let mut log_probs = logits.log_softmax(-1, Kind::Float);
        process(&mut log_probs, &running, cur_len - prompt_len, cfg, ids);
        let v = log_probs.size()[1];
        let scores = log_probs
            + Tensor::from_slice(&running_scores)
                .to_device(device)
                .unsqueeze(1);
        let (top_scores, top_idx) =
            scores
                .reshape([b as i64, k as i64 * v])
                .topk(keep as i64, -1, true, true);
        let top_scores: Vec<f32> =
            Vec::<f32>::try_from(top_scores.to_device(tch::Device::Cpu).flatten(0, -1)).torch()?;
        let top_idx: Vec<i64> =
            Vec::<i64>::try_from(top_idx.to_device(tch::Device::Cpu).flatten(0, -1)).torch()?;
        let at_max = cur_len + 1 >= max_length;
        let mut next_running = Vec::with_capacity(b * k);
        let mut next_scores = Vec::with_capacity(b * k);
        let mut source_rows = Vec::with_capacity(b * k);
        let mut all_hit = true;
        for item in 0..b {
            let cands: Vec<(f32, usize, i64, bool)> = (0..keep)
                .map(|j| {
                    let s = top_scores[item * keep + j];
                    let flat = top_idx[item * keep + j];
                    let beam = (flat / v) as usize;
                    let tok = flat % v;
                    (s, beam, tok, tok == ids.sep || at_max)
                })
                .collect();
            all_hit &= cands.iter().all(|c| c.3);
            // Running beams: the best candidates that did not stop.
            let mut order: Vec<(f32, usize)> = cands
                .iter()
                .enumerate()
                .map(|(j, c)| (c.0 + if c.3 { -1.0e9 } else { 0.0 }, j))
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for &(s, j) in order.iter().take(k) {
                let (_, beam, tok, _) = cands[j];
                let src = item * k + beam;
                let mut seq = running[src].clone();
                seq.push(tok);
                next_running.push(seq);
                next_scores.push(s);
                source_rows.push(src as i64);
            }
            // Finished hypotheses: stopping candidates among the top `k`, length-normalized.
            let full = finished[item].iter().all(|h| h.finished)
                && cfg.early_stopping == EarlyStopping::True;
            let denom = ((cur_len + 1 - prompt_len) as f64).powf(lp) as f32;
            let mut merged: Vec<Hyp> = finished[item].clone();
            for (j, c) in cands.iter().enumerate() {
                let just = c.3 && j < k;
                let mut s = c.0 / denom;
                if full {
                    s += -1.0e9;
                }
                if !heuristic_open[item] {
                    s += -1.0e9;
                }
                if !just {
                    s += -1.0e9;
                }
                let mut seq = running[item * k + c.1].clone();
                seq.push(c.2);
                merged.push(Hyp {
                    seq,
                    score: s,
                    finished: just,
                });
            }
            let mut idx: Vec<usize> = (0..merged.len()).collect();
            idx.sort_by(|&a, &b| merged[b].score.total_cmp(&merged[a].score).then(a.cmp(&b)));
            finished[item] = idx.iter().take(k).map(|&i| merged[i].clone()).collect();
        }
        running = next_running;
        running_scores = next_scores;
        cur_len += 1;
        // transformers' early-stop heuristic, per batch item.
        for item in 0..b {
            let best_len = if cfg.early_stopping == EarlyStopping::Never && lp > 0.0 {
                max_length - prompt_len
            } else {
                cur_len - prompt_len
            };
            let best_possible = running_scores[item * k] / (best_len as f64).powf(lp) as f32;
            let fin = &finished[item];
            let min_score = fin.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
            let improvable = fin
                .iter()
                .any(|h| best_possible > if h.finished { min_score } else { -1.0e9 });
            heuristic_open[item] &= improvable;
        }
        let improvement_possible = heuristic_open.iter().any(|&o| o);
        let exists_open = !(finished.iter().all(|f| f.iter().all(|h| h.finished))
            && cfg.early_stopping == EarlyStopping::True);
        if !(improvement_possible && exists_open && !all_hit) {
            break;
        }
        cache.reorder(&Tensor::from_slice(&source_rows).to_device(device));
        let last: Vec<i64> = running
            .iter()
            .map(|s| *s.last().expect("non-empty"))
            .collect();
        let input = Tensor::from_slice(&last).unsqueeze(1).to_device(device);
        logits = last_logits(&decoder.forward(&input, None, &mut cache));
    }
    Ok(finished
        .into_iter()
        .map(|f| {
            f.into_iter()
                .take(cfg.num_return_sequences)
                .map(|h| strip_after_sep(h.seq, prompt_len, ids))
                .collect()
        })
        .collect())
}

/// Cuts a hypothesis after its first generated `[SEP]` and drops left padding.
fn strip_after_sep(mut seq: Vec<i64>, prompt_len: usize, ids: SpecialIds) -> Vec<i64> {
    if let Some(p) = seq.iter().skip(prompt_len).position(|&t| t == ids.sep) {
        seq.truncate(prompt_len + p + 1);
    }
    seq
}
