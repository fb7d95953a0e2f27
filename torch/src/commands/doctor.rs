//! `capstream doctor`: what this machine offers capstream.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Result;
use serde_json::json;

use capstream_cli::doctor::DoctorArgs;

/// The folder of the libtorch this process actually loaded, from the memory map.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

/// pip's torch keeps its version in `torch/version.py`, beside `torch/lib`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
}

fn tool_version(cmd: &str, arg: &str) -> Option<String> {
    let out = Command::new(cmd).arg(arg).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

const WORDNET_DIRS: [&str; 2] = ["/usr/share/wordnet", "/usr/share/wordnet/dict"];

fn wordnet_dir() -> Option<&'static str> {
    WORDNET_DIRS
        .into_iter()
        .find(|d| Path::new(d).join("index.noun").is_file())
}

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    // Touch libtorch so it is loaded and mapped before we look for it.
    let cuda = tch::Cuda::is_available();
    let devices = tch::Cuda::device_count();
    let cudnn = tch::Cuda::cudnn_is_available();
    let lib = loaded_libtorch_dir();
    let version = lib.as_deref().and_then(libtorch_version);
    let threads = tch::get_num_threads();
    let interop = tch::get_num_interop_threads();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let espeak = tool_version("espeak-ng", "--version");
    let nats = tool_version("nats-server", "--version");
    let wordnet = wordnet_dir();
    let report = json!({
        "capstream": env!("CARGO_PKG_VERSION"),
        "libtorch": {
            "version": version,
            "path": lib.as_ref().map(|p| p.display().to_string()),
            "cuda_available": cuda,
            "cuda_devices": devices,
            "cudnn_available": cudnn,
            "intra_op_threads": threads,
            "inter_op_threads": interop,
        },
        "cpu_cores": cores,
        "espeak_ng": espeak,
        "wordnet": wordnet,
        "nats_server": nats,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let or_missing = |v: Option<String>| v.unwrap_or_else(|| "NOT FOUND".into());
        println!("capstream        {}", env!("CARGO_PKG_VERSION"));
        println!(
            "libtorch         {} ({})",
            or_missing(version),
            or_missing(lib.map(|p| p.display().to_string()))
        );
        println!(
            "CUDA             {} ({} device{}, cuDNN {})",
            if cuda { "available" } else { "not available" },
            devices,
            if devices == 1 { "" } else { "s" },
            if cudnn { "yes" } else { "no" }
        );
        println!("threads          intra-op {threads}, inter-op {interop}, {cores} cores");
        println!("espeak-ng        {}", or_missing(espeak));
        println!("WordNet          {}", or_missing(wordnet.map(String::from)));
        println!("nats-server      {}", or_missing(nats));
    }
    Ok(ExitCode::SUCCESS)
}
