//! Scores: how close an output is to its reference.
//!
//! This module owns the metric definitions (see `shared/reference/metrics.md` for the
//! sources each follows). It is pure: slices in, numbers out; no tensors, Arrow or I/O.

pub mod audio;
pub mod caption;
