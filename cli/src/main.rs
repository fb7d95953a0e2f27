//! `capstream`: the command line without libtorch. Model commands and model stages are
//! handed over to `capstream-torch`, installed beside it.

use std::process::ExitCode;

fn main() -> ExitCode {
    capstream_cli::main(None)
}
