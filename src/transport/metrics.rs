//! Distributed-mode metrics, registered in the same registry as the standard stage
//! metrics so that one `/metrics` serves both.
//!
//! Consumer gauges come from the server (`consumer info`), polled by the worker; the
//! rest are counted where they happen. Labels are the pipeline and the stage (the
//! consumer's name), plus a bounded `reason` on dead letters.

use prometheus::{exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec};

use crate::telemetry::names::{LABEL_PIPELINE, LABEL_REASON, LABEL_STAGE};
use crate::telemetry::Metrics;

/// Metric names.
pub mod names {
    /// Messages in the stage's stream not yet delivered to any worker.
    pub const CONSUMER_PENDING: &str = "capstream_nats_consumer_pending_messages";
    /// Messages delivered to the stage's workers and not yet acknowledged.
    pub const CONSUMER_ACK_PENDING: &str = "capstream_nats_consumer_ack_pending_messages";
    /// Messages the server has redelivered to the stage at least once (server view).
    pub const CONSUMER_REDELIVERED: &str = "capstream_nats_consumer_redelivered_messages";
    /// Deliveries this worker received that were redeliveries.
    pub const REDELIVERIES: &str = "capstream_nats_redeliveries_total";
    /// Messages this worker dead-lettered, by reason.
    pub const DEAD_LETTERED: &str = "capstream_nats_dead_lettered_total";
    /// Messages this worker returned for a later retry (nak with delay).
    pub const RETRIES: &str = "capstream_nats_naks_total";
    /// Seconds from sending a publish to the server's acknowledgement.
    pub const PUBLISH_SECONDS: &str = "capstream_nats_publish_duration_seconds";
    /// Payloads that went through the Object Store.
    pub const CLAIMS: &str = "capstream_nats_claim_checks_total";
    /// Rows the sink dropped because their id was already committed or pending.
    pub const DUPLICATES: &str = "capstream_nats_sink_duplicate_rows_total";
    /// Stalled consumers found (pending messages, empty pulls) and recovered from.
    pub const PULL_STALLS: &str = "capstream_nats_pull_stalls_total";
    /// Pull requests given up on at their client-side deadline (no 408 came).
    pub const PULL_TIMEOUTS: &str = "capstream_nats_pull_timeouts_total";
    /// Stage batches that ran past `[nats] batch_timeout_ms`.
    pub const BATCH_TIMEOUTS: &str = "capstream_nats_batch_timeouts_total";
}

use names::*;

/// Distributed-mode metrics of one process, pre-labelled for its stage.
#[derive(Clone)]
pub struct NatsMetrics {
    /// Server-side pending messages.
    pub pending: prometheus::IntGauge,
    /// Server-side ack-pending messages.
    pub ack_pending: prometheus::IntGauge,
    /// Server-side redelivered messages.
    pub redelivered: prometheus::IntGauge,
    /// Redeliveries received here.
    pub redeliveries: prometheus::IntCounter,
    /// Naks sent here.
    pub retries: prometheus::IntCounter,
    /// Publish latency.
    pub publish_seconds: prometheus::Histogram,
    /// Claim checks written here.
    pub claims: prometheus::IntCounter,
    /// Duplicate rows dropped by the sink.
    pub duplicates: prometheus::IntCounter,
    /// Stalled consumers recovered from.
    pub stalls: prometheus::IntCounter,
    /// Pull requests abandoned at their client deadline.
    pub pull_timeouts: prometheus::IntCounter,
    /// Batches past their deadline.
    pub batch_timeouts: prometheus::IntCounter,
    dead: IntCounterVec,
    labels: [String; 2],
}

impl NatsMetrics {
    /// Registers the metrics in `metrics`' registry for `stage`.
    pub fn new(metrics: &Metrics, pipeline: &str, stage: &str) -> Self {
        let r = &metrics.registry;
        let l = &[LABEL_PIPELINE, LABEL_STAGE];
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(prometheus::Opts::new(name, help), l).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique name");
            g.with_label_values(&[pipeline, stage])
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(prometheus::Opts::new(name, help), l).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique name");
            c.with_label_values(&[pipeline, stage])
        };
        let dead = IntCounterVec::new(
            prometheus::Opts::new(DEAD_LETTERED, "Messages dead-lettered, by reason."),
            &[LABEL_PIPELINE, LABEL_STAGE, LABEL_REASON],
        )
        .expect("valid metric");
        r.register(Box::new(dead.clone())).expect("unique name");
        // 100 µs to ~50 s: loopback acks take well under a millisecond, a cluster
        // election can hold one for seconds.
        let publish = HistogramVec::new(
            HistogramOpts::new(PUBLISH_SECONDS, "Seconds from publish to server ack.")
                .buckets(exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")),
            l,
        )
        .expect("valid metric");
        r.register(Box::new(publish.clone())).expect("unique name");
        NatsMetrics {
            pending: gauge(CONSUMER_PENDING, "Messages not yet delivered to a worker."),
            ack_pending: gauge(
                CONSUMER_ACK_PENDING,
                "Messages delivered, not acknowledged.",
            ),
            redelivered: gauge(CONSUMER_REDELIVERED, "Messages redelivered (server view)."),
            redeliveries: counter(REDELIVERIES, "Redeliveries received by this worker."),
            retries: counter(RETRIES, "Messages returned for a delayed retry."),
            claims: counter(CLAIMS, "Payloads sent through the Object Store."),
            duplicates: counter(DUPLICATES, "Rows dropped as already committed."),
            stalls: counter(PULL_STALLS, "Stalled consumers found and recovered from."),
            pull_timeouts: counter(
                PULL_TIMEOUTS,
                "Pull requests given up on at their client deadline.",
            ),
            batch_timeouts: counter(BATCH_TIMEOUTS, "Stage batches past batch_timeout_ms."),
            publish_seconds: publish.with_label_values(&[pipeline, stage]),
            dead,
            labels: [pipeline.to_string(), stage.to_string()],
        }
    }

    /// Counts one dead-lettered message.
    pub fn dead_lettered(&self, reason: &str) {
        self.dead
            .with_label_values(&[self.labels[0].as_str(), self.labels[1].as_str(), reason])
            .inc();
    }
}
