//! `capstream serve`: captions on request, over HTTP and as a NATS micro service.
//!
//! Requests enter the same engine as pipelines. A pipeline file with `[source] type =
//! "request"` and `[sink] type = "response"` runs embedded, with the request source
//! fed by the [`Front`] and the response sink answering each caller. Concurrent
//! requests therefore share model batches exactly as a backfill's records do: the
//! caption stage's batcher gathers up to `max_rows` rows and waits at most
//! `max_delay_ms` for the first one's batch to fill (Triton's `max_queue_delay`).
//!
//! - [`front`]: admission (bounded: 429 when full), record ids, waiting, draining.
//! - [`reply`]: endpoints, request options, status codes and JSON bodies.
//! - [`http`]: the HTTP routes, body limits and the bearer token.
//! - [`micro`]: the NATS micro service.
//!
//! The first SIGTERM or SIGINT drains: not ready, nothing new admitted, every admitted
//! request answered (up to `drain_timeout_ms`), connections closed, then the pipeline
//! ends. A second signal aborts. A pipeline that stops on its own (a stage cannot
//! continue) fails the waiting requests with 503 and ends the process with its error.
//! This module spawns the server tasks; it never builds a stage itself.

mod front;
mod http;
mod micro;
mod reply;

pub use front::{Front, Refusal, Served};
pub use micro::{
    HEADER_ERROR_KIND, HEADER_ID, HEADER_MAX_NEW_TOKENS, HEADER_NUM_BEAMS, HEADER_PROMPT, SERVICE,
};
pub use reply::{code_of_kind, kinds, options_of, reply_of, Endpoint, Reply};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::{Plan, Progress, Shutdown};
use crate::sinks::{ResponseSink, Waiters};
use crate::sources::{RequestSource, SourceConfig};
use crate::telemetry::{Health, Metrics, ServeMetrics};

/// What `capstream serve` was asked to do.
#[derive(Debug)]
pub struct ServeOptions {
    /// The checked pipeline (request source, response sink).
    pub plan: Plan,
    /// The HTTP listener's address.
    pub http: SocketAddr,
    /// NATS server URL(s) for the micro service, when wanted.
    pub nats: Option<String>,
    /// The bearer token the endpoints require, when set.
    pub token: Option<String>,
}

/// How a server ended.
#[derive(Debug, Clone, Default)]
pub struct ServeSummary {
    /// Requests still unanswered when the drain timeout passed.
    pub abandoned: usize,
}

/// Serves until `shutdown` stops it (then drains) or the pipeline stops by itself.
pub async fn run(opts: ServeOptions, shutdown: Shutdown) -> Result<ServeSummary> {
    let ServeOptions {
        plan,
        http: addr,
        nats,
        token,
    } = opts;
    if !matches!(plan.config.source, SourceConfig::Request(_)) {
        return Err(Error::Config(format!(
            "{}: `capstream serve` needs [source] type = \"request\" and [sink] type = \"response\" (see pipelines/serve.toml)",
            plan.config.path.display()
        )));
    }
    let cfg = plan.config.serve.clone();
    let describe = plan
        .config
        .stages
        .iter()
        .any(|s| s.name() == crate::stages::speak::NAME);
    let metrics = Metrics::new(&plan.config.name);
    let serve_metrics = ServeMetrics::new(&metrics);
    let health = Health::default();

    let (tx, rx) = flume::bounded(cfg.queue_capacity);
    let waiters = Waiters::default();
    let prefix = plan.config.nats.prefix.clone();
    // The micro service connects with the pipeline file's [nats] settings (auth, TLS).
    let nats_client = match &nats {
        Some(url) => Some(crate::transport::connect(url, "capstream serve", &plan.config).await?),
        None => None,
    };
    let pipeline = plan.open_with(
        Box::new(RequestSource::new(rx)),
        Box::new(ResponseSink::new(waiters.clone())),
    )?;
    let front = Arc::new(Front::new(cfg.clone(), tx, waiters, serve_metrics));
    let progress = Arc::new(Progress::default());
    {
        let p = progress.clone();
        health.ready_when("model loaded", move || p.built());
        let f = front.clone();
        health.ready_when("accepting requests", move || !f.is_closing());
    }
    let pipe_shutdown = Shutdown::new();
    let mut pipeline_task =
        tokio::spawn(pipeline.run(pipe_shutdown.clone(), metrics.clone(), progress.clone()));

    let limits = crate::http::Limits {
        max_connections: cfg.max_connections,
        header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
        max_connection_age: Duration::from_millis(cfg.max_connection_age_ms),
        // A connection closed for its age first finishes the request it is serving.
        drain_timeout: Duration::from_millis(cfg.request_timeout_ms),
    };
    let micro_started = nats_client
        .as_ref()
        .map(|_| health.flag("NATS micro service started"));
    let routes = http::routes(front.clone(), token, describe, metrics.clone(), health);
    let server = crate::http::Server::start(addr, routes, limits).await?;
    tracing::info!(address = %server.addr, describe, "Serving HTTP: POST /v1/caption, /v1/describe; GET /healthz, /readyz, /metrics.");

    // The micro service joins its queue group once the model is loaded, so that
    // replicas already serving take the requests meanwhile. A NATS outage does not
    // make the process unready: HTTP still serves, and the client reconnects itself.
    let mut service = None;
    if let Some(client) = nats_client {
        let loaded = async {
            while !progress.built() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            _ = loaded => {
                service = Some(micro::start(client, &prefix, front.clone(), describe).await?);
                if let Some(f) = &micro_started {
                    f.set(true);
                }
                tracing::info!(service = SERVICE, prefix = %prefix, "Serving the NATS micro service.");
            }
            _ = shutdown.stopping() => {}
            _ = &mut pipeline_task => {
                front.fail_all();
                server.shutdown_within(Duration::ZERO).await;
                return Err(Error::Runtime("the serving pipeline ended before its model loaded".into()));
            }
        }
    }

    let ended_early = tokio::select! {
        _ = shutdown.stopping() => None,
        r = &mut pipeline_task => Some(r),
    };
    if let Some(r) = ended_early {
        // The pipeline stopped by itself: nobody waiting can be answered.
        front.fail_all();
        server.shutdown_within(Duration::ZERO).await;
        return Err(match r {
            Ok(Ok(_)) => Error::Runtime("the serving pipeline ended unexpectedly".into()),
            Ok(Err(e)) => e,
            Err(e) => Error::Runtime(format!("the serving pipeline panicked: {e}")),
        });
    }

    tracing::info!(
        in_flight = front.in_flight(),
        "Draining: answering admitted requests."
    );
    if let Some(s) = service {
        if let Err(e) = s.stop().await {
            tracing::warn!(error = %e, "Cannot stop the NATS micro service cleanly.");
        }
    }
    // One budget for the whole drain: answering the admitted, then closing
    // connections (whose responses are written by then).
    let drain = Duration::from_millis(cfg.drain_timeout_ms);
    let deadline = std::time::Instant::now() + drain;
    let abandoned = tokio::select! {
        n = front.close(drain) => n,
        _ = shutdown.aborted() => return Err(Error::Aborted),
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    server
        .shutdown_within(left.max(Duration::from_millis(100)))
        .await;
    tokio::select! {
        r = pipeline_task => match r {
            Ok(r) => { r?; }
            Err(e) => return Err(Error::Runtime(format!("the serving pipeline panicked: {e}"))),
        },
        _ = shutdown.aborted() => {
            pipe_shutdown.abort();
            return Err(Error::Aborted);
        }
    }
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "Requests were still waiting when the drain timeout passed."
        );
    }
    Ok(ServeSummary { abandoned })
}
