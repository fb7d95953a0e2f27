//! Training: optimizers, losses and the training loops.
//!
//! This module owns what a training run needs beyond the models themselves: a
//! serializable AdamW (so `--resume` continues with the optimizer's moments), the
//! split of a dataset into train and validation rows, the caption vocabulary, and the
//! loops. Seeded randomness and JSONL logs are `capstream::train`'s. It must not parse
//! command lines or run pipelines; the CLI passes options in.

pub mod adam;
pub mod audio;
pub mod caption;
pub mod loss;
pub mod split;
pub mod tokenizer;

pub use adam::{AdamConfig, AdamW};
pub use capstream::train::{JsonlLog, SplitMix64};
