//! The `capstream` command line: argument parsing and wiring, nothing else. Each file
//! holds one command's arguments and its glue to the library.
//!
//! Two binaries share it. `capstream` has no model side: it runs every command that
//! needs no model itself, and hands the others over to `capstream-torch` ([`handover`]),
//! which is this same command line with [`ModelSide`] linked in. A command hands over
//! when it is a model command (`caption`, `train`, `vocode`, `doctor`) or when a stage
//! it would build runs a model. `anyhow` is used here because this is binary code.

mod audio_metrics;
pub mod caption;
mod dataset;
pub mod doctor;
mod eval;
mod features;
mod handover;
mod nats;
mod report;
pub mod run;
mod score;
mod serve;
mod speak;
pub mod train;
pub mod vocode;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// capstream: images in, captions, audio and scores out.
#[derive(Debug, Parser)]
#[command(name = "capstream", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline over an input and write Parquet to an output folder (a
    /// `mode = "nats"` pipeline starts its workers and sink against `--nats`).
    Run {
        #[command(flatten)]
        args: run::RunArgs,
        #[command(flatten)]
        nats: nats::RunNatsArgs,
    },
    /// Distributed mode: run one stage of a pipeline as a NATS JetStream worker; N
    /// workers of a stage share its consumer.
    Worker(nats::WorkerArgs),
    /// Distributed mode: publish a pipeline's input onto its first stream.
    Submit(nats::SubmitArgs),
    /// Distributed mode: commit a pipeline's last stream to Parquet, each id once.
    Sink(nats::SinkArgs),
    /// Caption images on request: `POST /v1/caption` and `/v1/describe` over HTTP, and
    /// the NATS micro service `capstream` with `--nats`; concurrent requests share
    /// model batches.
    Serve(serve::ServeArgs),
    /// Caption image files with a BLIP checkpoint.
    Caption(caption::CaptionArgs),
    /// Log-mel features of a WAV file as a float32 .npy (librosa definitions).
    Features(features::FeaturesArgs),
    /// Speak a text with eSpeak NG into a WAV file.
    Speak(speak::SpeakArgs),
    /// Parse and check pipeline files (keys, limits, stage schemas).
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print the JSON schema of an edge, of the default output (`results`) or of the
    /// triplet dataset layout, or list them.
    Schema {
        /// Edge name (e.g. `source`, `decoded`), `results` or `triplets`.
        edge: Option<String>,
    },
    /// Audio metrics of an estimate WAV against a reference WAV (MSE, MAE, SNR, spectral
    /// convergence, LSD, MCD).
    AudioMetrics(audio_metrics::AudioMetricsArgs),
    /// Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) of candidates against
    /// references, or of a run folder.
    Score(score::ScoreArgs),
    /// A self-contained HTML report of a run folder (metrics, captions, audio, training).
    Report(report::ReportArgs),
    /// Run one split of a triplet dataset through the pipeline; write its scores, object
    /// and colour mention accuracy (eval.json) and the report.
    Eval(eval::EvalArgs),
    /// Log-mel .npy files to WAV with a neural audio checkpoint's vocoder or Griffin-Lim.
    Vocode(vocode::VocodeArgs),
    /// Train models: `train audio` (generator and vocoder).
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Make triplet datasets: `dataset synth`, `dataset split`, `dataset import-coco`.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Report libtorch, CUDA, threads and the external tools capstream uses.
    Doctor(doctor::DoctorArgs),
}

/// The name under which `capstream schema` prints the triplet dataset layout.
const TRIPLETS: &str = "triplets";

/// The commands that run a model, parsed here and run by the model side.
#[derive(Debug)]
pub enum ModelCommand {
    /// `capstream caption`.
    Caption(caption::CaptionArgs),
    /// `capstream train …`.
    Train(train::TrainCommand),
    /// `capstream vocode`.
    Vocode(vocode::VocodeArgs),
    /// `capstream doctor`.
    Doctor(doctor::DoctorArgs),
}

impl ModelCommand {
    fn name(&self) -> &'static str {
        match self {
            ModelCommand::Caption(_) => "caption",
            ModelCommand::Train(_) => "train",
            ModelCommand::Vocode(_) => "vocode",
            ModelCommand::Doctor(_) => "doctor",
        }
    }
}

/// What the binary with libtorch adds to this command line.
pub trait ModelSide {
    /// Provides the model stages' builders to the stage registry; called before the
    /// command line is parsed.
    fn install(&self);
    /// Runs a model command.
    fn run(&self, command: ModelCommand) -> Result<ExitCode>;
}

/// The whole command line: parses `std::env::args`, runs the command and returns the
/// process's exit code. `side` is `None` in the binary without libtorch.
pub fn main(side: Option<&dyn ModelSide>) -> ExitCode {
    if let Some(s) = side {
        s.install();
    }
    let cli = Cli::parse();
    match dispatch(cli, side) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn model(side: Option<&dyn ModelSide>, command: ModelCommand) -> Result<ExitCode> {
    match side {
        Some(s) => s.run(command),
        None => handover::exec(&format!("`capstream {}` runs a model", command.name())),
    }
}

/// `capstream run` in either mode: a `mode = "nats"` pipeline goes to distributed mode
/// on one machine, anything else runs embedded. Decided here, so that neither mode's
/// module names the other.
fn run_any(args: run::RunArgs, nats: nats::RunNatsArgs) -> Result<ExitCode> {
    let cfg = capstream::config::PipelineConfig::load(&args.pipeline)?;
    if cfg.mode == capstream::config::Mode::Nats {
        return nats::run_local(args, nats, cfg);
    }
    if nats.nats.is_some() {
        anyhow::bail!(
            "--nats needs a pipeline with mode = \"nats\"; {} runs embedded",
            args.pipeline.display()
        );
    }
    handover::if_stages_need_it(&cfg.stages)?;
    run::run(args)
}

/// Runs the parsed command.
fn dispatch(cli: Cli, side: Option<&dyn ModelSide>) -> Result<ExitCode> {
    match cli.command {
        Command::Run { args, nats } => run_any(args, nats),
        Command::Worker(args) => nats::worker(args),
        Command::Submit(args) => nats::submit(args),
        Command::Sink(args) => nats::sink(args),
        Command::Serve(args) => {
            let cfg = capstream::config::PipelineConfig::load(&args.pipeline_path())?;
            handover::if_stages_need_it(&cfg.stages)?;
            serve::run(args)
        }
        Command::Validate { files } => {
            for f in files {
                let cfg = capstream::config::PipelineConfig::load(&f)?;
                let plan = capstream::pipeline::Plan::new(cfg)
                    .with_context(|| format!("pipeline file {}", f.display()))?;
                let mut chain = vec!["source".to_string()];
                chain.extend(plan.config.stages.iter().map(|s| s.name().to_string()));
                chain.push("sink".into());
                println!(
                    "ok: {} ({}): {}",
                    f.display(),
                    plan.config.name,
                    chain.join(" -> ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { edge } => {
            use capstream::schema::{results_of, schema_to_json, Edge, RESULTS};
            match edge {
                Some(name) if name == RESULTS => {
                    print!("{}", schema_to_json(&results_of(&Edge::Scored.schema()))?)
                }
                Some(name) if name == TRIPLETS => {
                    print!(
                        "{}",
                        schema_to_json(&capstream::datasets::triplet_schema())?
                    )
                }
                Some(name) => print!("{}", schema_to_json(&Edge::from_name(&name)?.schema())?),
                None => {
                    for e in Edge::ALL {
                        println!("{}", e.name());
                    }
                    println!("{RESULTS}");
                    println!("{TRIPLETS}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => model(side, ModelCommand::Doctor(args)),
        Command::Caption(args) => model(side, ModelCommand::Caption(args)),
        Command::Features(args) => features::features(args),
        Command::Speak(args) => speak::run(args),
        Command::Train(cmd) => model(side, ModelCommand::Train(cmd)),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Vocode(args) => model(side, ModelCommand::Vocode(args)),
        Command::AudioMetrics(args) => audio_metrics::run(args),
        Command::Report(args) => report::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Score(args) => score::run(args),
    }
}

/// Logs to stderr: structured, `RUST_LOG` overrides `default`.
pub fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
