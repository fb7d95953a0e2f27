//! `vision_model`: a pre-LN ViT whose every output token (class token included, after
//! `post_layernorm`) feeds the text decoder's cross-attention.

use tch::nn::{self, Module};
use tch::Tensor;

use super::config::VisionConfig;
use super::{layer_norm as ln, linear};

/// `embeddings`: patch convolution, class token, learned positions.
#[derive(Debug)]
struct VisionEmbeddings {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: Tensor,
    hidden: i64,
}

impl VisionEmbeddings {
    fn new(p: nn::Path, cfg: &VisionConfig) -> Self {
        let d = cfg.hidden_size as i64;
        let patch = cfg.patch_size as i64;
        VisionEmbeddings {
            class_embedding: p.var("class_embedding", &[1, 1, d], nn::Init::Const(0.0)),
            patch_embedding: nn::conv2d(
                &p / "patch_embedding",
                3,
                d,
                patch,
                nn::ConvConfig {
                    stride: patch,
                    ws_init: nn::Init::Const(0.0),
                    bs_init: nn::Init::Const(0.0),
                    ..Default::default()
                },
            ),
            position_embedding: p.var(
                "position_embedding",
                &[1, cfg.num_positions() as i64, d],
                nn::Init::Const(0.0),
            ),
            hidden: d,
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let b = pixels.size()[0];
        let patches = pixels
            .apply(&self.patch_embedding)
            .flatten(2, -1)
            .transpose(1, 2);
        let cls = self.class_embedding.expand([b, 1, self.hidden], true);
        Tensor::cat(&[cls, patches], 1) + &self.position_embedding
    }
}

/// `self_attn`: fused `qkv` (q | k | v row blocks) and `projection`.
#[derive(Debug)]
struct Attention {
    qkv: nn::Linear,
    projection: nn::Linear,
    heads: i64,
    scale: f64,
}

impl Attention {
    fn new(p: nn::Path, cfg: &VisionConfig) -> Self {
        let d = cfg.hidden_size as i64;
        let heads = cfg.num_attention_heads as i64;
        Attention {
            qkv: linear(&p / "qkv", d, 3 * d),
            projection: linear(&p / "projection", d, d),
            heads,
            scale: ((d / heads) as f64).powf(-0.5),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().expect("vision tokens are [batch, tokens, width]");
        let qkv = x
            .linear(&self.qkv.ws, self.qkv.bs.as_ref())
            .reshape([b, t, 3, self.heads, d / self.heads])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        // Fused attention: never materializes the [B, H, T, T] scores (577² per head
        // at 384 px), which is most of the vision tower's memory traffic.
        Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            false,
            self.scale,
            false,
        )
        .permute([0, 2, 1, 3])
        .reshape([b, t, d])
        .linear(&self.projection.ws, self.projection.bs.as_ref())
    }
}

#[derive(Debug)]
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    layer_norm2: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(p: nn::Path, cfg: &VisionConfig) -> Self {
        let d = cfg.hidden_size as i64;
        let i = cfg.intermediate_size as i64;
        let eps = cfg.layer_norm_eps;
        EncoderLayer {
            self_attn: Attention::new(&p / "self_attn", cfg),
            layer_norm1: ln(&p / "layer_norm1", cfg.hidden_size, eps),
            fc1: linear(&p / "mlp" / "fc1", d, i),
            fc2: linear(&p / "mlp" / "fc2", i, d),
            layer_norm2: ln(&p / "layer_norm2", cfg.hidden_size, eps),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x + self.self_attn.forward(&x.apply(&self.layer_norm1));
        let m = h
            .apply(&self.layer_norm2)
            .linear(&self.fc1.ws, self.fc1.bs.as_ref())
            .gelu("none")
            .linear(&self.fc2.ws, self.fc2.bs.as_ref());
        h + m
    }
}

/// `vision_model`.
#[derive(Debug)]
pub struct VisionModel {
    embeddings: VisionEmbeddings,
    layers: Vec<EncoderLayer>,
    post_layernorm: nn::LayerNorm,
}

impl VisionModel {
    /// Creates the parameters under `p` (`vision_model`).
    pub fn new(p: nn::Path, cfg: &VisionConfig) -> Self {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(&p / "encoder" / "layers" / i, cfg))
            .collect();
        VisionModel {
            embeddings: VisionEmbeddings::new(&p / "embeddings", cfg),
            layers,
            post_layernorm: ln(&p / "post_layernorm", cfg.hidden_size, cfg.layer_norm_eps),
        }
    }

    /// `[B, 3, S, S]` normalized pixels → `last_hidden_state` `[B, 1 + (S/P)², D]`.
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        self.post_layernorm.forward(&x)
    }
}

impl VisionModel {
    /// `pooler_output`: `post_layernorm` applied once more to the class token, as
    /// transformers does; a `[B, D]` summary of each image.
    pub fn pooled(&self, last_hidden_state: &Tensor) -> Tensor {
        self.post_layernorm.forward(&last_hidden_state.select(1, 0))
    }
}
