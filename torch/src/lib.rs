//! capstream's model side: everything that links libtorch (through `tch`).
//!
//! # Layout
//!
//! - [`models`]: BLIP and the audio generator and vocoder on libtorch, weights loading,
//!   devices; pure (no tokio, arrow or config parsing).
//! - [`train`]: the training loops, AdamW, losses, dataset splits and the caption
//!   vocabulary builder.
//! - [`stages`]: the running halves of the model stages (`caption`, `neural_audio`),
//!   whose contracts are `capstream::stages`'.
//! - [`commands`]: the model commands of the CLI (`caption`, `train`, `vocode`,
//!   `doctor`), behind [`capstream_cli::ModelSide`].
//!
//! The `capstream` binary runs without this crate; it hands a command over to
//! `capstream-torch` (this crate's binary) when the command, or a stage it would build,
//! runs a model.

#![warn(missing_docs)]

pub mod commands;
pub mod models;
pub mod stages;
pub mod train;

/// The model side as the CLI sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Torch;

impl capstream_cli::ModelSide for Torch {
    fn install(&self) {
        stages::provide();
    }

    fn run(&self, command: capstream_cli::ModelCommand) -> anyhow::Result<std::process::ExitCode> {
        commands::run(command)
    }
}

/// Converts libtorch's errors into capstream's (the orphan rule forbids a `From`).
pub(crate) trait TorchResult<T> {
    /// The value, or [`capstream::Error::Torch`] with libtorch's message.
    fn torch(self) -> capstream::Result<T>;
}

impl<T> TorchResult<T> for Result<T, tch::TchError> {
    fn torch(self) -> capstream::Result<T> {
        self.map_err(|e| capstream::Error::Torch(e.to_string()))
    }
}
