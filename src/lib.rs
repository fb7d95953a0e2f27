//! capstream: a streaming dataflow pipeline that turns images into captions, audio
//! and scores.
//!
//! # Layout
//!
//! - [`config`]: pipeline files (`pipelines/*.toml`): serde types and validation.
//! - [`pipeline`]: the runtime: channels, micro-batching, threads, shutdown, standard
//!   metrics, and the [`Stage`](pipeline::Stage) contract.
//! - [`stages`]: one folder per stage and the one registry that builds them.
//! - [`sources`] and [`sinks`]: where records come from (files, Parquet, stdin) and
//!   where rows land (atomic Parquet part files).
//! - [`schema`]: column names, edge schemas (mirrored by `schemas/*.json`) and the
//!   record envelope (`id`, `status`, `error_kind`, `error`).
//! - [`imaging`]: pure image decoding and BLIP preprocessing.
//! - [`dsp`]: pure audio processing: WAV, resampling, STFT, mel, dB, Griffin-Lim.
//! - [`speech`]: spoken descriptions with eSpeak NG.
//! - [`datasets`]: image–caption–audio triplets in Parquet.
//! - [`metrics`]: caption and audio scores; pure.
//! - [`train`]: what training and datasets share: seeded randomness, JSONL logs.
//! - [`report`]: the HTML report of a run folder.
//! - [`telemetry`]: Prometheus metric names, registry, health, and `/metrics`,
//!   `/healthz`, `/readyz`.
//! - [`http`]: the HTTP server loop with its limits (connections, header timeout,
//!   connection age, accept back-off, drain), under axum routes.
//! - [`serve`]: `capstream serve`: requests over HTTP and as a NATS micro service, fed
//!   into an embedded pipeline through a request source and answered by a response
//!   sink, with admission, status codes and draining.
//! - [`transport`]: distributed mode on NATS JetStream: the wire format, streams and
//!   consumers, and the worker, submit and sink roles.
//! - [`error`]: the one error type.
//!
//! # What is not here
//!
//! Nothing in this crate links libtorch. The models, the training loops and the running
//! halves of the model stages are the model side, `capstream-torch` (`torch/`), which
//! provides its stage builders to [`stages`] at start-up. So every process that runs no
//! model (a decode or speak worker, submit, sink, `speak`, `features`, `score`) starts
//! without loading libtorch.
//!
//! # Error policy
//!
//! A record that fails is data: it continues as a row with `status = "error"`, a
//! stable `error_kind` and a message naming the record. [`Error`] is for what stops an
//! operation: bad configuration, unwritable output, a stage that cannot continue.

#![warn(missing_docs)]

pub mod config;
pub mod datasets;
pub mod dsp;
pub mod error;
pub mod http;
pub mod imaging;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod schema;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod speech;
pub mod stages;
pub mod telemetry;
pub mod train;
pub mod transport;

pub use error::{Error, Result};
