//! `generator`: caption text and image embedding → normalized log-mel
//! (`[n_mels, frames]` per item, frames chosen by the model).
//!
//! FastSpeech-shaped (Ren et al., 2019) and small: characters are embedded, the pooled
//! image embedding is projected and added to every one, and a stack of residual
//! convolution blocks (layer norm → convolution → ReLU) encodes them. A duration
//! predictor (more blocks, then one value per character: `ln(1 + frames)`) says how many
//! mel frames each character lasts; the length regulator repeats each character's
//! state that many times, adds where in its character the frame lies (0 at its first
//! frame, towards 1 at its last), and the decoder's blocks and a linear read-out make
//! the mel frames.
//!
//! Why text: each spoken reference reads one caption whose wording varies (five
//! templates per scene), so an image alone does not determine its clip, and under MSE
//! the best image-only answer is the average spectrum. The text determines it (eSpeak
//! is deterministic); the image embedding remains an input, as the original design had
//! it. Padding positions are masked after every block, so a batch's padding never
//! reaches a real position through the convolutions.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::config::Config;

/// `encoder.N`, `duration.N`, `decoder.N`: `x + relu(conv(norm(x)))`, masked.
#[derive(Debug)]
struct ConvBlock {
    norm: nn::LayerNorm,
    conv: nn::Conv1D,
}

impl ConvBlock {
    fn new(p: nn::Path, dim: i64, kernel: i64) -> Self {
        ConvBlock {
            norm: nn::layer_norm(&p / "norm", vec![dim], Default::default()),
            conv: nn::conv1d(
                &p / "conv",
                dim,
                dim,
                kernel,
                nn::ConvConfig {
                    padding: kernel / 2,
                    ..Default::default()
                },
            ),
        }
    }

    /// `[batch, len, dim]`, `mask` `[batch, len, 1]` → the same.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Tensor {
        // Masked after the norm as well: a padding position's norm is its bias, which
        // the convolution would carry into the real positions beside it.
        let h = (x.apply(&self.norm) * mask)
            .transpose(1, 2)
            .apply(&self.conv)
            .transpose(1, 2)
            .relu();
        (x + h) * mask
    }
}

fn blocks(p: nn::Path, n: usize, dim: i64, kernel: i64) -> Vec<ConvBlock> {
    (0..n)
        .map(|i| ConvBlock::new(&p / i, dim, kernel))
        .collect()
}

/// Where each output frame comes from: the length regulator's plan for a batch.
#[derive(Debug)]
pub struct FramePlan {
    /// `[batch, frames]` index of the character each frame repeats.
    pub index: Tensor,
    /// `[batch, frames, 1]` position of the frame within its character, in [0, 1).
    pub position: Tensor,
    /// `[batch, frames, 1]` 1 for real frames, 0 for padding.
    pub mask: Tensor,
    /// Real frames of each item.
    pub frames: Vec<usize>,
}

impl FramePlan {
    /// The plan for per-character frame counts (`durations[b][c]`).
    pub fn new(durations: &[Vec<usize>], device: Device) -> Self {
        let frames: Vec<usize> = durations.iter().map(|d| d.iter().sum()).collect();
        let t = frames.iter().copied().max().unwrap_or(0).max(1);
        let b = durations.len();
        let mut index = vec![0i64; b * t];
        let mut position = vec![0f32; b * t];
        let mut mask = vec![0f32; b * t];
        for (row, d) in durations.iter().enumerate() {
            let mut f = 0;
            for (c, &n) in d.iter().enumerate() {
                for k in 0..n {
                    index[row * t + f] = c as i64;
                    position[row * t + f] = k as f32 / n as f32;
                    mask[row * t + f] = 1.0;
                    f += 1;
                }
            }
        }
        let shape = [b as i64, t as i64];
        FramePlan {
            index: Tensor::from_slice(&index).reshape(shape).to_device(device),
            position: Tensor::from_slice(&position)
                .reshape([b as i64, t as i64, 1])
                .to_device(device),
            mask: Tensor::from_slice(&mask)
                .reshape([b as i64, t as i64, 1])
                .to_device(device),
            frames,
        }
    }
}

/// The mel generator; parameters live under `generator.`.
#[derive(Debug)]
pub struct MelGenerator {
    embed: nn::Embedding,
    image_proj: nn::Linear,
    encoder: Vec<ConvBlock>,
    duration: Vec<ConvBlock>,
    duration_out: nn::Linear,
    position: nn::Linear,
    decoder: Vec<ConvBlock>,
    out: nn::Linear,
    dim: i64,
}

impl MelGenerator {
    /// Builds the network under `p` (weights initialised; load a checkpoint over them).
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let g = &cfg.generator;
        let (dim, k) = (g.dim as i64, g.kernel as i64);
        MelGenerator {
            embed: nn::embedding(&p / "embed", g.vocab_size() as i64, dim, Default::default()),
            image_proj: nn::linear(
                &p / "image_proj",
                g.embed_dim as i64,
                dim,
                Default::default(),
            ),
            encoder: blocks(&p / "encoder", g.encoder_layers, dim, k),
            duration: blocks(&p / "duration", g.duration_layers, dim, k),
            duration_out: nn::linear(&p / "duration_out", dim, 1, Default::default()),
            position: nn::linear(&p / "position", 1, dim, Default::default()),
            decoder: blocks(&p / "decoder", g.decoder_layers, dim, k),
            out: nn::linear(&p / "out", dim, cfg.mel.n_mels as i64, Default::default()),
            dim,
        }
    }

    /// Character states `[batch, chars, dim]` of `ids` (`[batch, chars]`, padded with
    /// 0) and `embedding` (`[batch, embed_dim]`); `mask` is `[batch, chars, 1]`.
    pub fn encode(&self, ids: &Tensor, embedding: &Tensor, mask: &Tensor) -> Tensor {
        let mut x =
            (ids.apply(&self.embed) + self.image_proj.forward(embedding).unsqueeze(1)) * mask;
        for b in &self.encoder {
            x = b.forward(&x, mask);
        }
        x
    }

    /// Predicted `ln(1 + frames)` of every character, `[batch, chars]`.
    pub fn log_durations(&self, states: &Tensor, mask: &Tensor) -> Tensor {
        let mut x = states.shallow_clone();
        for b in &self.duration {
            x = b.forward(&x, mask);
        }
        (self.duration_out.forward(&x) * mask).squeeze_dim(2)
    }

    /// Normalized log-mel `[batch, n_mels, frames]` of character states under `plan`
    /// (padding frames are zero).
    pub fn decode(&self, states: &Tensor, plan: &FramePlan) -> Tensor {
        let (b, t) = plan.index.size2().expect("[batch, frames]");
        let gathered = states.gather(
            1,
            &plan.index.unsqueeze(2).expand([b, t, self.dim], false),
            false,
        );
        let mut x = (gathered + self.position.forward(&plan.position)) * &plan.mask;
        for blk in &self.decoder {
            x = blk.forward(&x, &plan.mask);
        }
        (self.out.forward(&x) * &plan.mask).transpose(1, 2)
    }

    /// Frame counts from predicted log-durations: `round(e^d − 1)`, at least 0, the
    /// real characters of each item only, and at most `max_frames` in all (the last
    /// characters are cut); an item predicted shorter than 2 frames gets 2 on its first
    /// character (the shortest log-mel a waveform can be made from).
    pub fn durations_from(
        log_durations: &Tensor,
        chars: &[usize],
        max_frames: usize,
    ) -> Vec<Vec<usize>> {
        let d = log_durations.to_kind(Kind::Float).to_device(Device::Cpu);
        chars
            .iter()
            .enumerate()
            .map(|(row, &n)| {
                let mut left = max_frames;
                let mut out: Vec<usize> = (0..n)
                    .map(|c| {
                        let v = d.double_value(&[row as i64, c as i64]);
                        let f = (v.exp() - 1.0).round().clamp(0.0, max_frames as f64) as usize;
                        let f = f.min(left);
                        left -= f;
                        f
                    })
                    .collect();
                let total: usize = out.iter().sum();
                if total < 2 {
                    if let Some(first) = out.first_mut() {
                        *first += 2 - total;
                    }
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::audio::Config;

    #[test]
    fn the_plan_repeats_characters_and_masks_padding() {
        let plan = FramePlan::new(&[vec![2, 0, 1], vec![1]], Device::Cpu);
        assert_eq!(plan.frames, vec![3, 1]);
        assert_eq!(
            Vec::<i64>::try_from(plan.index.flatten(0, -1)).unwrap(),
            vec![0, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            Vec::<f32>::try_from(plan.position.flatten(0, -1)).unwrap(),
            vec![0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            Vec::<f32>::try_from(plan.mask.flatten(0, -1)).unwrap(),
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn padding_does_not_change_an_item() {
        tch::manual_seed(0);
        let mut cfg = Config::new(8);
        cfg.generator.dim = 16;
        let vs = nn::VarStore::new(Device::Cpu);
        let g = MelGenerator::new(vs.root() / "generator", &cfg);
        let (ids, _) = cfg.generator.encode("a red star");
        let n = ids.len() as i64;
        let emb = Tensor::randn([1, 8], (Kind::Float, Device::Cpu));
        let alone = {
            let mask = Tensor::ones([1, n, 1], (Kind::Float, Device::Cpu));
            let s = g.encode(&Tensor::from_slice(&ids).unsqueeze(0), &emb, &mask);
            let plan = FramePlan::new(&[vec![2; n as usize]], Device::Cpu);
            g.decode(&s, &plan)
        };
        let padded = {
            let mut p = ids.clone();
            p.extend([0; 5]);
            let mut m = vec![1f32; n as usize];
            m.extend([0.0; 5]);
            let mask = Tensor::from_slice(&m).reshape([1, n + 5, 1]);
            let s = g.encode(&Tensor::from_slice(&p).unsqueeze(0), &emb, &mask);
            let mut d = vec![2usize; n as usize];
            d.extend([0; 5]);
            g.decode(&s, &FramePlan::new(&[d], Device::Cpu))
        };
        let diff = (alone - padded).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn predicted_durations_are_capped() {
        let d = Tensor::from_slice(&[0.0f32, 2.0, 10.0, -3.0]).reshape([1, 4]);
        // e^0 − 1 = 0, e^2 − 1 ≈ 6, e^10 − 1 capped by what is left of 10.
        assert_eq!(
            MelGenerator::durations_from(&d, &[4], 10),
            vec![vec![0, 6, 4, 0]]
        );
        let zero = Tensor::zeros([1, 2], (Kind::Float, Device::Cpu));
        assert_eq!(
            MelGenerator::durations_from(&zero, &[2], 10),
            vec![vec![2, 0]]
        );
    }
}
