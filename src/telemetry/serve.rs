//! The metrics of `capstream serve`'s front door, beside the pipeline's standard ones in
//! the same registry: requests by endpoint, protocol and answer code, their latency,
//! and what is in flight. Batch sizes are the caption stage's standard
//! `capstream_stage_batch_rows`.

use prometheus::{exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec};
use prometheus::{IntGauge, Opts};

use super::names::*;
use super::Metrics;

/// Counters of served requests.
#[derive(Clone)]
pub struct ServeMetrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
    /// Requests admitted and not yet answered.
    pub in_flight: IntGauge,
}

impl std::fmt::Debug for ServeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServeMetrics")
    }
}

impl ServeMetrics {
    /// Registers the serving metrics in `metrics`' registry.
    pub fn new(metrics: &Metrics) -> Self {
        let r = &metrics.registry;
        let requests = IntCounterVec::new(
            Opts::new(
                SERVE_REQUESTS,
                "Requests answered, by endpoint, protocol and code.",
            ),
            &[LABEL_ENDPOINT, LABEL_PROTOCOL, LABEL_CODE],
        )
        .expect("valid metric");
        r.register(Box::new(requests.clone())).expect("unique name");
        // 1 ms to ~65 s.
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                SERVE_SECONDS,
                "Time from a request's arrival to its answer.",
            )
            .buckets(exponential_buckets(0.001, 2.0, 17).expect("valid buckets")),
            &[LABEL_ENDPOINT, LABEL_PROTOCOL],
        )
        .expect("valid metric");
        r.register(Box::new(seconds.clone())).expect("unique name");
        let in_flight = IntGauge::new(SERVE_IN_FLIGHT, "Requests admitted and not yet answered.")
            .expect("valid metric");
        r.register(Box::new(in_flight.clone()))
            .expect("unique name");
        ServeMetrics {
            requests,
            seconds,
            in_flight,
        }
    }

    /// Records one answered request.
    pub fn answered(&self, endpoint: &str, protocol: &str, code: u16, seconds: f64) {
        self.requests
            .with_label_values(&[endpoint, protocol, &code.to_string()])
            .inc();
        self.seconds
            .with_label_values(&[endpoint, protocol])
            .observe(seconds);
    }
}
