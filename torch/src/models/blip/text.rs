//! `text_decoder`: a post-LN BERT decoder with cross-attention to the image in every
//! layer, and an LM head tied to the word embeddings.
//!
//! Generation runs it incrementally through [`TextCache`]: self-attention keys and
//! values grow by one position per step; cross-attention keys and values are computed
//! once per image and reused (candle recomputes them every step).

use tch::nn;
use tch::{Kind, Tensor};

use super::config::TextConfig;
use super::{embedding, layer_norm as ln, linear};

/// The most negative finite value of a float kind: masked scores get it added, as
/// transformers' eager attention does (`-inf` would turn fully padded rows into NaN).
pub(crate) fn mask_min(kind: Kind) -> f64 {
    match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.389_531_4e38,
        _ => f64::from(f32::MIN),
    }
}

/// Splits `[B, T, D]` into heads `[B, H, T, D/H]`.
fn heads(x: &Tensor, h: i64) -> Tensor {
    let (b, t, d) = x.size3().expect("[batch, tokens, width]");
    x.reshape([b, t, h, d / h]).permute([0, 2, 1, 3])
}

fn merge(x: &Tensor) -> Tensor {
    let (b, h, t, hd) = x.size4().expect("[batch, heads, tokens, head width]");
    x.permute([0, 2, 1, 3]).reshape([b, t, h * hd])
}

fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
    let hd = q.size()[3] as f64;
    let mut scores = q.matmul(&k.transpose(-1, -2)) / hd.sqrt();
    if let Some(m) = mask {
        scores += m;
    }
    scores.softmax(-1, Kind::Float).to_kind(v.kind()).matmul(v)
}

/// `attention.self` / `crossattention.self` plus its `output` (dense + LayerNorm).
#[derive(Debug)]
struct AttentionBlock {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    heads: i64,
}

impl AttentionBlock {
    fn new(p: nn::Path, cfg: &TextConfig, kv_width: usize) -> Self {
        let d = cfg.hidden_size as i64;
        let s = &p / "self";
        AttentionBlock {
            query: linear(&s / "query", d, d),
            key: linear(&s / "key", kv_width as i64, d),
            value: linear(&s / "value", kv_width as i64, d),
            dense: linear(&p / "output" / "dense", d, d),
            layer_norm: ln(
                &p / "output" / "LayerNorm",
                cfg.hidden_size,
                cfg.layer_norm_eps,
            ),
            heads: cfg.num_attention_heads as i64,
        }
    }

    fn kv(&self, x: &Tensor) -> (Tensor, Tensor) {
        (
            heads(&x.linear(&self.key.ws, self.key.bs.as_ref()), self.heads),
            heads(
                &x.linear(&self.value.ws, self.value.bs.as_ref()),
                self.heads,
            ),
        )
    }

    fn output(&self, ctx: &Tensor, residual: &Tensor) -> Tensor {
        (merge(ctx).linear(&self.dense.ws, self.dense.bs.as_ref()) + residual)
            .apply(&self.layer_norm)
    }
}

#[derive(Debug)]
struct TextLayer {
    attention: AttentionBlock,
    crossattention: AttentionBlock,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_ln: nn::LayerNorm,
}

/// Keys and values of one layer.
#[derive(Debug)]
struct Kv {
    k: Tensor,
    v: Tensor,
}

impl TextLayer {
    fn new(p: nn::Path, cfg: &TextConfig, encoder_width: usize) -> Self {
        let d = cfg.hidden_size as i64;
        let i = cfg.intermediate_size as i64;
        TextLayer {
            attention: AttentionBlock::new(&p / "attention", cfg, cfg.hidden_size),
            crossattention: AttentionBlock::new(&p / "crossattention", cfg, encoder_width),
            intermediate: linear(&p / "intermediate" / "dense", d, i),
            output: linear(&p / "output" / "dense", i, d),
            output_ln: ln(
                &p / "output" / "LayerNorm",
                cfg.hidden_size,
                cfg.layer_norm_eps,
            ),
        }
    }

    fn forward(&self, x: &Tensor, self_mask: &Tensor, past: &mut Option<Kv>, cross: &Kv) -> Tensor {
        let a = &self.attention;
        let q = heads(&x.linear(&a.query.ws, a.query.bs.as_ref()), a.heads);
        let (k, v) = a.kv(x);
        let (k, v) = match past.take() {
            Some(p) => (Tensor::cat(&[p.k, k], 2), Tensor::cat(&[p.v, v], 2)),
            None => (k, v),
        };
        let h = a.output(&attend(&q, &k, &v, Some(self_mask)), x);
        *past = Some(Kv { k, v });
        let c = &self.crossattention;
        let q = heads(&h.linear(&c.query.ws, c.query.bs.as_ref()), c.heads);
        let h = c.output(&attend(&q, &cross.k, &cross.v, None), &h);
        let m = h
            .linear(&self.intermediate.ws, self.intermediate.bs.as_ref())
            .gelu("none")
            .linear(&self.output.ws, self.output.bs.as_ref());
        (m + h).apply(&self.output_ln)
    }
}

/// Decoding state of a batch of sequences against their images.
#[derive(Debug)]
pub struct TextCache {
    layers: Vec<Option<Kv>>,
    cross: Vec<Kv>,
    /// `[B, Tkv]`, 1 for real tokens and 0 for left padding.
    key_mask: Option<Tensor>,
    /// `[B, 1]` position of each row's last token.
    last_position: Option<Tensor>,
}

impl TextCache {
    /// Tokens cached so far.
    pub fn len(&self) -> i64 {
        self.key_mask.as_ref().map_or(0, |m| m.size()[1])
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps rows `index` (beam search). Cross-attention state is per image and every
    /// reordering stays within one image's beams, so only self-attention state moves.
    pub fn reorder(&mut self, index: &Tensor) {
        for kv in self.layers.iter_mut().flatten() {
            kv.k = kv.k.index_select(0, index);
            kv.v = kv.v.index_select(0, index);
        }
        self.key_mask = self.key_mask.as_ref().map(|m| m.index_select(0, index));
        self.last_position = self
            .last_position
            .as_ref()
            .map(|m| m.index_select(0, index));
    }
}

/// `text_decoder` (`BlipTextLMHeadModel`).
#[derive(Debug)]
pub struct TextLMHeadModel {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    embeddings_ln: nn::LayerNorm,
    layers: Vec<TextLayer>,
    transform_dense: nn::Linear,
    transform_ln: nn::LayerNorm,
    bias: Tensor,
}

impl TextLMHeadModel {
    /// Creates the parameters under `p` (`text_decoder`). The LM head's decoder weight is
    /// the word-embedding matrix and its bias `cls.predictions.bias`, so checkpoints with
    /// or without `cls.predictions.decoder.*` load alike.
    pub fn new(p: nn::Path, cfg: &TextConfig, encoder_width: usize) -> Self {
        let d = cfg.hidden_size as i64;
        let bert = &p / "bert";
        let emb = &bert / "embeddings";
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| TextLayer::new(&bert / "encoder" / "layer" / i, cfg, encoder_width))
            .collect();
        let pred = &p / "cls" / "predictions";
        TextLMHeadModel {
            word_embeddings: embedding(&emb / "word_embeddings", cfg.vocab_size as i64, d),
            position_embeddings: embedding(
                &emb / "position_embeddings",
                cfg.max_position_embeddings as i64,
                d,
            ),
            embeddings_ln: ln(&emb / "LayerNorm", cfg.hidden_size, cfg.layer_norm_eps),
            layers,
            transform_dense: linear(&pred / "transform" / "dense", d, d),
            transform_ln: ln(
                &pred / "transform" / "LayerNorm",
                cfg.hidden_size,
                cfg.layer_norm_eps,
            ),
            bias: pred.var("bias", &[cfg.vocab_size as i64], nn::Init::Const(0.0)),
        }
    }

    /// A cache for decoding against `image_embeds` `[B, Timg, Denc]` (one row per
    /// sequence): cross-attention keys and values are computed here, once.
    pub fn new_cache(&self, image_embeds: &Tensor) -> TextCache {
        TextCache {
            layers: self.layers.iter().map(|_| None).collect(),
            cross: self
                .layers
                .iter()
                .map(|l| {
                    // Contiguous once here, or every step's batched matmul copies the
                    // permuted [B, H, Timg, D/H] views again, layer by layer.
                    let (k, v) = l.crossattention.kv(image_embeds);
                    Kv {
                        k: k.contiguous(),
                        v: v.contiguous(),
                    }
                })
                .collect(),
            key_mask: None,
            last_position: None,
        }
    }

    /// Runs `input_ids` `[B, T]` after what `cache` holds and returns logits `[B, T, V]`.
    /// `attention_mask` (`[B, T]`, 1 = token, 0 = left pad) is only for the first call;
    /// positions come from the mask as in transformers' generate (`cumsum - 1`).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut TextCache,
    ) -> Tensor {
        let (b, t) = input_ids.size2().expect("[batch, tokens]");
        let dev = input_ids.device();
        let new_mask = match attention_mask {
            Some(m) => m.to_kind(Kind::Int64),
            None => Tensor::ones([b, t], (Kind::Int64, dev)),
        };
        let positions = match &cache.last_position {
            Some(last) => last + Tensor::arange(t, (Kind::Int64, dev)).unsqueeze(0) + 1,
            None => (new_mask.cumsum(-1, Kind::Int64) - 1).clamp_min(0) * &new_mask,
        };
        cache.last_position = Some(positions.narrow(1, t - 1, 1));
        let key_mask = match cache.key_mask.take() {
            Some(m) => Tensor::cat(&[m, new_mask], 1),
            None => new_mask,
        };
        let past = key_mask.size()[1] - t;
        // Query i (absolute past + i) sees key j when j <= past + i and j is no pad.
        let causal = Tensor::arange(past + t, (Kind::Int64, dev))
            .unsqueeze(0)
            .le_tensor(&(Tensor::arange(t, (Kind::Int64, dev)) + past).unsqueeze(1));
        let allowed = causal
            .unsqueeze(0)
            .logical_and(&key_mask.ne(0).unsqueeze(1))
            .unsqueeze(1);
        let kind = self.bias.kind();
        let self_mask = Tensor::zeros([1], (kind, dev))
            .where_self(&allowed, &Tensor::full([1], mask_min(kind), (kind, dev)));
        cache.key_mask = Some(key_mask);

        let mut h = (input_ids.apply(&self.word_embeddings)
            + positions.apply(&self.position_embeddings))
        .apply(&self.embeddings_ln);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, &self_mask, &mut cache.layers[i], &cache.cross[i]);
        }
        let h = h
            .linear(&self.transform_dense.ws, self.transform_dense.bs.as_ref())
            .gelu("none")
            .apply(&self.transform_ln);
        // `linear` reads the tied [V, D] table in place (as transformers' decoder does);
        // a matmul against its transpose copied 47 MB per step in bf16.
        h.linear(&self.word_embeddings.ws, Some(&self.bias))
    }

    /// Teacher-forced logits over whole sequences (training and scoring).
    pub fn forward_full(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        image_embeds: &Tensor,
    ) -> Tensor {
        let mut cache = self.new_cache(image_embeds);
        self.forward(input_ids, attention_mask, &mut cache)
    }

    /// Size of the vocabulary the head scores.
    pub fn vocab_size(&self) -> i64 {
        self.bias.size()[0]
    }
}
