//! `capstream serve`: captions on request over HTTP (and NATS with `--nats`), from a
//! pipeline with `[source] type = "request"` (see `pipelines/serve.toml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use capstream::config::PipelineConfig;
use capstream::pipeline::{Plan, Shutdown};
use capstream::serve::{self, ServeOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Pipeline file with `[source] type = "request"` (see pipelines/serve.toml).
    #[arg(long)]
    pipeline: PathBuf,
    /// Address to serve HTTP on, e.g. 0.0.0.0:8080.
    #[arg(long)]
    http: SocketAddr,
    /// Caption model folder, overriding the pipeline file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Audio model folder for a neural_audio stage, overriding the pipeline file.
    #[arg(long)]
    audio_model: Option<PathBuf>,
    /// Also serve the NATS micro service `capstream` on this server (comma-separated
    /// URLs for a cluster), with the pipeline file's `[nats]` credentials and TLS.
    #[arg(long, env = "CAPSTREAM_NATS_URL")]
    nats: Option<String>,
    #[command(flatten)]
    nats_auth: super::nats::NatsAuthArgs,
    /// File holding the bearer token the endpoints require (`Authorization: Bearer
    /// ...`); /healthz, /readyz and /metrics stay open for probes and scrapers.
    #[arg(long, env = "CAPSTREAM_SERVE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The pipeline file, which decides whether the model side must serve it.
    pub fn pipeline_path(&self) -> PathBuf {
        self.pipeline.clone()
    }
}

fn read_token(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        bail!(
            "--token-file {}: the token must be one non-empty line without spaces",
            path.display()
        );
    }
    Ok(token)
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    super::init_logging("info");
    let mut cfg = PipelineConfig::load(&args.pipeline)?;
    args.nats_auth.apply(&mut cfg.nats)?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let mut plan =
        Plan::new(cfg).with_context(|| format!("pipeline file {}", args.pipeline.display()))?;
    plan.model_override = args.model.clone();
    plan.audio_model_override = args.audio_model.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let opts = ServeOptions {
            plan,
            http: args.http,
            nats: args.nats.clone(),
            token,
        };
        match serve::run(opts, shutdown).await {
            Ok(summary) => {
                if summary.abandoned > 0 {
                    eprintln!(
                        "stopped: {} request(s) were still waiting at the drain timeout",
                        summary.abandoned
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(capstream::Error::Aborted) => Ok(ExitCode::from(130)),
            Err(e) => Err(e.into()),
        }
    })
}
