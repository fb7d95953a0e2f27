//! `capstream doctor`: what this machine offers capstream.
//!
//! The arguments only: the command runs on the model side (`capstream-torch`).

use clap::Args;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
