//! Training and evaluation data: image–caption–audio triplets stored as Parquet.
//!
//! This module owns the triplet layout (`schemas/triplets.json`) and reading and
//! writing it, and the datasets made in that layout: synthetic scenes (`synth`),
//! stratified splits (`split`) and COCO captions (`coco`). It must not train, caption
//! or run a pipeline.

pub mod coco;
pub mod split;
pub mod synth;
pub mod triplets;

pub use triplets::{read_triplets, triplet_schema, write_triplets, Triplet};
