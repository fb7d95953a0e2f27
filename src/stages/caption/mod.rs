//! `caption`: the image at model size → a BLIP caption, its token ids, the model's
//! name and the pooled image embedding.
//!
//! Each worker thread loads its own copy of the checkpoint when the runtime builds the
//! stage (a model's tensors never cross threads) and captions whole micro-batches under
//! `no_grad`. Rows that failed upstream pass through untouched. A row whose image is
//! not at the model's size means the pipeline is misconfigured, which stops it.

mod config;
mod stage;

pub use config::CaptionConfig;
pub use stage::Caption;

use arrow::datatypes::SchemaRef;

use crate::schema::Edge;

/// The stage's name.
pub const NAME: &str = "caption";

/// What the stage reads.
pub fn input_schema() -> SchemaRef {
    Edge::Decoded.schema()
}

/// What the stage emits.
pub fn output_schema() -> SchemaRef {
    Edge::Captioned.schema()
}
