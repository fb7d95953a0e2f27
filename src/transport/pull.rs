//! Pulling from a durable consumer, and getting a stalled one going again.
//!
//! Every pull request carries an expiry (the server ends it with a 408) and is also
//! bounded on the client, `CLIENT_SLACK` past that expiry: a request lost in a leader
//! change is never answered, and a pull without a deadline would wait for it forever.
//! A consumer is *stalled* when it reports pending messages, with room under its
//! `max_ack_pending`, while this process's pulls have returned nothing for
//! `[nats] stall_after_ms`. A stall is logged, counted in
//! `capstream_nats_pull_stalls_total`, and recovered from by re-binding the consumer
//! (fresh consumer info, fresh pull subscriptions); a second stall in a row also asks
//! the consumer's leader to step down, which makes a clustered server re-elect one and
//! re-send every waiting request a `409 Leadership Change`; every third one in a row
//! also reconnects the client (perhaps to another server of the cluster).
//!
//! This module must not know what the messages hold, nor acknowledge them.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message;
use futures_util::StreamExt;

use super::metrics::NatsMetrics;
use super::{nats_err, Connection};
use crate::error::{Error, Result};
use crate::pipeline::Shutdown;
use crate::telemetry::Flag;

/// The shortest expiry a pull request is given. A request that expires within a few
/// milliseconds can lapse on nats-server 2.9 without the 408 that ends it: the sink,
/// asking for what fits before a commit falls due, stalled 5.5 s at a time that way
/// while the workers went on publishing.
pub(crate) const MIN_PULL_EXPIRY: Duration = Duration::from_millis(100);

/// How long past its expiry the client waits for a pull request to end. async-nats'
/// own backstop is 5 s; a worker gives up sooner and pulls again.
pub(crate) const CLIENT_SLACK: Duration = Duration::from_secs(2);

/// Limit on the JetStream API calls made while recovering (consumer info, step-down).
const API_DEADLINE: Duration = Duration::from_secs(5);

/// A durable pull consumer with bounded pulls and stall recovery.
pub struct Puller {
    conn: Connection,
    stream: String,
    name: String,
    consumer: PullConsumer,
    stall_after: Duration,
    /// When pulls started returning nothing (none while they return messages).
    empty_since: Option<Instant>,
    /// Stalls found in a row.
    stalls_in_row: u32,
    /// Failed pull requests in a row.
    failures: u32,
    nm: NatsMetrics,
    bound: Option<Flag>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("stream", &self.stream)
            .field("consumer", &self.name)
            .finish()
    }
}

async fn get_consumer(conn: &Connection, stream: &str, name: &str) -> Result<PullConsumer> {
    let fut = async {
        conn.js
            .get_stream(stream)
            .await
            .map_err(nats_err(format!("stream {stream}")))?
            .get_consumer(name)
            .await
            .map_err(nats_err(format!("consumer {name} on {stream}")))
    };
    tokio::time::timeout(API_DEADLINE, fut)
        .await
        .map_err(|_| Error::Nats(format!("consumer {name} on {stream}: no answer in 5 s")))?
}

impl Puller {
    /// Binds consumer `name` of `stream`. `bound`, when given, is the readiness flag
    /// that says the consumer is bound and delivering.
    pub async fn bind(
        conn: &Connection,
        stream: &str,
        name: &str,
        nm: NatsMetrics,
        bound: Option<Flag>,
    ) -> Result<Puller> {
        let consumer = get_consumer(conn, stream, name).await?;
        if let Some(b) = &bound {
            b.set(true);
        }
        Ok(Puller {
            conn: conn.clone(),
            stream: stream.to_string(),
            name: name.to_string(),
            consumer,
            stall_after: Duration::from_millis(conn.nats.stall_after_ms),
            empty_since: None,
            stalls_in_row: 0,
            failures: 0,
            nm,
            bound,
        })
    }

    /// [`Puller::bind`], retried every second until it succeeds or `shutdown` stops
    /// the process (then `None`). A stream or consumer whose leader is being elected
    /// answers nothing for a while ("no answer in 5 s"); a role started then, or
    /// restarted by its supervisor, must wait for the new leader, not exit.
    pub async fn bind_until(
        conn: &Connection,
        stream: &str,
        name: &str,
        nm: NatsMetrics,
        bound: Option<Flag>,
        shutdown: &Shutdown,
    ) -> Option<Puller> {
        loop {
            match Puller::bind(conn, stream, name, nm.clone(), bound.clone()).await {
                Ok(p) => return Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, consumer = name, stream, "Consumer unavailable; retrying.");
                    if shutdown.is_stopping() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The consumer, for its info.
    pub fn consumer(&self) -> &PullConsumer {
        &self.consumer
    }

    /// Pulls up to `max` messages: waits up to `idle` for a first one, then up to
    /// `fill` for the rest (zero: only what is there now), so an idle worker asks the
    /// server rarely and a busy one gets full batches. Every request is read to its
    /// end or its deadline: abandoning one early would leave messages delivered to
    /// nobody until their ack wait ran out.
    pub async fn pull(
        &mut self,
        max: usize,
        idle: Duration,
        fill: Duration,
    ) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let r = self
            .request(&mut out, 1, idle.max(MIN_PULL_EXPIRY), false)
            .await;
        let r = match r {
            Ok(()) if !out.is_empty() && max > 1 => {
                let (expiry, no_wait) = if fill.is_zero() {
                    (MIN_PULL_EXPIRY, true)
                } else {
                    (fill.max(MIN_PULL_EXPIRY), false)
                };
                self.request(&mut out, max - 1, expiry, no_wait).await
            }
            r => r,
        };
        match r {
            Ok(()) => self.failures = 0,
            Err(e) if out.is_empty() => {
                self.failures += 1;
                if self.failures >= 3 {
                    self.failures = 0;
                    self.rebind("pull requests keep failing").await;
                }
                return Err(e);
            }
            // What arrived before the failure is kept; the next pull reports it.
            Err(e) => tracing::debug!(error = %e, "Pull request ended early."),
        }
        if out.is_empty() {
            self.check_stall().await;
        } else {
            self.empty_since = None;
            self.stalls_in_row = 0;
            if let Some(b) = &self.bound {
                b.set(true);
            }
        }
        Ok(out)
    }

    /// One request for up to `n` messages expiring after `expiry`, drained into `out`
    /// until it ends or its client deadline passes.
    async fn request(
        &mut self,
        out: &mut Vec<Message>,
        n: usize,
        expiry: Duration,
        no_wait: bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + expiry + CLIENT_SLACK;
        let what = format!("pull request on {}/{}", self.stream, self.name);
        let batch = async {
            if no_wait {
                self.consumer
                    .fetch()
                    .max_messages(n)
                    .expires(expiry)
                    .messages()
                    .await
            } else {
                self.consumer
                    .batch()
                    .max_messages(n)
                    .expires(expiry)
                    .messages()
                    .await
            }
        };
        let mut batch = match tokio::time::timeout_at(deadline, batch).await {
            Ok(b) => b.map_err(nats_err(&what))?,
            Err(_) => {
                self.nm.pull_timeouts.inc();
                return Err(Error::Nats(format!("{what}: not sent before its deadline")));
            }
        };
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(m))) => out.push(m),
                Ok(Some(Err(e))) => {
                    // 409s (leadership change, consumer deleted) end a request; the
                    // next one goes to whoever leads now.
                    tracing::debug!(error = %e, "Pull request ended.");
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(_) => {
                    self.nm.pull_timeouts.inc();
                    tracing::debug!(
                        stream = %self.stream,
                        consumer = %self.name,
                        "Pull request unanswered past its expiry; giving up on it."
                    );
                    return Ok(());
                }
            }
        }
    }

    /// After an empty pull: a stall when the consumer has had pending messages all
    /// along while this process got none for `stall_after`.
    async fn check_stall(&mut self) {
        let since = *self.empty_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.stall_after {
            return;
        }
        // Re-arm: the next check is a full interval away whatever this one finds.
        self.empty_since = Some(Instant::now());
        let info = match tokio::time::timeout(API_DEADLINE, self.consumer.info()).await {
            Ok(Ok(i)) => i.clone(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Consumer info failed.");
                return;
            }
            Err(_) => return,
        };
        let room = info.config.max_ack_pending <= 0
            || (info.num_ack_pending as i64) < info.config.max_ack_pending;
        if info.num_pending == 0 || !room {
            self.stalls_in_row = 0;
            return;
        }
        self.stalls_in_row += 1;
        self.nm.stalls.inc();
        tracing::warn!(
            stream = %self.stream,
            consumer = %self.name,
            pending = info.num_pending,
            ack_pending = info.num_ack_pending,
            quiet_s = self.stall_after.as_secs_f64(),
            stalls_in_row = self.stalls_in_row,
            "Consumer reports pending messages but pulls return nothing; re-binding it."
        );
        if let Some(b) = &self.bound {
            b.set(false);
        }
        self.rebind("stalled").await;
        if self.stalls_in_row >= 2 {
            self.step_down().await;
        }
        if self.stalls_in_row >= 3 && self.stalls_in_row.is_multiple_of(3) {
            // Last resort: a new connection, possibly to another server of the
            // cluster (the one this process is on may have lost its route to the
            // consumer's leader). Every loop of the process shares it; they all
            // re-pull on their own.
            tracing::warn!(
                stream = %self.stream,
                consumer = %self.name,
                "Consumer still stalled; reconnecting to NATS."
            );
            if let Err(e) = self.conn.client.force_reconnect().await {
                tracing::warn!(error = %e, "Reconnect request failed.");
            }
        }
    }

    /// Fetches the consumer afresh; on failure keeps the old handle (the next pull
    /// tries again).
    async fn rebind(&mut self, why: &str) {
        match get_consumer(&self.conn, &self.stream, &self.name).await {
            Ok(c) => {
                self.consumer = c;
                tracing::info!(stream = %self.stream, consumer = %self.name, why, "Consumer re-bound.");
                if let Some(b) = &self.bound {
                    b.set(true);
                }
            }
            Err(e) => {
                if let Some(b) = &self.bound {
                    b.set(false);
                }
                tracing::warn!(error = %e, why, "Cannot re-bind the consumer; retrying on the next pull.");
            }
        }
    }

    /// Asks the consumer's leader to step down (clustered servers only; a single
    /// server answers that it is not clustered, which is fine).
    async fn step_down(&self) {
        let subject = format!(
            "$JS.API.CONSUMER.LEADER.STEPDOWN.{}.{}",
            self.stream, self.name
        );
        match step_down(&self.conn.client, subject).await {
            Ok(()) => tracing::warn!(
                stream = %self.stream,
                consumer = %self.name,
                "Asked the consumer's leader to step down after repeated stalls."
            ),
            Err(e) => tracing::info!(error = %e, "Consumer leader step-down not done."),
        }
    }
}

/// Sends a JetStream leader step-down request (`$JS.API.*.LEADER.STEPDOWN.…`) and
/// checks the answer. The body must be `{}`: the server refuses `null`.
pub async fn step_down(client: &async_nats::Client, subject: String) -> Result<()> {
    let answer = tokio::time::timeout(
        API_DEADLINE,
        client.request(subject.clone(), bytes::Bytes::from_static(b"{}")),
    )
    .await
    .map_err(|_| Error::Nats(format!("{subject}: no answer in 5 s")))?
    .map_err(nats_err(&subject))?;
    let v: serde_json::Value = serde_json::from_slice(&answer.payload)?;
    match v.get("error") {
        Some(e) => Err(Error::Nats(format!("{subject}: {e}"))),
        None => Ok(()),
    }
}
