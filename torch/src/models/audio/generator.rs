//! `generator`: image embedding → normalized log-mel (`[batch, n_mels, frames]`).
//!
//! A linear projection seeds a small `channels[0] × (n_mels / 2^k) × (frames / 2^k)`
//! grid, then `k` blocks of nearest ×2 upsampling, 3×3 convolution, group norm and leaky
//! ReLU grow it to full size, and a 3×3 convolution reads out one channel. Nearest
//! upsampling plus convolution rather than transposed convolution: it avoids the
//! checkerboard pattern transposed convolutions leave on spectrograms.

use tch::nn::{self, Module};
use tch::Tensor;

use super::config::Config;

const SLOPE: f64 = 0.2;

pub(crate) fn leaky(x: &Tensor, slope: f64) -> Tensor {
    x.maximum(&(x * slope))
}

/// Groups for a group norm over `c` channels: the largest of 8, 4, 2, 1 dividing it.
fn groups(c: i64) -> i64 {
    [8, 4, 2, 1].into_iter().find(|g| c % g == 0).unwrap_or(1)
}

/// `blocks.N`: upsample ×2, `conv`, `norm`, leaky ReLU.
#[derive(Debug)]
struct UpBlock {
    conv: nn::Conv2D,
    norm: nn::GroupNorm,
}

impl UpBlock {
    fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        let conv = nn::conv2d(
            &p / "conv",
            cin,
            cout,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        );
        let norm = nn::group_norm(&p / "norm", groups(cout), cout, Default::default());
        UpBlock { conv, norm }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let up = x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None);
        leaky(&up.apply(&self.conv).apply(&self.norm), SLOPE)
    }
}

/// The mel generator; parameters live under `generator.`.
#[derive(Debug)]
pub struct MelGenerator {
    proj: nn::Linear,
    blocks: Vec<UpBlock>,
    out: nn::Conv2D,
    seed_shape: [i64; 3],
}

impl MelGenerator {
    /// Builds the network under `p` (weights initialised; load a checkpoint over them).
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let ch: Vec<i64> = cfg.generator.channels.iter().map(|&c| c as i64).collect();
        let k = ch.len() - 1;
        let f0 = (cfg.mel.n_mels >> k) as i64;
        let t0 = (cfg.mel.frames >> k) as i64;
        let proj = nn::linear(
            &p / "proj",
            cfg.generator.embed_dim as i64,
            ch[0] * f0 * t0,
            Default::default(),
        );
        let blocks = (0..k)
            .map(|i| UpBlock::new(&p / "blocks" / i, ch[i], ch[i + 1]))
            .collect();
        let out = nn::conv2d(
            &p / "out",
            ch[k],
            1,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        );
        MelGenerator {
            proj,
            blocks,
            out,
            seed_shape: [ch[0], f0, t0],
        }
    }

    /// `[batch, embed_dim]` → `[batch, n_mels, frames]`, normalized log-mel.
    pub fn forward(&self, embedding: &Tensor) -> Tensor {
        let b = embedding.size()[0];
        let [c, f, t] = self.seed_shape;
        let mut x = leaky(&self.proj.forward(embedding).reshape([b, c, f, t]), SLOPE);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        x.apply(&self.out).squeeze_dim(1)
    }
}
