//! The front door: admission, hand-over and waiting, shared by HTTP and NATS.
//!
//! A request is admitted when a slot is free (`queue_capacity` slots in all), gets a
//! fresh record id, registers as a waiter with the response sink and is handed to the
//! request source. It then waits for its row until `request_timeout_ms`. Refusals are
//! immediate: a full house is 429, a closing or failed pipeline 503. Closing stops
//! admission, waits for the admitted to be answered, then drops the hand-over queue,
//! which ends the pipeline's source. This module must not know about HTTP or NATS.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::ServeConfig;
use crate::schema::RecordOptions;
use crate::sinks::{Answer, Waiters};
use crate::sources::Request;
use crate::telemetry::ServeMetrics;

/// Why a request got no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken: try again later (429).
    Overloaded,
    /// The server is closing, or its pipeline has stopped (503).
    Unavailable,
    /// No row within `request_timeout_ms` (504).
    TimedOut,
}

/// A row and when things happened to its request.
#[derive(Debug, Clone)]
pub struct Served {
    /// The row.
    pub answer: Answer,
    /// From admission to the row reaching the response sink.
    pub pipeline: Duration,
}

/// Admission, hand-over and waiting.
#[derive(Debug)]
pub struct Front {
    cfg: ServeConfig,
    queue: Mutex<Option<flume::Sender<Request>>>,
    waiters: Waiters,
    slots: Arc<Semaphore>,
    closing: AtomicBool,
    next: AtomicU64,
    /// Ids are `<nonce>-<n>`: unique within this process and, with the nonce, across
    /// replicas and restarts, so that logs and rows of different processes never
    /// share an id.
    nonce: String,
    metrics: ServeMetrics,
}

impl Front {
    /// A front door feeding `queue` and answered through `waiters`.
    pub fn new(
        cfg: ServeConfig,
        queue: flume::Sender<Request>,
        waiters: Waiters,
        metrics: ServeMetrics,
    ) -> Front {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let nonce = format!("{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id());
        Front {
            slots: Arc::new(Semaphore::new(cfg.queue_capacity)),
            cfg,
            queue: Mutex::new(Some(queue)),
            waiters,
            closing: AtomicBool::new(false),
            next: AtomicU64::new(0),
            nonce,
            metrics,
        }
    }

    /// The limits served under.
    pub fn config(&self) -> &ServeConfig {
        &self.cfg
    }

    /// The metrics requests are counted in.
    pub fn metrics(&self) -> &ServeMetrics {
        &self.metrics
    }

    /// True once [`Front::close`] began: not ready for new requests.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Admitted requests not yet answered.
    pub fn in_flight(&self) -> usize {
        self.cfg.queue_capacity - self.slots.available_permits()
    }

    /// Runs one record through the pipeline and waits for its row.
    pub async fn submit(
        &self,
        uri: &str,
        image: Bytes,
        options: RecordOptions,
    ) -> Result<Served, Refusal> {
        if self.is_closing() {
            return Err(Refusal::Unavailable);
        }
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            return Err(Refusal::Overloaded);
        };
        self.metrics.in_flight.inc();
        let r = self.hand_over(uri, image, options).await;
        self.metrics.in_flight.dec();
        r
    }

    async fn hand_over(
        &self,
        uri: &str,
        image: Bytes,
        options: RecordOptions,
    ) -> Result<Served, Refusal> {
        let id = format!(
            "{}-{}",
            self.nonce,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let Some(rx) = self.waiters.wait(&id) else {
            return Err(Refusal::Unavailable);
        };
        let admitted = Instant::now();
        let request = Request {
            id: id.clone(),
            uri: uri.to_string(),
            image,
            options,
        };
        let sent = match self.queue.lock() {
            Ok(q) => match q.as_ref() {
                // Slots bound what is admitted, so the queue has room unless requests
                // that timed out are still in it: then it is overload too.
                Some(q) => q.try_send(request).map_err(|e| match e {
                    flume::TrySendError::Full(_) => Refusal::Overloaded,
                    flume::TrySendError::Disconnected(_) => Refusal::Unavailable,
                }),
                None => Err(Refusal::Unavailable),
            },
            Err(_) => Err(Refusal::Unavailable),
        };
        if let Err(refusal) = sent {
            self.waiters.forget(&id);
            return Err(refusal);
        }
        let wait = Duration::from_millis(self.cfg.request_timeout_ms);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => {
                let pipeline = answer
                    .answered
                    .map(|t| t.saturating_duration_since(admitted))
                    .unwrap_or_default();
                Ok(Served { answer, pipeline })
            }
            // The sink dropped the waiter: the pipeline has ended.
            Ok(Err(_)) => Err(Refusal::Unavailable),
            Err(_) => {
                self.waiters.forget(&id);
                Err(Refusal::TimedOut)
            }
        }
    }

    /// Stops admitting, waits up to `within` for the admitted requests to be answered,
    /// then drops the hand-over queue so that the pipeline's source ends. Returns how
    /// many were still waiting when it gave up.
    pub async fn close(&self, within: Duration) -> usize {
        self.closing.store(true, Ordering::SeqCst);
        let all = self.cfg.queue_capacity as u32;
        let left = match tokio::time::timeout(within, self.slots.acquire_many(all)).await {
            Ok(Ok(permits)) => {
                drop(permits);
                0
            }
            _ => self.in_flight(),
        };
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        left
    }

    /// The pipeline has stopped: every waiting caller is answered 503 at once, and
    /// nothing more is admitted.
    pub fn fail_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        self.waiters.clear();
    }
}
