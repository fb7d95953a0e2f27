//! `capstream-torch`: the `capstream` command line with the model side linked in. Users
//! type `capstream`; it runs this binary for the commands and stages that run a model.

use std::process::ExitCode;

fn main() -> ExitCode {
    capstream_cli::main(Some(&capstream_torch::Torch))
}
