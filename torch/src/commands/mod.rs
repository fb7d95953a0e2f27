//! The model commands: `caption`, `train`, `vocode` and `doctor`. Their arguments are
//! `capstream_cli`'s, so `capstream --help` lists them in the binary without a model
//! side too; each file here is one command's glue to the library.

mod caption;
mod doctor;
mod train;
mod vocode;

use std::process::ExitCode;

use capstream_cli::ModelCommand;

/// Runs a parsed model command.
pub fn run(command: ModelCommand) -> anyhow::Result<ExitCode> {
    match command {
        ModelCommand::Caption(args) => caption::run(args),
        ModelCommand::Train(cmd) => train::run(cmd),
        ModelCommand::Vocode(args) => vocode::run(args),
        ModelCommand::Doctor(args) => doctor::run(args),
    }
}
