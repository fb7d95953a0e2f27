//! Neural models on libtorch (`tch`), candle style.
//!
//! Each model has a `Config` deserialized from its checkpoint's `config.json`, a
//! constructor `new(cfg, path)` whose sub-paths follow the checkpoint's parameter
//! names, and `forward`. This module is pure: no tokio, Arrow, metrics or pipeline
//! configuration. Stages own the conversion between Arrow columns and tensors.

pub mod audio;
pub mod blip;
pub mod device;
pub mod weights;
