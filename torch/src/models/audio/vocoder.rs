//! `vocoder`: normalized log-mel (`[batch, n_mels, frames]`) → waveform
//! (`[batch, frames · hop]`, in [-1, 1]).
//!
//! The shape of MelGAN's generator (Kumar et al., 2019) without its adversarial
//! training: an input convolution, then per upsampling stage a transposed convolution
//! (kernel 2r, stride r) that halves the channels and a stack of dilated residual
//! units, and a tanh read-out. Trained with sample MSE plus a multi-resolution STFT
//! loss (`train::audio`), which fixes the spectral envelope well and the phase only
//! roughly.

use tch::nn::{self, Module};
use tch::Tensor;

use super::config::Config;
use super::generator::leaky;

const SLOPE: f64 = 0.1;

fn conv1d(
    p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    dilation: i64,
    ws_init: Option<nn::Init>,
) -> nn::Conv1D {
    let mut c = nn::ConvConfig {
        padding: dilation * (k - 1) / 2,
        dilation,
        ..Default::default()
    };
    if let Some(init) = ws_init {
        c.ws_init = init;
    }
    nn::conv1d(p, cin, cout, k, c)
}

/// The last layer of every residual branch, and the read-out, start near zero: each
/// residual unit starts as the identity and the first waveforms are quiet, rather than
/// the variance doubling at every one of the nine units and the tanh saturating.
const SMALL: nn::Init = nn::Init::Randn {
    mean: 0.0,
    stdev: 1e-3,
};

/// `res.S.U`: `x + conv2(lrelu(conv1(lrelu(x))))`, conv1 dilated 3-tap, conv2 1-tap.
#[derive(Debug)]
struct ResUnit {
    conv1: nn::Conv1D,
    conv2: nn::Conv1D,
}

impl ResUnit {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = leaky(x, SLOPE).apply(&self.conv1);
        x + leaky(&h, SLOPE).apply(&self.conv2)
    }
}

/// The vocoder; parameters live under `vocoder.`.
#[derive(Debug)]
pub struct Vocoder {
    conv_pre: nn::Conv1D,
    ups: Vec<nn::ConvTranspose1D>,
    res: Vec<Vec<ResUnit>>,
    conv_post: nn::Conv1D,
}

impl Vocoder {
    /// Builds the network under `p`.
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let v = &cfg.vocoder;
        let mut c = v.channels as i64;
        let conv_pre = conv1d(&p / "conv_pre", cfg.mel.n_mels as i64, c, 7, 1, None);
        let mut ups = Vec::new();
        let mut res = Vec::new();
        for (s, &r) in v.upsample.iter().enumerate() {
            let r = r as i64;
            // Kernel 2r, stride r; padding and output padding chosen so that the
            // output is exactly r times the input for odd r as well as even.
            ups.push(nn::conv_transpose1d(
                &p / "ups" / s,
                c,
                c / 2,
                2 * r,
                nn::ConvTransposeConfig {
                    stride: r,
                    padding: r / 2 + r % 2,
                    output_padding: r % 2,
                    ..Default::default()
                },
            ));
            c /= 2;
            res.push(
                v.dilations
                    .iter()
                    .enumerate()
                    .map(|(u, &d)| {
                        let q = &p / "res" / s / u;
                        ResUnit {
                            conv1: conv1d(&q / "conv1", c, c, 3, d as i64, None),
                            conv2: conv1d(&q / "conv2", c, c, 1, 1, Some(SMALL)),
                        }
                    })
                    .collect(),
            );
        }
        let conv_post = conv1d(&p / "conv_post", c, 1, 7, 1, Some(SMALL));
        Vocoder {
            conv_pre,
            ups,
            res,
            conv_post,
        }
    }

    /// `[batch, n_mels, frames]` → `[batch, frames · hop]`.
    pub fn forward(&self, mel: &Tensor) -> Tensor {
        let mut x = mel.apply(&self.conv_pre);
        for (up, units) in self.ups.iter().zip(&self.res) {
            x = up.forward(&leaky(&x, SLOPE));
            for unit in units {
                x = unit.forward(&x);
            }
        }
        leaky(&x, SLOPE)
            .apply(&self.conv_post)
            .squeeze_dim(1)
            .tanh()
    }
}
