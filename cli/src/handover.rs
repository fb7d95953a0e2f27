//! Handing a command over to the model side: `capstream-torch`, the same command line
//! with libtorch linked in, replaces this process (same pid, arguments, standard
//! streams and signals), so that a supervisor or a test sees one process either way.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use capstream::stages::StageConfig;

/// Overrides where the model side's binary is (default: beside this one).
const ENV_BINARY: &str = "CAPSTREAM_TORCH";
/// Set on the handed-over process, so that a model side that cannot build a model
/// stage says so instead of handing over again.
const ENV_HANDED_OVER: &str = "CAPSTREAM_HANDED_OVER";
/// The model side's binary name.
const BINARY: &str = "capstream-torch";

/// Hands the command over when one of `stages` runs a model and this process cannot
/// build it; returns `Ok(())` when this process can run them all.
pub fn if_stages_need_it(stages: &[StageConfig]) -> Result<()> {
    match stages.iter().find(|s| s.needs_model_side()) {
        Some(s) => exec(&format!("stage {} runs a model", s.name())).map(|_| ()),
        None => Ok(()),
    }
}

/// Replaces this process with the model side, running the same command line. Returns
/// only with an error: `why` says what needed it.
pub fn exec(why: &str) -> Result<ExitCode> {
    if std::env::var_os(ENV_HANDED_OVER).is_some() {
        bail!("{why}, and the model side cannot run it either");
    }
    let bin = binary().with_context(|| why.to_string())?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let err = std::process::Command::new(&bin)
        .args(args)
        .env(ENV_HANDED_OVER, "1")
        .exec();
    bail!(
        "{why}: cannot start the model side {}: {err}",
        bin.display()
    )
}

fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_BINARY) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("cannot find the capstream executable")?;
    let beside = me.with_file_name(BINARY);
    if !beside.is_file() {
        bail!(
            "this capstream has no model side: {} is not installed (use the full image, \
             or set {ENV_BINARY} to the path of {BINARY})",
            beside.display()
        );
    }
    Ok(beside)
}
