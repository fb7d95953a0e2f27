//! Distributed mode commands: `worker`, `submit`, `sink`, and `run` for a
//! `mode = "nats"` pipeline (all of them on one machine, as child processes).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use capstream::config::{NatsConfig, PipelineConfig};
use capstream::metrics::caption::meteor::Meteor;
use capstream::metrics::caption::wordnet::WordNet;
use capstream::pipeline::chain_label;
use capstream::pipeline::{Plan, Shutdown};
use capstream::sinks::part_files;
use capstream::sources::SourceInput;
use capstream::stages::score::ScoreConfig;
use capstream::stages::score::{write_run_metrics, METRICS_FILE};
use capstream::telemetry::{self, Health, Metrics};
use capstream::transport::sink::{IdIndex, SinkOptions};
use capstream::transport::submit::SubmitOptions;
use capstream::transport::worker::{find_stage, WorkerOptions};
use capstream::transport::{sink, submit, worker, Connection};

/// The NATS credentials and TLS flags, twins of the `[nats]` keys of the same names.
/// Each can also come from its environment variable. A credential flag replaces the
/// pipeline file's authentication method; a TLS flag replaces that one key. Secrets
/// themselves are never flags: they are files (or `CAPSTREAM_NATS_PASSWORD` /
/// `CAPSTREAM_NATS_TOKEN`).
#[derive(Debug, Args, Clone, Default)]
pub struct NatsAuthArgs {
    /// User for user/password authentication ([nats] user).
    #[arg(long, env = "CAPSTREAM_NATS_USER")]
    nats_user: Option<String>,
    /// File holding the password ([nats] password_file; else CAPSTREAM_NATS_PASSWORD).
    #[arg(long, env = "CAPSTREAM_NATS_PASSWORD_FILE")]
    nats_password_file: Option<PathBuf>,
    /// File holding a token ([nats] token_file; else CAPSTREAM_NATS_TOKEN).
    #[arg(long, env = "CAPSTREAM_NATS_TOKEN_FILE")]
    nats_token_file: Option<PathBuf>,
    /// File holding an nkey seed ([nats] nkey_file).
    #[arg(long, env = "CAPSTREAM_NATS_NKEY_FILE")]
    nats_nkey_file: Option<PathBuf>,
    /// A .creds file: user JWT and seed ([nats] credentials_file).
    #[arg(long, env = "CAPSTREAM_NATS_CREDENTIALS_FILE")]
    nats_credentials_file: Option<PathBuf>,
    /// CA certificate(s) for the server's certificate ([nats] tls_ca_file).
    #[arg(long, env = "CAPSTREAM_NATS_TLS_CA_FILE")]
    nats_tls_ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS ([nats] tls_cert_file).
    #[arg(long, env = "CAPSTREAM_NATS_TLS_CERT_FILE")]
    nats_tls_cert_file: Option<PathBuf>,
    /// Key of the client certificate ([nats] tls_key_file).
    #[arg(long, env = "CAPSTREAM_NATS_TLS_KEY_FILE")]
    nats_tls_key_file: Option<PathBuf>,
}

fn absolute(p: &Option<PathBuf>) -> Result<Option<PathBuf>> {
    p.as_ref()
        .map(|p| std::path::absolute(p).with_context(|| format!("path {}", p.display())))
        .transpose()
}

impl NatsAuthArgs {
    /// Applies the flags over the file's `[nats]` table.
    pub(crate) fn apply(&self, n: &mut NatsConfig) -> Result<()> {
        let method = self.nats_user.is_some()
            || self.nats_password_file.is_some()
            || self.nats_token_file.is_some()
            || self.nats_nkey_file.is_some()
            || self.nats_credentials_file.is_some();
        if method {
            n.user = self.nats_user.clone();
            n.password_file = absolute(&self.nats_password_file)?;
            n.token_file = absolute(&self.nats_token_file)?;
            n.nkey_file = absolute(&self.nats_nkey_file)?;
            n.credentials_file = absolute(&self.nats_credentials_file)?;
        }
        if let Some(p) = absolute(&self.nats_tls_ca_file)? {
            n.tls_ca_file = Some(p);
        }
        if let Some(p) = absolute(&self.nats_tls_cert_file)? {
            n.tls_cert_file = Some(p);
        }
        if let Some(p) = absolute(&self.nats_tls_key_file)? {
            n.tls_key_file = Some(p);
        }
        Ok(())
    }

    /// The same flags for a child process (paths made absolute).
    fn to_args(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(u) = &self.nats_user {
            out.extend(["--nats-user".to_string(), u.clone()]);
        }
        for (flag, p) in [
            ("--nats-password-file", &self.nats_password_file),
            ("--nats-token-file", &self.nats_token_file),
            ("--nats-nkey-file", &self.nats_nkey_file),
            ("--nats-credentials-file", &self.nats_credentials_file),
            ("--nats-tls-ca-file", &self.nats_tls_ca_file),
            ("--nats-tls-cert-file", &self.nats_tls_cert_file),
            ("--nats-tls-key-file", &self.nats_tls_key_file),
        ] {
            if let Some(p) = absolute(p)? {
                out.extend([flag.to_string(), p.display().to_string()]);
            }
        }
        Ok(out)
    }
}

/// `--nats`, the credential flags and `--metrics-addr`, shared by the distributed
/// commands.
#[derive(Debug, Args)]
pub struct Common {
    /// Pipeline file (`mode = "nats"` or not: the `[nats]` table applies).
    #[arg(long)]
    pipeline: PathBuf,
    /// NATS server URL(s), comma-separated; defaults to the pipeline file's `[nats] url`.
    #[arg(long)]
    nats: Option<String>,
    #[command(flatten)]
    auth: NatsAuthArgs,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g.
    /// 127.0.0.1:9184).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Write the final Prometheus metrics to this file when the command ends (the text
    /// format node exporter's textfile collector reads), whole or not at all.
    #[arg(long)]
    metrics_file: Option<PathBuf>,
}

impl Common {
    fn write_metrics(&self, metrics: &Metrics) -> Result<()> {
        super::run::write_metrics_file(self.metrics_file.as_deref(), metrics)
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    common: Common,
    /// The stage this worker runs (`NAME`, or `NAME@N` when a pipeline has it twice).
    #[arg(long)]
    stage: String,
    /// Stage threads in this process, each with its own copy of the stage (default:
    /// the stage's `workers`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Model folder for model stages, overriding the pipeline file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Audio model folder for the neural_audio stage, overriding the pipeline file.
    #[arg(long)]
    audio_model: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    common: Common,
    /// A folder, glob, file, or `-` for a list of paths on stdin.
    #[arg(long)]
    input: String,
    /// Name this submission (default: its start time and pid). A submit restarted with
    /// the same name (a Kubernetes Job's, say) republishes under the same message ids,
    /// which the server drops inside its duplicate window.
    #[arg(long)]
    submission: Option<String>,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    #[command(flatten)]
    common: Common,
    /// Output folder for Parquet part files (and their id index).
    #[arg(long)]
    output: PathBuf,
}

/// `capstream run`'s distributed-mode options.
#[derive(Debug, Args)]
pub struct RunNatsArgs {
    /// NATS server URL(s) for a `mode = "nats"` pipeline; defaults to its `[nats] url`.
    #[arg(long)]
    pub(super) nats: Option<String>,
    #[command(flatten)]
    pub(super) auth: NatsAuthArgs,
}

fn load(common: &Common) -> Result<(Plan, String)> {
    let mut cfg = PipelineConfig::load(&common.pipeline)?;
    common.auth.apply(&mut cfg.nats)?;
    let url = common.nats.clone().unwrap_or_else(|| cfg.nats.url.clone());
    let plan =
        Plan::new(cfg).with_context(|| format!("pipeline file {}", common.pipeline.display()))?;
    Ok((plan, url))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Serves the monitoring endpoints when an address is given, until the returned server
/// is dropped.
async fn serve(
    addr: Option<SocketAddr>,
    metrics: &Metrics,
    health: &Health,
) -> Result<Option<capstream::http::Server>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let server = telemetry::serve(addr, metrics.clone(), health.clone()).await?;
    tracing::info!(address = %server.addr, "Serving /metrics, /healthz and /readyz.");
    Ok(Some(server))
}

pub fn worker(args: WorkerArgs) -> Result<ExitCode> {
    super::init_logging("info");
    let (mut plan, url) = load(&args.common)?;
    plan.model_override = args.model;
    plan.audio_model_override = args.audio_model;
    let stage = find_stage(&plan, &args.stage)?;
    let chain = plan.config.chain(stage);
    super::handover::if_stages_need_it(&plan.config.stages[chain.clone()])?;
    let name = chain_label(&plan.config.stages[chain.clone()]);
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| plan.config.chain_workers(chain));
    runtime()?.block_on(async move {
        let conn =
            Connection::open(&url, &format!("capstream worker {name}"), &plan.config).await?;
        let metrics = Metrics::new(&plan.config.name);
        let health = Health::default();
        conn.watch_health(&health);
        let _server = serve(args.common.metrics_addr, &metrics, &health).await?;
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let opts = WorkerOptions {
            plan,
            stage,
            concurrency,
        };
        let r = worker::run(conn, opts, shutdown, metrics.clone(), health).await;
        args.common.write_metrics(&metrics)?;
        let s = r?;
        println!(
            "worker {name}: {} messages ({} records), {} dead-lettered",
            s.messages, s.records, s.dead_lettered
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode> {
    super::init_logging("info");
    let (plan, url) = load(&args.common)?;
    if let Some(name) = &args.submission {
        capstream::transport::submit::check_submission(name)?;
    }
    runtime()?.block_on(async move {
        let conn = Connection::open(&url, "capstream submit", &plan.config).await?;
        let metrics = Metrics::new(&plan.config.name);
        let health = Health::default();
        conn.watch_health(&health);
        let _server = serve(args.common.metrics_addr, &metrics, &health).await?;
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let opts = SubmitOptions {
            plan,
            input: SourceInput::parse(&args.input),
            skip: Arc::new(HashSet::new()),
            submission: args.submission.clone(),
        };
        let r = submit::run(conn, opts, shutdown, metrics.clone()).await;
        args.common.write_metrics(&metrics)?;
        let s = r?;
        println!(
            "{}: {} records in {} messages ({} already stored) in {:.1}s",
            if s.interrupted {
                "interrupted"
            } else {
                "submitted"
            },
            s.records,
            s.messages,
            s.duplicates,
            s.seconds
        );
        Ok(if s.interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        })
    })
}

pub fn sink(args: SinkArgs) -> Result<ExitCode> {
    super::init_logging("info");
    let (plan, url) = load(&args.common)?;
    runtime()?.block_on(async move {
        let conn = Connection::open(&url, "capstream sink", &plan.config).await?;
        let metrics = Metrics::new(&plan.config.name);
        let health = Health::default();
        conn.watch_health(&health);
        let _server = serve(args.common.metrics_addr, &metrics, &health).await?;
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let opts = SinkOptions {
            plan,
            output: args.output.clone(),
        };
        let r = sink::run(conn, opts, shutdown, metrics.clone(), health).await;
        args.common.write_metrics(&metrics)?;
        let s = r?;
        println!(
            "sink: {} rows in {} file(s) under {} ({} duplicate rows dropped)",
            s.rows,
            s.files.len(),
            args.output.display(),
            s.duplicates
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Child processes that are stopped (SIGTERM, then killed) when dropped.
struct Children(Vec<(String, Child)>);

impl Children {
    fn stop(&mut self, grace: Duration) {
        for (_, c) in &self.0 {
            terminate(c.id());
        }
        let end = Instant::now() + grace;
        for (name, c) in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        tracing::warn!(child = %name, "Did not drain in time; killing it.");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.0.clear();
    }

    /// The first child that exited, with its status.
    fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        for (name, c) in &mut self.0 {
            if let Ok(Some(s)) = c.try_wait() {
                return Some((name.clone(), s));
            }
        }
        None
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
    }
}

fn terminate(pid: u32) {
    // JUSTIFICATION: kill(2) with a pid this process spawned and still owns (not yet
    // reaped, so the pid cannot have been reused) and a valid signal number; no memory
    // is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// `capstream run` on a `mode = "nats"` pipeline: one worker process per stage (its
/// `workers` as threads) and a sink process against `--nats`, the source submitted from
/// this process; returns when every record is committed or dead-lettered, after the
/// children drained.
pub(super) fn run_local(
    args: super::run::RunArgs,
    nats: RunNatsArgs,
    mut cfg: PipelineConfig,
) -> Result<ExitCode> {
    super::init_logging("info");
    nats.auth.apply(&mut cfg.nats)?;
    let auth_args = nats.auth.to_args()?;
    let url = nats.nats.unwrap_or_else(|| cfg.nats.url.clone());
    let mut plan =
        Plan::new(cfg).with_context(|| format!("pipeline file {}", args.pipeline.display()))?;
    plan.model_override = args.model.clone();
    plan.audio_model_override = args.audio_model.clone();
    let skip = super::run::ids_to_skip(&args.output, args.resume)?;
    let score = plan
        .config
        .stages
        .iter()
        .find_map(|s| s.spec::<ScoreConfig>().cloned());
    let exe = std::env::current_exe().context("cannot find the capstream executable")?;
    let pipeline = args.pipeline.display().to_string();
    runtime()?.block_on(async move {
        let started = Instant::now();
        let conn = Connection::open(&url, "capstream run", &plan.config).await?;
        if !conn.drained().await? {
            tracing::warn!("The pipeline's streams already hold messages (an earlier run?); they are processed too.");
        }
        let mut children = Children(Vec::new());
        let mut spawn = |name: String, extra: Vec<String>| -> Result<()> {
            let child = Command::new(&exe)
                .args(&extra)
                .args(["--pipeline", &pipeline, "--nats", &url])
                .args(&auth_args)
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            children.0.push((name, child));
            Ok(())
        };
        for (i, s) in plan.config.stages.iter().enumerate() {
            if s.chained() {
                continue; // runs in its chain's worker
            }
            let chain = plan.config.chain(i);
            let mut extra = vec![
                "worker".to_string(),
                "--stage".into(),
                format!("{}@{}", s.name(), i + 1),
                "--concurrency".into(),
                plan.config.chain_workers(chain.clone()).to_string(),
            ];
            if let Some(m) = &args.model {
                extra.extend(["--model".into(), m.display().to_string()]);
            }
            if let Some(m) = &args.audio_model {
                extra.extend(["--audio-model".into(), m.display().to_string()]);
            }
            spawn(
                format!("worker {}", chain_label(&plan.config.stages[chain])),
                extra,
            )?;
        }
        spawn(
            "sink".into(),
            vec![
                "sink".into(),
                "--output".into(),
                args.output.display().to_string(),
            ],
        )?;
        let metrics = Metrics::new(&plan.config.name);
        let health = Health::default();
        conn.watch_health(&health);
        let _server = serve(args.metrics_addr, &metrics, &health).await?;
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        let output = args.output.clone();
        let opts = SubmitOptions {
            plan,
            input: SourceInput::parse(&args.input),
            skip: Arc::new(skip),
            submission: None,
        };
        let submitted = submit::run(conn.clone(), opts, shutdown.clone(), metrics.clone()).await;
        // This process runs the submitter; the workers and the sink write their own.
        super::run::write_metrics_file(args.metrics_file.as_deref(), &metrics)?;
        let submitted = submitted?;
        tracing::info!(records = submitted.records, "Input submitted; waiting for the workers.");
        // Done when every edge stream is empty: each stage removes its input only after
        // its output is stored, and the sink only after the commit.
        while !shutdown.is_stopping() {
            if let Some((name, status)) = children.exited() {
                bail!("{name} exited early ({status}); the run is incomplete, rerun with --resume");
            }
            match conn.drained().await {
                Ok(true) => break,
                Ok(false) => {}
                // A cluster electing a leader answers nothing for a moment.
                Err(e) => tracing::warn!(error = %e, "Cannot read the streams; retrying."),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::task::block_in_place(|| children.stop(Duration::from_secs(60)));
        let index = IdIndex::open(&output)?;
        let parts = part_files(&output)?;
        let interrupted = shutdown.is_stopping() || submitted.interrupted;
        println!(
            "{}: {} records submitted, {} ids committed in {} file(s) under {} in {:.1}s",
            if interrupted { "interrupted" } else { "done" },
            submitted.records,
            index.len(),
            parts.len(),
            output.display(),
            started.elapsed().as_secs_f64()
        );
        if let Some(c) = &score {
            // Corpus scores (CIDEr-D needs every row) from everything committed, as in
            // embedded mode.
            let meteor = if c.meteor {
                Some(Meteor::new(WordNet::open(&c.wordnet_dir)?))
            } else {
                None
            };
            let m = write_run_metrics(&output, meteor.as_ref())?;
            println!(
                "  {} ({} items scored)",
                output.join(METRICS_FILE).display(),
                m["items_scored"]
            );
        }
        if interrupted {
            eprintln!("the run was stopped before the input ended; rerun with --resume to finish");
            return Ok(ExitCode::from(130));
        }
        Ok(ExitCode::SUCCESS)
    })
}
