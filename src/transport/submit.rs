//! `capstream submit`: the pipeline's source, published onto its first edge.
//!
//! The source (files, Parquet, stdin) runs on a blocking thread as in embedded mode;
//! its batches are cut to `[nats] records_per_message` rows and published with a
//! `Nats-Msg-Id` made of their record ids, so submitting the same input twice inside
//! the server's duplicate window stores it once (and the sink drops ids it already
//! committed after that). Flow control has two levels: at most [`WINDOW`] publishes
//! wait for their acknowledgement at once, and publishing pauses while the first
//! stream holds more than `[nats] max_backlog` messages, so a large input never
//! floods the server ahead of the workers.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use super::codec::{encode_within, Outgoing, Pending};
use super::metrics::NatsMetrics;
use super::{message_id, record_ids, Connection, SOURCE};
use crate::error::{Error, Result};
use crate::pipeline::{CountedSource, Plan, Shutdown};
use crate::sources::SourceInput;
use crate::telemetry::Metrics;

/// Publishes awaiting their acknowledgement at most.
pub const WINDOW: usize = 256;

/// What `capstream submit` runs.
#[derive(Debug)]
pub struct SubmitOptions {
    /// The checked pipeline.
    pub plan: Plan,
    /// What `--input` named.
    pub input: SourceInput,
    /// Record ids not to publish (already committed, for `run --resume`).
    pub skip: Arc<HashSet<String>>,
    /// The submission's name (see [`headers::SUBMISSION`](super::headers::SUBMISSION));
    /// `None` makes one from the start time and pid. A restarted submit that gives the
    /// same name republishes under the same message ids, which the server drops inside
    /// its duplicate window, so no record is processed twice upstream of the sink.
    pub submission: Option<String>,
}

/// Checks a submission name: it travels in headers and message ids.
pub fn check_submission(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--submission {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
            super::headers::escape(name)
        )))
    }
}

/// What a submit published.
#[derive(Debug, Clone, Default)]
pub struct SubmitSummary {
    /// Records published.
    pub records: u64,
    /// Messages published.
    pub messages: u64,
    /// Messages the server had already stored (same message id inside its window).
    pub duplicates: u64,
    /// Wall time.
    pub seconds: f64,
    /// True when a stop request ended it before the input did.
    pub interrupted: bool,
}

/// Publishes the whole input (or until `shutdown` stops it) and waits for every
/// acknowledgement.
pub async fn run(
    conn: Connection,
    opts: SubmitOptions,
    shutdown: Shutdown,
    metrics: Metrics,
) -> Result<SubmitSummary> {
    let started = Instant::now();
    let plan = opts.plan;
    let n = plan.config.nats.clone();
    let source = plan.config.source.build(&opts.input, opts.skip.clone())?;
    let rows = n.records_per_message;
    let max_bytes = plan.config.batch.max_bytes;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
    let sd = shutdown.clone();
    let nm = NatsMetrics::new(&metrics, &plan.config.name, SOURCE);
    let sm = metrics.stage(SOURCE);
    // Counted as embedded mode's source thread counts it.
    let mut source = CountedSource::new(source, sm.clone());
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        while !sd.is_stopping() {
            let Some(b) = source.next_batch(rows, max_bytes)? else {
                break;
            };
            if tx.blocking_send(b).is_err() {
                break;
            }
        }
        Ok(())
    });
    let edge = conn.topology.edges[0].clone();
    let label = edge.label();
    let mut window: VecDeque<InFlight> = VecDeque::new();
    // This submission's token: as given, else start time and pid, unique per process on
    // a machine.
    let token = if let Some(name) = &opts.submission {
        check_submission(name)?;
        name.clone()
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}{:03}-{}",
            t.as_secs(),
            t.subsec_millis(),
            std::process::id()
        )
    };
    let mut summary = SubmitSummary::default();
    let mut since_check = 0u64;
    let mut pace = 0u32;
    while let Some(batch) = rx.recv().await {
        if since_check >= 32 || summary.messages == 0 {
            since_check = 0;
            loop {
                match conn.backlog(0).await {
                    Ok(b) if b <= n.max_backlog => break,
                    Ok(_) => {}
                    // A cluster electing a leader answers nothing for a moment.
                    Err(e) => tracing::warn!(error = %e, "Cannot read the backlog; retrying."),
                }
                if shutdown.is_stopping() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if shutdown.is_stopping() {
            summary.interrupted = true;
            break;
        }
        // Parts that each decode to at most max_message_bytes (one, unless the source
        // cut a batch of very large records).
        let parts = encode_within(&batch, conn.nats.compression, conn.nats.max_message_bytes)?;
        for (part, payload) in parts {
            let ids = record_ids(&part)?;
            let mid = message_id(SOURCE, "", &token, &ids);
            let pending = send_retrying(
                &conn,
                &edge.subject,
                &label,
                &mid,
                &token,
                part.num_rows(),
                &payload,
            )
            .await?;
            window.push_back(InFlight {
                pending,
                payload,
                rows: part.num_rows(),
                mid,
                token: token.clone(),
                attempt: 0,
                first_sent: Instant::now(),
            });
            summary.messages += 1;
            summary.records += part.num_rows() as u64;
            sm.records_out.inc_by(part.num_rows() as u64);
            sm.batches.inc();
            while window.len() >= WINDOW {
                settle_front(
                    &conn,
                    &edge.subject,
                    &label,
                    &mut window,
                    &mut pace,
                    &nm,
                    &mut summary,
                )
                .await?;
            }
        }
        since_check += 1;
    }
    drop(rx);
    while !window.is_empty() {
        settle_front(
            &conn,
            &edge.subject,
            &label,
            &mut window,
            &mut pace,
            &nm,
            &mut summary,
        )
        .await?;
    }
    match reader.await {
        Ok(r) => r?,
        Err(e) => return Err(Error::Runtime(format!("source thread failed: {e}"))),
    }
    if shutdown.is_stopping() {
        summary.interrupted = true;
    }
    sm.beat();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A publish waiting for its acknowledgement, with what is needed to send it again.
struct InFlight {
    pending: Pending,
    payload: bytes::Bytes,
    rows: usize,
    mid: String,
    token: String,
    /// Sends so far beyond the first.
    attempt: u32,
    first_sent: Instant,
}

/// How long submit keeps re-sending one message before it gives up: far longer than
/// a leader election takes (4-9 s on 2.9.10), short enough that a cluster that is
/// really gone fails the command.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Attempts at sending one message when the client itself refuses it.
const SEND_ATTEMPTS: u32 = 10;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * u64::from(attempt.min(12)))
}

/// Sends one message, retrying while the client cannot take it.
async fn send_retrying(
    conn: &Connection,
    subject: &str,
    edge: &str,
    mid: &str,
    token: &str,
    rows: usize,
    payload: &bytes::Bytes,
) -> Result<Pending> {
    let out = Outgoing {
        subject,
        stage: SOURCE,
        edge,
        message_id: mid,
        extra: vec![(super::headers::SUBMISSION, token.to_string())],
    };
    let mut attempt = 0;
    loop {
        match conn.send(&out, rows, payload.clone()).await {
            Ok(p) => return Ok(p),
            Err(e) if attempt + 1 < SEND_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "Publish failed; retrying.");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Settles the oldest publish of the window. Acknowledged, it is counted. Not
/// acknowledged, it is sent again (same message id: the server stores it once) and
/// goes to the back of the window, so that its wait overlaps every other publish's
/// instead of holding them all up: in a leader change many acknowledgements are lost
/// at once, and re-sending them one at a time, each waiting its own timeout, took
/// minutes. `pace` counts failures since the last success; every 32 of them submit
/// pauses, so a leaderless stream is not hammered.
async fn settle_front(
    conn: &Connection,
    subject: &str,
    edge: &str,
    window: &mut VecDeque<InFlight>,
    pace: &mut u32,
    nm: &NatsMetrics,
    summary: &mut SubmitSummary,
) -> Result<()> {
    let Some(mut p) = window.pop_front() else {
        return Ok(());
    };
    if p.pending.claimed {
        nm.claims.inc();
    }
    match p.pending.wait().await {
        Ok((ack, secs)) => {
            nm.publish_seconds.observe(secs);
            if ack.duplicate {
                summary.duplicates += 1;
            }
            *pace = 0;
            Ok(())
        }
        Err(e) if p.first_sent.elapsed() < GIVE_UP => {
            p.attempt += 1;
            *pace += 1;
            if p.attempt == 1 || p.attempt.is_multiple_of(5) {
                tracing::warn!(error = %e, attempt = p.attempt, "Publish not acknowledged; sending it again.");
            }
            if (*pace).is_multiple_of(32) {
                tokio::time::sleep(backoff(*pace / 32)).await;
            }
            p.pending =
                send_retrying(conn, subject, edge, &p.mid, &p.token, p.rows, &p.payload).await?;
            window.push_back(p);
            Ok(())
        }
        Err(e) => Err(Error::Nats(format!(
            "a publish was not acknowledged in {} s of attempts ({} sends): {e}",
            GIVE_UP.as_secs(),
            p.attempt + 1
        ))),
    }
}
