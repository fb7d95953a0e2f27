//! AdamW (Loshchilov and Hutter, 2019) over named tensors, with state that can be saved
//! and restored. tch's built-in optimizers keep their moments inside libtorch where
//! they cannot be serialized, which would make `--resume` restart the moments at zero
//! and change the result; this one keeps them as tensors it can write.
//!
//! The update is torch's `AdamW` with `amsgrad=False`: `m ← β₁m + (1−β₁)g`,
//! `v ← β₂v + (1−β₂)g²`, `p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε)` with bias-corrected
//! `m̂, v̂`. With `weight_decay = 0` it is plain Adam.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::TorchResult;
use capstream::error::{Error, Result};

/// Hyper-parameters (the learning rate is given per step, for schedules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The optimizer over a fixed set of named parameters.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamConfig,
    params: Vec<(String, Tensor)>,
    /// f32 copies of parameters held in a half type (mixed precision): the update is
    /// computed and kept in f32 and rounded into the parameter after each step, so
    /// small updates are not lost to bf16's 8-bit mantissa.
    master: Vec<Option<Tensor>>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

impl AdamW {
    /// An optimizer for `params` (shallow handles to trainable variables).
    /// Parameters in f16/bf16 get an f32 master copy and f32 moments.
    pub fn new(params: Vec<(String, Tensor)>, cfg: AdamConfig) -> Self {
        let _guard = tch::no_grad_guard();
        let master: Vec<Option<Tensor>> = params
            .iter()
            .map(|(_, p)| {
                (p.kind() != Kind::Float && p.kind() != Kind::Double)
                    .then(|| p.detach().to_kind(Kind::Float))
            })
            .collect();
        let full = |i: usize| master[i].as_ref().unwrap_or(&params[i].1).zeros_like();
        let m = (0..params.len()).map(full).collect();
        let v = (0..params.len()).map(full).collect();
        AdamW {
            cfg,
            params,
            master,
            m,
            v,
            step: 0,
        }
    }

    /// The parameters at full precision (the f32 master copies where there are some),
    /// by name: what a checkpoint should hold.
    pub fn full_precision(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.master)
            .map(|((name, p), m)| {
                (
                    name.clone(),
                    m.as_ref().unwrap_or(p).detach().shallow_clone(),
                )
            })
            .collect()
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Clears the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`; returns the
    /// norm before clipping (as `torch.nn.utils.clip_grad_norm_`).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.to_kind(Kind::Float).norm().reshape([1]))
            .collect();
        let total = Tensor::cat(&norms, 0).norm().double_value(&[]);
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        }
        total
    }

    /// One update with learning rate `lr`. Parameters without a gradient are skipped.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.cfg;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        for (i, (_, param)) in self.params.iter().enumerate() {
            let g = param.grad();
            if !g.defined() {
                continue;
            }
            let (mut p, g) = match &self.master[i] {
                Some(master) => (master.shallow_clone(), g.to_kind(Kind::Float)),
                None => (param.shallow_clone(), g),
            };
            let m = &mut self.m[i];
            let v = &mut self.v[i];
            let _ = m.g_mul_scalar_(c.beta1);
            let _ = m.g_add_(&(&g * (1.0 - c.beta1)));
            let _ = v.g_mul_scalar_(c.beta2);
            let _ = v.g_add_(&(&g * &g * (1.0 - c.beta2)));
            if c.weight_decay != 0.0 {
                let _ = p.g_mul_scalar_(1.0 - lr * c.weight_decay);
            }
            let denom = (&*v / bias2).sqrt() + c.eps;
            let update = (&*m / bias1) / denom * lr;
            let _ = p.g_sub_(&update);
            if self.master[i].is_some() {
                param.shallow_clone().copy_(&p);
            }
        }
    }

    /// The state as named tensors: `step`, `m.<param>`, `v.<param>`, and
    /// `master.<param>` for parameters with an f32 master copy.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from_slice(&[self.step]))];
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("v.{name}"), self.v[i].shallow_clone()));
            if let Some(master) = &self.master[i] {
                out.push((format!("master.{name}"), master.shallow_clone()));
            }
        }
        out
    }

    /// Restores [`state`](Self::state) from a safetensors file; every parameter's
    /// moments must be there with its shape.
    pub fn load_state(&mut self, file: &Path) -> Result<()> {
        let tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(file)
            .torch()?
            .into_iter()
            .collect();
        let err = |message: String| Error::Model {
            path: file.to_path_buf(),
            message,
        };
        let step = tensors
            .get("step")
            .ok_or_else(|| err("optimizer state has no `step`".into()))?;
        self.step = step.int64_value(&[0]);
        let _guard = tch::no_grad_guard();
        for (i, (name, p)) in self.params.iter().enumerate() {
            let mut slots = vec![
                ("m", self.m[i].shallow_clone()),
                ("v", self.v[i].shallow_clone()),
            ];
            if let Some(master) = &self.master[i] {
                slots.push(("master", master.shallow_clone()));
            }
            for (prefix, mut slot) in slots {
                let key = format!("{prefix}.{name}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| err(format!("optimizer state lacks {key}")))?;
                if t.size() != p.size() {
                    return Err(err(format!(
                        "{key} has shape {:?}, the parameter {:?}",
                        t.size(),
                        p.size()
                    )));
                }
                slot.f_copy_(&t.to_kind(slot.kind())).torch()?;
                if prefix == "master" {
                    p.shallow_clone().f_copy_(&t.to_kind(p.kind())).torch()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_steps(weight_decay: f64) -> Vec<f32> {
        let x = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let cfg = AdamConfig {
            weight_decay,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("x".into(), x.shallow_clone())], cfg);
        for _ in 0..2 {
            opt.zero_grad();
            (&x * &x).sum(Kind::Float).backward();
            opt.step(0.1);
        }
        Vec::<f32>::try_from(&x.detach()).unwrap()
    }

    /// Two steps on f(x) = Σx² from [1, -2] with lr 0.1, against torch 2.11's
    /// `optim.Adam` and `optim.AdamW(weight_decay=0.5)`.
    #[test]
    fn matches_torch() {
        let close = |a: &[f32], b: [f32; 2]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let adam = two_steps(0.0);
        assert!(close(&adam, [0.800_412_24, -1.800_166_5]), "{adam:?}");
        let adamw = two_steps(0.5);
        assert!(close(&adamw, [0.708_248_44, -1.610_412_1]), "{adamw:?}");
    }

    /// A bf16 parameter keeps an f32 master copy: updates far below bf16's spacing (2.0
    /// at 256) still accumulate, and the state carries the master for `--resume`.
    #[test]
    fn half_parameters_step_through_an_f32_master() {
        let x = Tensor::from_slice(&[256.0f32])
            .to_kind(Kind::BFloat16)
            .set_requires_grad(true);
        let mut opt = AdamW::new(vec![("x".into(), x.shallow_clone())], AdamConfig::default());
        for _ in 0..10 {
            opt.zero_grad();
            (&x * &x).sum(Kind::Float).backward();
            opt.step(0.01);
        }
        let master = opt.full_precision()[0].1.double_value(&[0]);
        assert!((master - 255.9).abs() < 1e-3, "{master}");
        assert_eq!(x.kind(), Kind::BFloat16);
        assert_eq!(x.double_value(&[0]), 256.0);
        assert!(opt.state().iter().any(|(n, _)| n == "master.x"));
    }
}
