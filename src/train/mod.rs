//! What training and the dataset tools share: seeded randomness that does not depend
//! on libtorch's generator, JSONL logs, and the character durations of spoken captions.
//! The training loops, optimizer and losses are the model side's
//! (`capstream_torch::train`).

pub mod durations;
pub mod log;
pub mod rng;

pub use log::JsonlLog;
pub use rng::SplitMix64;
