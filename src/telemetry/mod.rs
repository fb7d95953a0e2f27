//! Prometheus metrics, health and the monitoring endpoints: names, the per-pipeline
//! registry, liveness/readiness state, and `/metrics`, `/healthz`, `/readyz`.
//!
//! The runtime records every standard metric here; stages never touch them. Names follow
//! Prometheus conventions (`capstream_` prefix, base units, `_total` on counters) and
//! labels are bounded: `pipeline`, `stage` and, for failures, the error kind.

mod health;
mod serve;
mod server;

pub use health::{Beat, Flag, Health};
pub use serve::ServeMetrics;
pub use server::{routes, serve};

use std::path::Path;

use prometheus::{
    exponential_buckets, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec,
    Opts, Registry,
};

/// Metric and label names.
pub mod names {
    /// Records received by a stage.
    pub const RECORDS_IN: &str = "capstream_stage_records_in_total";
    /// Records emitted by a stage.
    pub const RECORDS_OUT: &str = "capstream_stage_records_out_total";
    /// Records a stage turned into error rows, by reason.
    pub const RECORDS_FAILED: &str = "capstream_stage_records_failed_total";
    /// Batches processed by a stage.
    pub const BATCHES: &str = "capstream_stage_batches_total";
    /// Time a stage spent on one batch.
    pub const BATCH_SECONDS: &str = "capstream_stage_batch_duration_seconds";
    /// Rows in one batch as processed.
    pub const BATCH_ROWS: &str = "capstream_stage_batch_rows";
    /// Batches waiting in the channel in front of a stage.
    pub const CHANNEL_DEPTH: &str = "capstream_stage_channel_depth";
    /// Unix time of the stage's last processed batch.
    pub const HEARTBEAT: &str = "capstream_stage_last_heartbeat_timestamp_seconds";
    /// Records the source skipped because `--resume` found them committed.
    pub const RECORDS_SKIPPED: &str = "capstream_source_records_skipped_total";
    /// Rows committed to the output by the sink.
    pub const ROWS_COMMITTED: &str = "capstream_sink_rows_committed_total";
    /// Files committed by the sink.
    pub const FILES_COMMITTED: &str = "capstream_sink_files_committed_total";
    /// Bytes committed by the sink.
    pub const BYTES_COMMITTED: &str = "capstream_sink_bytes_committed_total";
    /// Unix time the run started.
    pub const START_TIME: &str = "capstream_pipeline_start_time_seconds";
    /// Requests `capstream serve` answered, by endpoint and status code.
    pub const SERVE_REQUESTS: &str = "capstream_serve_requests_total";
    /// Time from a request's arrival to its answer, by endpoint.
    pub const SERVE_SECONDS: &str = "capstream_serve_request_duration_seconds";
    /// Requests admitted and not yet answered.
    pub const SERVE_IN_FLIGHT: &str = "capstream_serve_requests_in_flight";

    /// Label: the pipeline's name.
    pub const LABEL_PIPELINE: &str = "pipeline";
    /// Label: the stage's name (`source` and `sink` for the ends).
    pub const LABEL_STAGE: &str = "stage";
    /// Label: an error kind.
    pub const LABEL_REASON: &str = "reason";
    /// Label: a served endpoint (`caption`, `describe`).
    pub const LABEL_ENDPOINT: &str = "endpoint";
    /// Label: how a request was answered: its HTTP status code (NATS answers use the
    /// same codes).
    pub const LABEL_CODE: &str = "code";
    /// Label: the protocol a request came by (`http`, `nats`).
    pub const LABEL_PROTOCOL: &str = "protocol";
}

use names::*;

/// The standard metrics of one pipeline, in their own registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served on `/metrics`.
    pub registry: Registry,
    pipeline: String,
    records_in: IntCounterVec,
    records_out: IntCounterVec,
    records_failed: IntCounterVec,
    batches: IntCounterVec,
    batch_seconds: HistogramVec,
    batch_rows: HistogramVec,
    channel_depth: IntGaugeVec,
    heartbeat: GaugeVec,
    skipped: IntCounterVec,
    rows_committed: IntCounterVec,
    files_committed: IntCounterVec,
    bytes_committed: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Creates and registers every standard metric for `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        let registry = Registry::new();
        let stage = &[LABEL_PIPELINE, LABEL_STAGE];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let records_in = counter(RECORDS_IN, "Records received by a stage.", stage);
        let records_out = counter(RECORDS_OUT, "Records emitted by a stage.", stage);
        let records_failed = counter(
            RECORDS_FAILED,
            "Records a stage turned into error rows, by reason.",
            &[LABEL_PIPELINE, LABEL_STAGE, LABEL_REASON],
        );
        let batches = counter(BATCHES, "Batches processed by a stage.", stage);
        let skipped = counter(
            RECORDS_SKIPPED,
            "Records skipped because they were already committed (--resume).",
            stage,
        );
        let rows_committed = counter(ROWS_COMMITTED, "Rows committed to the output.", stage);
        let files_committed = counter(FILES_COMMITTED, "Files committed to the output.", stage);
        let bytes_committed = counter(BYTES_COMMITTED, "Bytes committed to the output.", stage);
        // 1 ms to ~9 minutes: model and audio batches take far longer than the
        // library default's 10 s ceiling.
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(BATCH_SECONDS, "Time a stage spent on one batch.")
                .buckets(exponential_buckets(0.001, 2.0, 20).expect("valid buckets")),
            stage,
        )
        .expect("valid metric");
        registry
            .register(Box::new(batch_seconds.clone()))
            .expect("unique name");
        let batch_rows = HistogramVec::new(
            HistogramOpts::new(BATCH_ROWS, "Rows in one batch as processed.")
                .buckets(exponential_buckets(1.0, 2.0, 11).expect("valid buckets")),
            stage,
        )
        .expect("valid metric");
        registry
            .register(Box::new(batch_rows.clone()))
            .expect("unique name");
        let channel_depth = IntGaugeVec::new(
            opts(
                CHANNEL_DEPTH,
                "Batches waiting in the channel in front of a stage.",
            ),
            stage,
        )
        .expect("valid metric");
        registry
            .register(Box::new(channel_depth.clone()))
            .expect("unique name");
        let heartbeat = GaugeVec::new(
            opts(HEARTBEAT, "Unix time of the stage's last processed batch."),
            stage,
        )
        .expect("valid metric");
        registry
            .register(Box::new(heartbeat.clone()))
            .expect("unique name");
        let start = Gauge::with_opts(
            opts(START_TIME, "Unix time the run started.").const_label(LABEL_PIPELINE, pipeline),
        )
        .expect("valid metric");
        start.set(unix_now());
        registry.register(Box::new(start)).expect("unique name");
        Metrics {
            registry,
            pipeline: pipeline.to_string(),
            records_in,
            records_out,
            records_failed,
            batches,
            batch_seconds,
            batch_rows,
            channel_depth,
            heartbeat,
            skipped,
            rows_committed,
            files_committed,
            bytes_committed,
        }
    }

    /// The handle a stage's runtime loop records into.
    pub fn stage(&self, stage: &str) -> StageMetrics {
        let l = [self.pipeline.as_str(), stage];
        StageMetrics {
            all: self.clone(),
            stage: stage.to_string(),
            records_in: self.records_in.with_label_values(&l),
            records_out: self.records_out.with_label_values(&l),
            batches: self.batches.with_label_values(&l),
            batch_seconds: self.batch_seconds.with_label_values(&l),
            batch_rows: self.batch_rows.with_label_values(&l),
            channel_depth: self.channel_depth.with_label_values(&l),
            heartbeat: self.heartbeat.with_label_values(&l),
        }
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }

    /// Writes the registry to `path` in the Prometheus text format, whole or not at
    /// all (a temporary file renamed over it), for a batch job's final figures: node
    /// exporter's textfile collector reads such files, and a scraper may never see a
    /// process that ends in seconds.
    pub fn write_textfile(&self, path: &Path) -> crate::error::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.render()).map_err(|e| crate::Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| crate::Error::io(path, e))
    }
}

/// Pre-labelled metrics of one stage.
#[derive(Clone)]
pub struct StageMetrics {
    all: Metrics,
    stage: String,
    /// Records received.
    pub records_in: prometheus::IntCounter,
    /// Records emitted.
    pub records_out: prometheus::IntCounter,
    /// Batches processed.
    pub batches: prometheus::IntCounter,
    /// Seconds per batch.
    pub batch_seconds: prometheus::Histogram,
    /// Rows per batch.
    pub batch_rows: prometheus::Histogram,
    /// Batches waiting in front of the stage.
    pub channel_depth: prometheus::IntGauge,
    /// Last heartbeat.
    pub heartbeat: prometheus::Gauge,
}

impl StageMetrics {
    /// Counts `n` records failed for `reason` (an error kind string).
    pub fn failed(&self, reason: &str, n: u64) {
        self.all
            .records_failed
            .with_label_values(&[self.all.pipeline.as_str(), self.stage.as_str(), reason])
            .inc_by(n);
    }

    /// Counts records skipped by `--resume`.
    pub fn skipped(&self, n: u64) {
        self.all
            .skipped
            .with_label_values(&[self.all.pipeline.as_str(), self.stage.as_str()])
            .inc_by(n);
    }

    /// Counts one committed output file.
    pub fn committed(&self, rows: u64, bytes: u64) {
        let l = [self.all.pipeline.as_str(), self.stage.as_str()];
        self.all.rows_committed.with_label_values(&l).inc_by(rows);
        self.all.files_committed.with_label_values(&l).inc();
        self.all.bytes_committed.with_label_values(&l).inc_by(bytes);
    }

    /// Marks the stage alive now.
    pub fn beat(&self) {
        self.heartbeat.set(unix_now());
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_names_follow_the_constants() {
        let m = Metrics::new("p");
        let s = m.stage("decode_image");
        s.records_in.inc_by(3);
        s.failed("decode", 1);
        s.batch_seconds.observe(0.2);
        let text = m.render();
        assert!(text
            .contains("capstream_stage_records_in_total{pipeline=\"p\",stage=\"decode_image\"} 3"));
        assert!(text.contains(
            "capstream_stage_records_failed_total{pipeline=\"p\",reason=\"decode\",stage=\"decode_image\"} 1"
        ));
        assert!(text.contains("capstream_stage_batch_duration_seconds_bucket"));
        assert!(text.contains("le=\"262.144\""), "buckets reach minutes");
    }
}
