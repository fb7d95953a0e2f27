//! What training and the dataset tools share: seeded randomness that does not depend
//! on libtorch's generator, and JSONL logs. The training loops, optimizer and losses
//! are the model side's (`capstream_torch::train`).

pub mod log;
pub mod rng;

pub use log::JsonlLog;
pub use rng::SplitMix64;
