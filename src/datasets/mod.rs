//! Training and evaluation data: image–caption–audio triplets stored as Parquet.
//!
//! This module owns the triplet layout (`schemas/triplets.json`) and reading and
//! writing it. It must not train, caption or run a pipeline.

pub mod triplets;

pub use triplets::{read_triplets, triplet_schema, write_triplets, Triplet};
