//! Training: optimizers, losses, logs and the training loops.
//!
//! This module owns what a training run needs beyond the models themselves: a
//! serializable AdamW (so `--resume` continues with the optimizer's moments), seeded
//! randomness that does not depend on libtorch's generator, JSONL logs, and the loops.
//! It must not parse command lines or run pipelines; the CLI passes options in.

pub mod adam;
pub mod audio;
pub mod caption;
pub mod log;
pub mod loss;
pub mod rng;
pub mod split;
pub mod tokenizer;

pub use adam::{AdamConfig, AdamW};
pub use log::JsonlLog;
pub use rng::SplitMix64;
