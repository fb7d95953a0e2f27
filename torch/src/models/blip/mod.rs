//! `BlipForConditionalGeneration` on libtorch, loading Hugging Face checkpoints as is.
//!
//! Based on "BLIP: Bootstrapping Language-Image Pre-training" (Li et al., 2022) as
//! implemented by transformers (`models/blip/modeling_blip.py`, `modeling_blip_text.py`).
//! Parameter paths equal the checkpoint's names (`vision_model.encoder.layers.0…`,
//! `text_decoder.bert.encoder.layer.0…`), so `model.safetensors` loads by name.
//! Outputs match transformers token for token (see `tests/blip_parity.rs`).

pub mod config;
pub mod generation;
pub mod text;
pub mod tokenizer;
pub mod vision;

pub use config::{Config, TextConfig, VisionConfig};
pub use generation::{EarlyStopping, GenerationConfig, SpecialIds};
pub use tokenizer::BlipTokenizer;

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::TorchResult;
use capstream::error::{Error, Result};
use capstream::imaging::{normalize_chw, CLIP_MEAN, CLIP_STD};
use text::TextLMHeadModel;
use vision::VisionModel;

/// A linear layer created zero-filled: every parameter is then overwritten by the
/// checkpoint or by [`BlipForConditionalGeneration::init`], and tch's default random
/// draws for 224 M parameters cost most of a second at load.
pub(crate) fn linear(p: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    nn::linear(
        p,
        inputs,
        outputs,
        nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    )
}

/// An embedding table created zero-filled, as [`linear`].
pub(crate) fn embedding(p: nn::Path, count: i64, dim: i64) -> nn::Embedding {
    nn::embedding(
        p,
        count,
        dim,
        nn::EmbeddingConfig {
            ws_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// A LayerNorm over the last dimension with the checkpoint's epsilon (tch defaults to
/// 1e-5; BLIP's text side needs 1e-12).
pub(crate) fn layer_norm(p: nn::Path, dim: usize, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim as i64],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// The captioning model: a vision tower and a text decoder.
#[derive(Debug)]
pub struct BlipForConditionalGeneration {
    vs: nn::VarStore,
    config: Config,
    vision_model: VisionModel,
    text_decoder: TextLMHeadModel,
}

impl BlipForConditionalGeneration {
    /// Builds the model for `cfg` and loads `weights` (`model.safetensors` or
    /// `pytorch_model.bin`) onto `device` in f32.
    pub fn new(cfg: &Config, weights: &Path, device: Device) -> Result<Self> {
        Self::new_in(cfg, weights, device, Kind::Float)
    }

    /// As [`Self::new`], with parameters of `kind`: each tensor is converted as it is
    /// read, so an f32 copy of the whole model never exists beside the half one.
    pub fn new_in(cfg: &Config, weights: &Path, device: Device, kind: Kind) -> Result<Self> {
        let mut model = Self::build(cfg, device, kind);
        crate::models::weights::load(&model.vs, weights)?;
        model.vs.freeze();
        Ok(model)
    }

    /// A freshly initialized model, to train from a config: weights drawn from
    /// libtorch's generator (seed it with `tch::manual_seed`) as transformers'
    /// `BlipPreTrainedModel._init_weights` does: normal(0, `initializer_range`) for
    /// linear, convolution and embedding weights and for the class token and positions
    /// (transformers truncates those at ±2σ, as here), zero biases, unit LayerNorms.
    /// The parameters are trainable.
    pub fn init(cfg: &Config, device: Device) -> Self {
        let model = Self::build(cfg, device, Kind::Float);
        let std = cfg.initializer_range;
        let _guard = tch::no_grad_guard();
        // In name order: the variable map's own order changes from process to process,
        // and the draws must not.
        for (name, mut t) in crate::models::weights::named_variables(&model.vs) {
            let is_norm = name.contains("LayerNorm")
                || name.contains("layer_norm")
                || name.contains("layernorm");
            if is_norm && name.ends_with(".weight") {
                let _ = t.fill_(1.0);
            } else if name.ends_with("bias") {
                let _ = t.zero_();
            } else if name.ends_with("class_embedding") || name.ends_with("position_embedding") {
                let r = t.randn_like() * std;
                t.copy_(&r.clamp(-2.0 * std, 2.0 * std));
            } else {
                t.copy_(&(t.randn_like() * std));
            }
        }
        model
    }

    /// The layers, with parameters created in `kind` (the store's default for new
    /// variables) so that loading a half model never holds an f32 copy.
    fn build(cfg: &Config, device: Device, kind: Kind) -> Self {
        let mut vs = nn::VarStore::new(device);
        vs.set_kind(kind);
        let root = vs.root();
        let vision_model = VisionModel::new(&root / "vision_model", &cfg.vision_config);
        let text_decoder = TextLMHeadModel::new(
            &root / "text_decoder",
            &cfg.text_config,
            cfg.encoder_hidden_size(),
        );
        BlipForConditionalGeneration {
            vs,
            config: cfg.clone(),
            vision_model,
            text_decoder,
        }
    }

    /// Makes every parameter trainable (fine-tuning a loaded checkpoint) or frozen.
    pub fn set_trainable(&mut self, trainable: bool) {
        if trainable {
            self.vs.unfreeze();
        } else {
            self.vs.freeze();
        }
    }

    /// The parameters under their checkpoint names, plus the tied LM-head tensors
    /// (`cls.predictions.decoder.weight` = the word embeddings, `.bias` = the head
    /// bias) that transformers writes, so the file is what `save_pretrained` makes.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.state_dict_from(crate::models::weights::named_variables(&self.vs))
    }

    /// [`state_dict`](Self::state_dict) of other tensors under the parameters' names
    /// (an optimizer's f32 master copies of bf16 parameters).
    pub fn state_dict_from(&self, mut named: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
        let find = |key: &str| {
            named
                .iter()
                .find(|(n, _)| n == key)
                .map(|(_, t)| t.shallow_clone())
        };
        let tied = [
            (
                "text_decoder.cls.predictions.decoder.weight",
                "text_decoder.bert.embeddings.word_embeddings.weight",
            ),
            (
                "text_decoder.cls.predictions.decoder.bias",
                "text_decoder.cls.predictions.bias",
            ),
        ];
        let extra: Vec<(String, Tensor)> = tied
            .iter()
            .filter_map(|(to, from)| find(from).map(|t| (to.to_string(), t)))
            .collect();
        named.extend(extra);
        named
    }

    /// Writes `model.safetensors` (f32 or the parameters' kind) to `file`.
    pub fn save_weights(&self, file: &Path) -> Result<()> {
        crate::models::weights::save(&self.state_dict(), file)
    }

    /// Teacher-forced captioning loss, as `BlipForConditionalGeneration.forward` with
    /// `labels`: cross-entropy of each next token (logits shifted by one), mean over
    /// labels that are not -100, with `label_smoothing`. `input_ids` and
    /// `attention_mask` are `[B, T]` right-padded; `labels` is `input_ids` with
    /// padding (and a masked prompt) set to -100.
    pub fn loss(
        &self,
        pixels: &Tensor,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        labels: &Tensor,
        label_smoothing: f64,
    ) -> Tensor {
        let image_embeds = self.vision_model.forward(pixels);
        let logits = self
            .text_decoder
            .forward_full(input_ids, Some(attention_mask), &image_embeds);
        let (_, t, v) = logits.size3().expect("[batch, tokens, vocab]");
        logits
            .narrow(1, 0, t - 1)
            .reshape([-1, v])
            .to_kind(Kind::Float)
            .cross_entropy_loss::<Tensor>(
                &labels.narrow(1, 1, t - 1).reshape([-1]),
                None,
                tch::Reduction::Mean,
                -100,
                label_smoothing,
            )
    }

    /// Casts the parameters (f16 on CUDA; bf16 on CUDA or CPU).
    pub fn set_kind(&mut self, kind: Kind) {
        self.vs.set_kind(kind);
    }

    /// The parameters' kind.
    pub fn kind(&self) -> Kind {
        self.vs
            .trainable_variables()
            .first()
            .or(self.vs.variables().values().next())
            .map_or(Kind::Float, Tensor::kind)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The completed `config.json`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The variables, for training.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The vision tower.
    pub fn vision_model(&self) -> &VisionModel {
        &self.vision_model
    }

    /// The text decoder.
    pub fn text_decoder(&self) -> &TextLMHeadModel {
        &self.text_decoder
    }
}

/// One caption of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// Decoded text, special tokens skipped (the prompt kept, as transformers does,
    /// unless the captioner strips it as original BLIP does).
    pub text: String,
    /// Exactly what transformers' `generate` returns: `[DEC]`, prompt, new tokens,
    /// `[SEP]` when generated.
    pub token_ids: Vec<i64>,
}

/// What the captioner returns for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCaptions {
    /// `num_return_sequences` captions, best first.
    pub captions: Vec<Caption>,
    /// The pooled image embedding (`pooler_output`: `post_layernorm` of the class
    /// token), the input of the neural audio generator.
    pub embedding: Vec<f32>,
}

/// A loaded checkpoint folder: model, tokenizer and special ids.
#[derive(Debug)]
pub struct Captioner {
    model: BlipForConditionalGeneration,
    tokenizer: BlipTokenizer,
    ids: SpecialIds,
    bos: i64,
}

impl Captioner {
    /// Loads `config.json`, the weights and the tokenizer of a checkpoint folder.
    pub fn from_dir(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        let cfg = Config::from_file(&dir.join("config.json"))?;
        let weights = crate::models::weights::find_weights(dir)?;
        let model = BlipForConditionalGeneration::new_in(&cfg, &weights, device, kind)?;
        let tokenizer = BlipTokenizer::from_dir(dir)?;
        let t = &cfg.text_config;
        let vocab = t.vocab_size as i64;
        for (what, id) in [
            ("bos", t.bos_token_id),
            ("sep", t.sep_token_id),
            ("pad", t.pad_token_id),
        ] {
            if !(0..vocab).contains(&id) {
                return Err(Error::Model {
                    path: dir.to_path_buf(),
                    message: format!("{what}_token_id {id} is outside the vocabulary of {vocab}"),
                });
            }
        }
        Ok(Captioner {
            ids: SpecialIds {
                sep: t.sep_token_id,
                pad: t.pad_token_id,
            },
            bos: t.bos_token_id,
            model,
            tokenizer,
        })
    }

    /// The model.
    pub fn model(&self) -> &BlipForConditionalGeneration {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BlipTokenizer {
        &self.tokenizer
    }

    /// Token positions the text decoder has: a prompt (with `[DEC]`) and its new
    /// tokens must fit in them.
    pub fn max_positions(&self) -> usize {
        self.model.config.text_config.max_position_embeddings
    }

    /// Side of the square input the model expects.
    pub fn image_size(&self) -> u32 {
        self.model.config.vision_config.image_size as u32
    }

    /// Normalized `[B, 3, S, S]` pixels from 8-bit RGB images at model size.
    pub fn pixels(&self, images: &[&[u8]]) -> Result<Tensor> {
        let s = self.image_size() as usize;
        let n = s * s * 3;
        let mut buf = vec![0f32; images.len() * n];
        for (img, out) in images.iter().zip(buf.chunks_exact_mut(n)) {
            if img.len() != n {
                return Err(Error::Config(format!(
                    "image has {} bytes; the model needs {s}x{s} RGB ({n} bytes)",
                    img.len()
                )));
            }
            normalize_chw(img, CLIP_MEAN, CLIP_STD, out);
        }
        Ok(Tensor::from_slice(&buf)
            .reshape([images.len() as i64, 3, s as i64, s as i64])
            .to_device(self.model.device())
            .to_kind(self.model.kind()))
    }

    /// The pooled image embeddings `[B, vision hidden]` (f32, on the model's device) of
    /// normalized pixels, without gradients: what the audio generator takes.
    pub fn embed(&self, pixels: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let image_embeds = self.model.vision_model.forward(pixels);
        self.model
            .vision_model
            .pooled(&image_embeds)
            .to_kind(Kind::Float)
    }

    /// `[DEC]` followed by the prompt's word pieces.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<i64>> {
        let mut ids = vec![self.bos];
        ids.extend(self.tokenizer.encode(prompt)?);
        Ok(ids)
    }

    /// Captions a batch of normalized images, each with its own prompt ("" for none).
    /// With `strip_prompt`, the text holds only what was generated (original BLIP).
    pub fn caption(
        &self,
        pixels: &Tensor,
        prompts: &[&str],
        gen: &GenerationConfig,
        strip_prompt: bool,
    ) -> Result<Vec<ImageCaptions>> {
        let _guard = tch::no_grad_guard();
        let prompt_ids = prompts
            .iter()
            .map(|p| self.prompt_ids(p))
            .collect::<Result<Vec<_>>>()?;
        let image_embeds = self.model.vision_model.forward(pixels);
        let pooled = self
            .model
            .vision_model
            .pooled(&image_embeds)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        let seqs = generation::generate(
            &self.model.text_decoder,
            &image_embeds,
            &prompt_ids,
            gen,
            self.ids,
        )?;
        let mut out = Vec::with_capacity(seqs.len());
        for (i, (per_image, prompt)) in seqs.into_iter().zip(&prompt_ids).enumerate() {
            let captions = per_image
                .into_iter()
                .map(|token_ids| {
                    let shown = if strip_prompt {
                        &token_ids[prompt.len()..]
                    } else {
                        &token_ids[..]
                    };
                    Ok(Caption {
                        text: self.tokenizer.decode(shown)?,
                        token_ids,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let embedding = Vec::<f32>::try_from(pooled.get(i as i64)).torch()?;
            out.push(ImageCaptions {
                captions,
                embedding,
            });
        }
        Ok(out)
    }
}
