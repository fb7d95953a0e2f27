//! `vocoder`: normalized log-mel (`[batch, n_mels, frames]`) → waveform
//! (`[batch, (frames − 1) · hop]`).
//!
//! The shape of Vocos (Siuzdak, ICLR 2024), small: a 7-tap input convolution, a stack of
//! ConvNeXt blocks at the mel frame rate, and a head that predicts, for
//! `head_upsample` STFT frames per mel frame, the log-magnitude and the phase of every
//! bin; an inverse STFT (periodic Hann, `n_fft` = the mel's, hop = `hop /
//! head_upsample`, centred) makes the waveform. The upsampling is the iSTFT's, so the
//! network never works at the sample rate; and the phase is predicted as an angle whose
//! cosine and sine make the spectrum, so it wraps by itself. Two STFT frames per mel
//! frame give the inverse the 75% overlap Vocos uses; at the mel's own hop (50%) the
//! frames barely constrain each other's phase.
//!
//! Why not the MelGAN-shaped network this replaced: without a discriminator its
//! transposed convolutions never learned a phase (spectral convergence 0.81 against
//! Griffin-Lim's 0.27), and it ran at the sample rate. Trained without a GAN in
//! `train::audio` (log-mel, multi-resolution STFT and direct magnitude and phase
//! losses on the head).

use tch::nn;
use tch::{Kind, Tensor};

use super::config::Config;

/// Magnitudes are `exp` of the head's output, capped as Vocos caps them so that an early
/// step cannot overflow the inverse STFT; 1000 rather than Vocos's 100, because a
/// full-scale tone reaches |S| = n_fft / 4 = 256 in one bin at this FFT size.
const MAX_MAGNITUDE: f64 = 1000.0;

/// `blocks.N`: depthwise 7-tap convolution, layer norm, pointwise MLP (GELU), layer
/// scale, residual.
#[derive(Debug)]
struct ConvNeXtBlock {
    dwconv: nn::Conv1D,
    norm: nn::LayerNorm,
    pwconv1: nn::Linear,
    pwconv2: nn::Linear,
    gamma: Tensor,
}

impl ConvNeXtBlock {
    fn new(p: nn::Path, dim: i64, intermediate: i64, scale: f64) -> Self {
        let dwconv = nn::conv1d(
            &p / "dwconv",
            dim,
            dim,
            7,
            nn::ConvConfig {
                padding: 3,
                groups: dim,
                ..Default::default()
            },
        );
        let norm = nn::layer_norm(&p / "norm", vec![dim], Default::default());
        let pwconv1 = nn::linear(&p / "pwconv1", dim, intermediate, Default::default());
        let pwconv2 = nn::linear(&p / "pwconv2", intermediate, dim, Default::default());
        let gamma = p.var("gamma", &[dim], nn::Init::Const(scale));
        ConvNeXtBlock {
            dwconv,
            norm,
            pwconv1,
            pwconv2,
            gamma,
        }
    }

    /// `[batch, dim, frames]` → the same.
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x
            .apply(&self.dwconv)
            .transpose(1, 2)
            .apply(&self.norm)
            .apply(&self.pwconv1)
            .gelu("none")
            .apply(&self.pwconv2);
        x + (h * &self.gamma).transpose(1, 2)
    }
}

/// The vocoder; parameters live under `vocoder.`.
#[derive(Debug)]
pub struct Vocoder {
    embed: nn::Conv1D,
    norm: nn::LayerNorm,
    blocks: Vec<ConvNeXtBlock>,
    final_norm: nn::LayerNorm,
    head: nn::Linear,
    n_fft: i64,
    hop: i64,
    sub: i64,
}

/// What the head predicts for a batch: the complex spectrum the inverse STFT reads, and
/// its parts, which training supervises directly.
#[derive(Debug)]
pub struct HeadOutput {
    /// Natural-log magnitude, `[batch, n_fft / 2 + 1, frames · head_upsample]`.
    pub log_magnitude: Tensor,
    /// Phase in radians (unwrapped as predicted), same shape.
    pub phase: Tensor,
    /// `exp(log_magnitude) · e^{i·phase}`, complex, same shape.
    pub spectrum: Tensor,
}

impl Vocoder {
    /// Builds the network under `p`.
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let v = &cfg.vocoder;
        let (dim, inter) = (v.dim as i64, v.intermediate as i64);
        let embed = nn::conv1d(
            &p / "embed",
            cfg.mel.n_mels as i64,
            dim,
            7,
            nn::ConvConfig {
                padding: 3,
                ..Default::default()
            },
        );
        let norm = nn::layer_norm(&p / "norm", vec![dim], Default::default());
        let scale = 1.0 / v.layers.max(1) as f64;
        let blocks = (0..v.layers)
            .map(|i| ConvNeXtBlock::new(&p / "blocks" / i, dim, inter, scale))
            .collect();
        let final_norm = nn::layer_norm(&p / "final_norm", vec![dim], Default::default());
        let n_fft = cfg.mel.n_fft as i64;
        let sub = v.head_upsample as i64;
        let head = nn::linear(&p / "head", dim, sub * (n_fft + 2), Default::default());
        Vocoder {
            embed,
            norm,
            blocks,
            final_norm,
            head,
            n_fft,
            hop: cfg.mel.hop as i64,
            sub,
        }
    }

    /// FFT size and hop of the head's inverse STFT.
    pub fn head_stft(&self) -> (i64, i64) {
        (self.n_fft, self.hop / self.sub)
    }

    /// `[batch, n_mels, frames]` → the head's spectrum.
    pub fn head(&self, mel: &Tensor) -> HeadOutput {
        let (b, _, t) = mel.size3().expect("[batch, n_mels, frames]");
        let mut x = mel
            .apply(&self.embed)
            .transpose(1, 2)
            .apply(&self.norm)
            .transpose(1, 2);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let bins = self.n_fft / 2 + 1;
        // [b, t, sub·(n_fft + 2)] → [b, t·sub, n_fft + 2] → [b, n_fft + 2, t·sub]: the
        // `sub` STFT frames of mel frame k are k·sub .. (k+1)·sub.
        let y = x
            .transpose(1, 2)
            .apply(&self.final_norm)
            .apply(&self.head)
            .reshape([b, t * self.sub, 2 * bins])
            .transpose(1, 2);
        let log_magnitude = y.narrow(1, 0, bins).clamp_max(MAX_MAGNITUDE.ln());
        let phase = y.narrow(1, bins, bins);
        let magnitude = log_magnitude.exp();
        let spectrum = Tensor::complex(&(&magnitude * phase.cos()), &(&magnitude * phase.sin()));
        HeadOutput {
            log_magnitude,
            phase,
            spectrum,
        }
    }

    /// The inverse STFT of a head spectrum: `samples` samples.
    pub fn synthesize(&self, spectrum: &Tensor, samples: i64) -> Tensor {
        let (n_fft, hop) = self.head_stft();
        let window = Tensor::hann_window(n_fft, (Kind::Float, spectrum.device()));
        spectrum.istft(
            n_fft,
            hop,
            n_fft,
            Some(&window),
            true,
            false,
            true,
            samples,
            false,
        )
    }

    /// `[batch, n_mels, frames]` → `[batch, (frames − 1) · hop]`.
    pub fn forward(&self, mel: &Tensor) -> Tensor {
        let t = mel.size()[2];
        let head = self.head(mel);
        self.synthesize(&head.spectrum, (t - 1) * self.hop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::audio::Config;

    fn small() -> Config {
        let mut c = Config::new(16);
        c.vocoder.dim = 32;
        c.vocoder.intermediate = 64;
        c.vocoder.layers = 2;
        c
    }

    #[test]
    fn shapes_and_finite_gradients() {
        tch::manual_seed(0);
        let cfg = small();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let v = Vocoder::new(vs.root() / "vocoder", &cfg);
        let mel = Tensor::randn([2, 80, 10], (Kind::Float, tch::Device::Cpu));
        let head = v.head(&mel);
        assert_eq!(head.log_magnitude.size(), [2, 513, 20]);
        let y = v.forward(&mel);
        assert_eq!(y.size(), [2, 9 * 512]);
        let loss = y.square().mean(Kind::Float);
        loss.backward();
        for (name, t) in vs.variables() {
            let g = t.grad();
            assert!(g.defined(), "{name} has no gradient");
            assert!(
                g.isfinite().all().int64_value(&[]) == 1,
                "{name}: gradient not finite"
            );
        }
    }
}
