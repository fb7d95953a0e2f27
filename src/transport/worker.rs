//! `capstream worker`: one stage of a pipeline as a member of its consumer's pool.
//!
//! A worker pulls at most the stage's batch size of messages at a time (never more:
//! a delivered message's ack clock runs while it waits, the pull-batch trap for slow
//! model stages), decodes them into one batch, hands it to a stage thread (a model's
//! tensors live on one thread, as in embedded mode) and sends progress acks while the
//! batch is in inference. Output goes to the next edge one message per input message,
//! with a `Nats-Msg-Id` made of the input's record ids, the stage and its revision; an
//! input is acknowledged (confirmed by the server) only after the server acknowledged
//! its output.
//!
//! Failures: a batch that fails is retried message by message, so one bad message
//! does not hold back the others. A message that fails alone is returned with a delay
//! (nak), until its last allowed delivery: then each of its records is tried alone,
//! those that still fail become error rows (`error_kind = "internal"`), the message
//! goes to the dead-letter subject with the reason and delivery count, and it is
//! terminated. Messages whose deliveries ran out with no outcome at all (a worker died
//! on them every time) are found through the server's max-deliveries advisories, which
//! the pipeline captures in a stream, and dead-lettered the same way.
//!
//! This module must not know what any stage computes; it only runs the
//! [`Stage`](crate::pipeline::Stage) contract.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::codec::{check_version, decode, encode, Outgoing};
use super::metrics::NatsMetrics;
use super::{
    build_context, error_rows, headers, message_id, nats_err, record_ids, stage_revision,
    Connection, EdgeNames, REASON_MAX_DELIVER, REASON_STAGE_ERROR, REASON_UNDECODABLE,
};
use crate::error::{Error, Result};
use crate::pipeline::{BuildContext, Plan, Shutdown, Stage};
use crate::schema::{check_compatible, with_columns, ErrorKind};
use crate::stages::StageConfig;
use crate::telemetry::{Metrics, StageMetrics};

/// What `capstream worker` runs.
#[derive(Debug)]
pub struct WorkerOptions {
    /// The checked pipeline, with any model overrides.
    pub plan: Plan,
    /// Which stage (index into the pipeline's stages).
    pub stage: usize,
    /// Stage threads in this process (each with its own built stage), each pulling
    /// its own batches from the shared consumer.
    pub concurrency: usize,
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Input messages acknowledged after their output was published.
    pub messages: u64,
    /// Records processed.
    pub records: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
}

/// The name a chain of stages goes by in metrics, logs and message ids: its stages'
/// names joined by `+` (just the stage's name for a chain of one).
pub fn chain_label(stages: &[StageConfig]) -> String {
    stages
        .iter()
        .map(StageConfig::name)
        .collect::<Vec<_>>()
        .join("+")
}

/// Finds a stage by name; an ambiguous name (the same stage type twice) must be given
/// as `NAME@INDEX` (1-based, as `capstream validate` lists them). A stage with
/// `chain = true` has no worker of its own: its chain's first stage names the worker.
pub fn find_stage(plan: &Plan, name: &str) -> Result<usize> {
    let i = locate(plan, name)?;
    let stages = &plan.config.stages;
    let head = (0..=i).rev().find(|&h| !stages[h].chained()).unwrap_or(0);
    if head == i {
        return Ok(i);
    }
    let h = stages[head].name();
    Err(Error::Config(format!(
        "--stage {name}: it has chain = true and runs in the worker of {h}; start --stage {h}@{}",
        head + 1
    )))
}

fn locate(plan: &Plan, name: &str) -> Result<usize> {
    if let Some((n, i)) = name.split_once('@') {
        let i: usize = i
            .parse()
            .map_err(|_| Error::Config(format!("--stage {name}: bad index")))?;
        return match plan.config.stages.get(i.wrapping_sub(1)) {
            Some(s) if s.name() == n => Ok(i - 1),
            _ => Err(Error::Config(format!(
                "--stage {name}: stage {i} is not {n}"
            ))),
        };
    }
    let hits: Vec<usize> = (0..plan.config.stages.len())
        .filter(|&i| plan.config.stages[i].name() == name)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(Error::Config(format!(
            "--stage {name}: the pipeline has no such stage (it has: {})",
            plan.config
                .stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(Error::Config(format!(
            "--stage {name}: the pipeline has it {} times; say which as {name}@N",
            hits.len()
        ))),
    }
}

/// One unit of work for a stage thread.
struct Job {
    batch: RecordBatch,
    reply: oneshot::Sender<Result<Vec<RecordBatch>>>,
}

/// A thread owning the built stages of one chain (usually a single stage).
struct StageThread {
    jobs: flume::Sender<Job>,
    name: String,
}

/// Runs `batch` through `stages` in order, as embedded mode's channels would.
fn run_chain(stages: &mut [Box<dyn Stage>], batch: RecordBatch) -> Result<Vec<RecordBatch>> {
    let mut batches = vec![batch];
    for stage in stages.iter_mut() {
        let mut out = Vec::new();
        for b in batches {
            stage.process(b, &mut out)?;
        }
        batches = out;
    }
    Ok(batches)
}

impl StageThread {
    /// Builds the stages on a new thread; returns once they are built and started.
    async fn start(cfgs: Vec<StageConfig>, cx: BuildContext) -> Result<StageThread> {
        let (jobs, rx) = flume::bounded::<Job>(1);
        let (ready_tx, ready) = oneshot::channel::<Result<()>>();
        let name = chain_label(&cfgs);
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name(format!("{name} stage"))
            .spawn(move || {
                let built: Result<Vec<Box<dyn Stage>>> = cfgs
                    .iter()
                    .map(|cfg| cfg.build(&cx).and_then(|mut s| s.start().map(|_| s)))
                    .collect();
                let mut stages = match built {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    let r = catch_unwind(AssertUnwindSafe(|| run_chain(&mut stages, job.batch)));
                    let r = match r {
                        Ok(r) => r,
                        Err(p) => Err(Error::Stage {
                            stage: thread_name.clone(),
                            message: format!(
                                "panicked: {}",
                                p.downcast_ref::<String>()
                                    .map(String::as_str)
                                    .or_else(|| p.downcast_ref::<&str>().copied())
                                    .unwrap_or("?")
                            ),
                        }),
                    };
                    let _ = job.reply.send(r);
                }
                // Stages hold nothing back between batches in distributed mode; a
                // stage that did would lose it here, so say so.
                for (stage, cfg) in stages.iter_mut().zip(&cfgs) {
                    let mut out = Vec::new();
                    if stage.flush(&mut out).is_ok() && !out.is_empty() {
                        tracing::error!(
                            stage = cfg.name(),
                            rows = out.iter().map(|b| b.num_rows()).sum::<usize>(),
                            "Stage flushed rows at shutdown that distributed mode cannot deliver."
                        );
                    }
                    let _ = stage.close();
                }
            })
            .map_err(|e| Error::io("stage thread", e))?;
        ready
            .await
            .map_err(|_| Error::Runtime(format!("{name} stage thread died while building")))??;
        Ok(StageThread { jobs, name })
    }

    async fn process(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send_async(Job { batch, reply })
            .await
            .map_err(|_| Error::Runtime(format!("{} stage thread is gone", self.name)))?;
        rx.await
            .map_err(|_| Error::Runtime(format!("{} stage thread is gone", self.name)))?
    }
}

/// The shortest expiry a pull request is given. A request that expires within a few
/// milliseconds can lapse on nats-server 2.9 without the 408 that ends it, and
/// async-nats then waits out its own 5 s of slack: the sink, asking for what fits
/// before a commit falls due, stalled 5.5 s at a time that way while the workers went
/// on publishing.
const MIN_PULL_EXPIRY: Duration = Duration::from_millis(100);

/// Pulls up to `max` messages: waits up to `idle` for a first one, then up to `fill`
/// for the rest, so an idle worker asks the server rarely and a busy one gets full
/// batches. Every pull request is read to its end: abandoning one would leave
/// messages delivered to nobody until their ack wait ran out.
pub(crate) async fn pull(
    consumer: &PullConsumer,
    max: usize,
    idle: Duration,
    fill: Duration,
) -> Result<Vec<jetstream::Message>> {
    let idle = idle.max(MIN_PULL_EXPIRY);
    let mut out = Vec::new();
    let mut first = consumer
        .batch()
        .max_messages(1)
        .expires(idle)
        .messages()
        .await
        .map_err(nats_err("pull request"))?;
    while let Some(m) = first.next().await {
        match m {
            Ok(m) => out.push(m),
            Err(e) => tracing::debug!(error = %e, "Pull request ended."),
        }
    }
    if out.is_empty() || max <= 1 {
        return Ok(out);
    }
    let rest = if fill.is_zero() {
        consumer.fetch().max_messages(max - 1).messages().await
    } else {
        consumer
            .batch()
            .max_messages(max - 1)
            .expires(fill.max(MIN_PULL_EXPIRY))
            .messages()
            .await
    };
    let mut rest = rest.map_err(nats_err("pull request"))?;
    while let Some(m) = rest.next().await {
        match m {
            Ok(m) => out.push(m),
            Err(e) => tracing::debug!(error = %e, "Pull request ended."),
        }
    }
    Ok(out)
}

/// Sends `+WPI` for `msgs` every `every` until dropped, so the server does not
/// redeliver a batch that is still in inference.
pub(crate) struct ProgressTicker(tokio::task::JoinHandle<()>);

impl ProgressTicker {
    pub(crate) fn start(msgs: Vec<jetstream::Message>, every: Duration) -> ProgressTicker {
        ProgressTicker(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for m in &msgs {
                    if let Err(e) = m.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %e, "Progress ack not sent.");
                    }
                }
            }
        }))
    }
}

impl Drop for ProgressTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A received message and what is known about it.
struct Incoming {
    msg: jetstream::Message,
    delivered: i64,
    stream_sequence: u64,
    claim: Option<String>,
    /// The submission it descends from (see [`headers::SUBMISSION`]).
    submission: String,
    /// The decoded batch in the stage's input schema, or why it cannot be.
    batch: std::result::Result<RecordBatch, String>,
}

/// Everything a stage loop shares.
struct Ctx {
    conn: Connection,
    input: EdgeNames,
    output: EdgeNames,
    in_schema: SchemaRef,
    out_schema: SchemaRef,
    /// The stage's name, or the chain's (`decode_image+caption`).
    stage: String,
    revision: String,
    max_deliver: i64,
    nak_delay: Duration,
    progress_every: Duration,
    batch_messages: usize,
    idle: Duration,
    fill: Duration,
    nm: NatsMetrics,
    sm: StageMetrics,
}

/// Runs stage `opts.stage` until `shutdown` stops it; then finishes and acknowledges
/// the batches in hand and returns.
pub async fn run(
    conn: Connection,
    opts: WorkerOptions,
    shutdown: Shutdown,
    metrics: Metrics,
) -> Result<WorkerSummary> {
    let plan = opts.plan;
    let i = opts.stage;
    let chain = plan.config.chain(i);
    let cfgs = plan.config.stages[chain.clone()].to_vec();
    let cx = build_context(&plan)?;
    let stage = chain_label(&cfgs);
    let bcfg = plan.config.chain_batch(chain.clone());
    let n = &plan.config.nats;
    let ctx = Arc::new(Ctx {
        input: conn.topology.edges[i].clone(),
        output: conn.topology.edges[chain.end].clone(),
        in_schema: plan.schemas[i].clone(),
        out_schema: plan.schemas[chain.end].clone(),
        revision: cfgs
            .iter()
            .map(|c| stage_revision(c, &cx))
            .collect::<Vec<_>>()
            .join("+"),
        max_deliver: n.max_deliver,
        nak_delay: Duration::from_millis(n.nak_delay_ms),
        progress_every: Duration::from_millis((n.ack_wait_ms / 3).max(50)),
        batch_messages: bcfg.max_rows.div_ceil(n.records_per_message).max(1),
        idle: Duration::from_millis(n.idle_wait_ms),
        fill: Duration::from_millis(bcfg.max_delay_ms),
        nm: NatsMetrics::new(&metrics, &plan.config.name, &stage),
        sm: metrics.stage(&stage),
        stage,
        conn,
    });
    let mut threads = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        threads.push(StageThread::start(cfgs.clone(), cx.clone()).await?);
    }
    tracing::info!(
        stage = %ctx.stage,
        threads = threads.len(),
        consumer = %ctx.input.to,
        stream = %ctx.input.stream,
        revision = %ctx.revision,
        "Worker ready."
    );
    let consumer = ctx.conn.consumer(i).await?;
    let poller = tokio::spawn(poll_consumer(consumer.clone(), ctx.nm.clone()));
    let dlq = tokio::spawn(dead_letter_loop(ctx.clone(), shutdown.clone()));
    let mut loops = Vec::new();
    for t in threads {
        let ctx = ctx.clone();
        let consumer = consumer.clone();
        let sd = shutdown.clone();
        loops.push(tokio::spawn(async move {
            let mut sum = WorkerSummary::default();
            while !sd.is_stopping() {
                let msgs = match pull(&consumer, ctx.batch_messages, ctx.idle, ctx.fill).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "Pull failed; retrying.");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if msgs.is_empty() {
                    continue;
                }
                handle(&ctx, &t, msgs, &mut sum).await;
            }
            sum
        }));
    }
    let mut total = WorkerSummary::default();
    let mut first_err = None;
    for l in loops {
        match l.await {
            Ok(s) => {
                total.messages += s.messages;
                total.records += s.records;
                total.dead_lettered += s.dead_lettered;
            }
            Err(e) => {
                first_err.get_or_insert(Error::Runtime(format!("{} loop failed: {e}", ctx.stage)));
            }
        }
    }
    match dlq.await {
        Ok(n) => total.dead_lettered += n,
        Err(e) => {
            first_err.get_or_insert(Error::Runtime(format!(
                "{} dead-letter loop: {e}",
                ctx.stage
            )));
        }
    }
    poller.abort();
    match first_err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Keeps the consumer gauges current.
async fn poll_consumer(mut consumer: PullConsumer, nm: NatsMetrics) {
    loop {
        match consumer.info().await {
            Ok(info) => {
                nm.pending.set(info.num_pending as i64);
                nm.ack_pending.set(info.num_ack_pending as i64);
                nm.redelivered.set(info.num_redelivered as i64);
            }
            Err(e) => tracing::debug!(error = %e, "Consumer info failed."),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Decodes one message into the stage's input schema.
async fn open(ctx: &Ctx, msg: jetstream::Message) -> Incoming {
    let (delivered, stream_sequence) = match msg.info() {
        Ok(i) => (i.delivered, i.stream_sequence),
        Err(_) => (1, 0),
    };
    if delivered > 1 {
        ctx.nm.redeliveries.inc();
    }
    let mut claim = None;
    let batch = async {
        check_version(msg.headers.as_ref())?;
        let (payload, c) = ctx.conn.payload(msg.headers.as_ref(), &msg.payload).await?;
        claim = c;
        let b = decode(&payload)?;
        check_compatible(&ctx.in_schema, &b.schema())
            .map_err(|d| Error::Nats(format!("payload does not fit {}: {d}", ctx.stage)))?;
        with_columns(&b, ctx.in_schema.clone(), vec![])
    }
    .await
    .map_err(|e| e.to_string());
    Incoming {
        submission: super::submission_of(msg.headers.as_ref()),
        msg,
        delivered,
        stream_sequence,
        claim,
        batch,
    }
}

/// One pulled batch, start to acknowledgement.
async fn handle(
    ctx: &Ctx,
    t: &StageThread,
    msgs: Vec<jetstream::Message>,
    sum: &mut WorkerSummary,
) {
    let ticker = ProgressTicker::start(msgs.clone(), ctx.progress_every);
    let mut good = Vec::new();
    for m in msgs {
        let inc = open(ctx, m).await;
        match &inc.batch {
            Ok(_) => good.push(inc),
            Err(e) => {
                let e = e.clone();
                fail(ctx, inc, REASON_UNDECODABLE, &e, None, sum).await;
            }
        }
    }
    if good.is_empty() {
        return;
    }
    let batches: Vec<&RecordBatch> = good.iter().filter_map(|g| g.batch.as_ref().ok()).collect();
    let whole = concat_batches(&ctx.in_schema, batches.iter().copied());
    let started = Instant::now();
    let result = match whole {
        Ok(b) => {
            ctx.sm.records_in.inc_by(b.num_rows() as u64);
            ctx.sm.batch_rows.observe(b.num_rows() as f64);
            tracing::debug!(
                stage = %ctx.stage,
                messages = good.len(),
                rows = b.num_rows(),
                "Batch in inference."
            );
            t.process(b).await
        }
        Err(e) => Err(e.into()),
    };
    match result.and_then(|outs| split(ctx, &good, outs)) {
        Ok(per_msg) => {
            ctx.sm
                .batch_seconds
                .observe(started.elapsed().as_secs_f64());
            ctx.sm.batches.inc();
            ctx.sm.beat();
            publish_and_ack(ctx, good, per_msg, sum).await;
            tracing::debug!(stage = %ctx.stage, "Batch done.");
        }
        Err(e) if good.len() > 1 => {
            tracing::warn!(stage = %ctx.stage, error = %e, messages = good.len(), "Batch failed; retrying its messages one by one.");
            for inc in good {
                let Ok(b) = inc.batch.clone() else { continue };
                match t
                    .process(b)
                    .await
                    .and_then(|o| split(ctx, std::slice::from_ref(&inc), o))
                {
                    Ok(out) => publish_and_ack(ctx, vec![inc], out, sum).await,
                    Err(e) => {
                        let e = e.to_string();
                        fail(ctx, inc, REASON_STAGE_ERROR, &e, Some(t), sum).await
                    }
                }
            }
        }
        Err(e) => {
            let inc = good.pop().expect("one message");
            fail(ctx, inc, REASON_STAGE_ERROR, &e.to_string(), Some(t), sum).await
        }
    }
    drop(ticker);
}

/// The stage's output rows, grouped by the input message their id came from.
fn split(ctx: &Ctx, inputs: &[Incoming], outs: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let out = concat_batches(&ctx.out_schema, &outs)?;
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (k, inc) in inputs.iter().enumerate() {
        if let Ok(b) = &inc.batch {
            for id in record_ids(b)? {
                owner.insert(id, k);
            }
        }
    }
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); inputs.len()];
    for (r, id) in record_ids(&out)?.into_iter().enumerate() {
        let k = owner.get(&id).ok_or_else(|| {
            Error::Runtime(format!(
                "{} emitted record {id}, which was not in its input",
                ctx.stage
            ))
        })?;
        rows[*k].push(r as u32);
    }
    rows.into_iter()
        .map(|r| -> Result<RecordBatch> { Ok(take_record_batch(&out, &UInt32Array::from(r))?) })
        .collect()
}

/// Publishes each message's output, waits for the server's acks, then acknowledges
/// the inputs whose output is stored. A failed publish returns its input for a retry.
async fn publish_and_ack(
    ctx: &Ctx,
    inputs: Vec<Incoming>,
    outputs: Vec<RecordBatch>,
    sum: &mut WorkerSummary,
) {
    let edge = ctx.output.label();
    let mut sent = Vec::with_capacity(inputs.len());
    for (inc, out) in inputs.into_iter().zip(outputs) {
        let r = async {
            if out.num_rows() == 0 {
                return Ok(None);
            }
            let in_ids = record_ids(inc.batch.as_ref().map_err(|e| Error::Nats(e.clone()))?)?;
            let mid = message_id(&ctx.stage, &ctx.revision, &inc.submission, &in_ids);
            let o = Outgoing {
                subject: &ctx.output.subject,
                stage: &ctx.stage,
                edge: &edge,
                message_id: &mid,
                extra: vec![(headers::SUBMISSION, inc.submission.clone())],
            };
            ctx.conn
                .send(&o, out.num_rows(), encode(&out, ctx.conn.nats.compression)?)
                .await
                .map(Some)
        }
        .await;
        sent.push((inc, out.num_rows(), r));
    }
    let mut acks = Vec::new();
    for (inc, rows, r) in sent {
        let stored = match r {
            Ok(None) => Ok(()),
            Ok(Some(p)) => {
                if p.claimed {
                    ctx.nm.claims.inc();
                }
                match p.wait().await {
                    Ok((_, secs)) => {
                        ctx.nm.publish_seconds.observe(secs);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                ctx.sm.records_out.inc_by(rows as u64);
                acks.push(inc);
            }
            Err(e) => {
                tracing::warn!(stage = %ctx.stage, error = %e, "Output not stored; the input will be retried.");
                nak(ctx, &inc).await;
            }
        }
    }
    let done = futures_util::future::join_all(acks.iter().map(|inc| inc.msg.double_ack())).await;
    for (inc, r) in acks.iter().zip(done) {
        match r {
            Ok(()) => {
                sum.messages += 1;
                sum.records += inc.batch.as_ref().map(|b| b.num_rows() as u64).unwrap_or(0);
                if let Some(c) = &inc.claim {
                    ctx.conn.release_claim(c).await;
                }
            }
            // The server will redeliver it; the copy's output is dropped as a duplicate
            // (same message id) or by the sink's id index.
            Err(e) => {
                tracing::warn!(stage = %ctx.stage, error = %e, "Acknowledgement not confirmed.")
            }
        }
    }
}

async fn nak(ctx: &Ctx, inc: &Incoming) {
    ctx.nm.retries.inc();
    if let Err(e) = inc.msg.ack_with(AckKind::Nak(Some(ctx.nak_delay))).await {
        tracing::debug!(error = %e, "Nak not sent; the ack wait will redeliver.");
    }
}

/// A message that failed alone: retried later, or dead-lettered on its last delivery.
async fn fail(
    ctx: &Ctx,
    inc: Incoming,
    reason: &str,
    error: &str,
    stage: Option<&StageThread>,
    sum: &mut WorkerSummary,
) {
    if inc.delivered < ctx.max_deliver {
        tracing::warn!(
            stage = %ctx.stage,
            delivery = inc.delivered,
            max_deliver = ctx.max_deliver,
            error,
            "Message failed; returned for a delayed retry."
        );
        nak(ctx, &inc).await;
        return;
    }
    tracing::error!(
        stage = %ctx.stage,
        delivery = inc.delivered,
        reason,
        error,
        "Message failed on its last delivery; dead-lettering it."
    );
    // Records that still work alone go on; the rest become error rows.
    let mut outputs = Vec::new();
    let mut failed_ids = Vec::new();
    if let (Ok(batch), Some(t)) = (&inc.batch, stage) {
        for r in 0..batch.num_rows() {
            let one = batch.slice(r, 1);
            match t
                .process(one.clone())
                .await
                .and_then(|o| Ok(concat_batches(&ctx.out_schema, &o)?))
            {
                Ok(o) => outputs.push(o),
                Err(e) => {
                    let ids = record_ids(&one).unwrap_or_default();
                    failed_ids.extend(ids.iter().cloned());
                    let msg = e.to_string();
                    match error_rows(&one, &ctx.out_schema, ErrorKind::Internal, |id| {
                        poison_message(ctx, id, inc.delivered, &msg)
                    }) {
                        Ok(rows) => outputs.push(rows),
                        Err(e) => tracing::error!(error = %e, "Cannot build error rows."),
                    }
                }
            }
        }
    }
    let all_failed = match &inc.batch {
        Ok(b) => failed_ids.len() == b.num_rows(),
        Err(_) => true,
    };
    let original = inc.msg.payload.clone();
    let ok = dead_letter(ctx, &inc, &original, reason, error, &failed_ids, outputs).await;
    if ok {
        sum.dead_lettered += 1;
        ctx.nm.dead_lettered(reason);
        if !failed_ids.is_empty() {
            ctx.sm
                .failed(ErrorKind::Internal.as_str(), failed_ids.len() as u64);
        }
        let kind = if all_failed {
            AckKind::Term
        } else {
            AckKind::Ack
        };
        match inc.msg.double_ack_with(kind).await {
            Ok(()) => {
                sum.messages += 1;
                // A terminated message is not removed from a WorkQueue stream by every
                // server version; it is dead-lettered, so remove it.
                remove(&ctx.conn, &ctx.input.stream, inc.stream_sequence).await;
            }
            Err(e) => tracing::warn!(error = %e, "Termination not confirmed."),
        }
    } else {
        nak(ctx, &inc).await;
    }
}

fn poison_message(ctx: &Ctx, id: &str, deliveries: i64, error: &str) -> String {
    format!(
        "record {id}: stage {} failed on each of {deliveries} deliveries; dead-lettered to {}: {error}",
        ctx.stage, ctx.input.dead_letter_subject
    )
}

/// Deletes message `seq` from `stream` (dead-lettered: it must not block the stream).
pub(crate) async fn remove(conn: &Connection, stream: &str, seq: u64) {
    if seq == 0 {
        return;
    }
    match conn.js.get_stream(stream).await {
        Ok(s) => {
            if let Err(e) = s.delete_message(seq).await {
                tracing::debug!(error = %e, seq, "Message already removed.");
            }
        }
        Err(e) => tracing::warn!(error = %e, stream, "Cannot remove a dead-lettered message."),
    }
}

/// Publishes `outputs` (the message's surviving and error rows) downstream and the
/// original message to the dead-letter subject; true once both are stored.
async fn dead_letter(
    ctx: &Ctx,
    inc: &Incoming,
    original: &Bytes,
    reason: &str,
    error: &str,
    failed_ids: &[String],
    outputs: Vec<RecordBatch>,
) -> bool {
    let r = async {
        if !outputs.is_empty() {
            let out = concat_batches(&ctx.out_schema, &outputs)?;
            if out.num_rows() > 0 {
                let in_ids = match &inc.batch {
                    Ok(b) => record_ids(b)?,
                    Err(_) => record_ids(&out)?,
                };
                let mid = message_id(&ctx.stage, &ctx.revision, &inc.submission, &in_ids);
                let edge = ctx.output.label();
                let o = Outgoing {
                    subject: &ctx.output.subject,
                    stage: &ctx.stage,
                    edge: &edge,
                    message_id: &mid,
                    extra: vec![(headers::SUBMISSION, inc.submission.clone())],
                };
                let (_, secs) = ctx
                    .conn
                    .send(&o, out.num_rows(), encode(&out, ctx.conn.nats.compression)?)
                    .await?
                    .wait()
                    .await?;
                ctx.nm.publish_seconds.observe(secs);
                ctx.sm.records_out.inc_by(out.num_rows() as u64);
            }
        }
        let rows = inc.batch.as_ref().map(|b| b.num_rows()).unwrap_or(0);
        let mut extra = vec![
            (headers::DEAD_REASON, format!("{reason}: {error}")),
            (headers::DELIVERIES, inc.delivered.to_string()),
            (
                headers::ORIGIN,
                format!("{}:{}", ctx.input.stream, inc.stream_sequence),
            ),
            (headers::RECORD_IDS, failed_ids.join(",")),
        ];
        let payload = match &inc.claim {
            Some(c) => {
                extra.push((headers::CLAIM, c.clone()));
                Bytes::new()
            }
            None => original.clone(),
        };
        publish_dead_letter(
            &ctx.conn,
            &ctx.input,
            &ctx.stage,
            &extra,
            rows,
            payload,
            inc.stream_sequence,
        )
        .await
    }
    .await;
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Dead-lettering failed; the message will be retried.");
            false
        }
    }
}

/// Publishes a message's original bytes to `edge`'s dead-letter subject with `extra`
/// headers (reason, deliveries, origin, ids) and waits for the server to store it.
/// Dead letters keep their bytes as they came: never claim-checked again (a forwarded
/// claim travels in the headers).
pub(crate) async fn publish_dead_letter(
    conn: &Connection,
    edge: &EdgeNames,
    stage: &str,
    extra: &[(&'static str, String)],
    rows: usize,
    payload: Bytes,
    seq: u64,
) -> Result<()> {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in extra {
        h.insert(*k, v.as_str());
    }
    h.insert(headers::STAGE, stage);
    h.insert(headers::EDGE, edge.label());
    h.insert(headers::ROWS, rows.to_string());
    conn.js
        .send_publish(
            edge.dead_letter_subject.clone(),
            async_nats::jetstream::message::PublishMessage::build()
                .payload(payload)
                .headers(h)
                .message_id(format!("dlq:{}:{seq}", edge.stream)),
        )
        .await
        .map_err(nats_err("publish dead letter"))?
        .await
        .map_err(nats_err("dead letter not acknowledged"))?;
    Ok(())
}

/// The server's max-deliveries advisory (fields used here).
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream: String,
    stream_seq: u64,
    deliveries: i64,
}

/// Dead-letters this stage's messages whose deliveries ran out with no outcome. Returns
/// how many it handled.
async fn dead_letter_loop(ctx: Arc<Ctx>, shutdown: Shutdown) -> u64 {
    let mut n = 0;
    let consumer: PullConsumer = loop {
        let got: Result<PullConsumer> = async {
            ctx.conn
                .js
                .get_stream(&ctx.conn.topology.advisory_stream)
                .await
                .map_err(nats_err("advisory stream"))?
                .get_consumer(&super::dead_letter_consumer(&ctx.input.to))
                .await
                .map_err(nats_err("advisory consumer"))
        }
        .await;
        match got {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "Advisory consumer unavailable; retrying.");
                if shutdown.is_stopping() {
                    return n;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while !shutdown.is_stopping() {
        let msgs = match pull(&consumer, 16, ctx.idle, Duration::ZERO).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "Advisory pull failed.");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for m in msgs {
            match exhausted(&ctx, &m).await {
                Ok(handled) => {
                    n += handled as u64;
                    if let Err(e) = m.double_ack().await {
                        tracing::warn!(error = %e, "Advisory ack not confirmed.");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot dead-letter an exhausted message yet.");
                    let _ = m.ack_with(AckKind::Nak(Some(ctx.nak_delay))).await;
                }
            }
        }
    }
    n
}

/// Handles one max-deliveries advisory; false when the message is already gone.
async fn exhausted(ctx: &Ctx, advisory: &jetstream::Message) -> Result<bool> {
    let a: MaxDeliveries = serde_json::from_slice(&advisory.payload)?;
    let stream = ctx
        .conn
        .js
        .get_stream(&a.stream)
        .await
        .map_err(nats_err(format!("stream {}", a.stream)))?;
    let raw = match stream.get_raw_message(a.stream_seq).await {
        Ok(r) => r,
        // Acknowledged late, or already dead-lettered by its last worker.
        Err(_) => return Ok(false),
    };
    let why = format!(
        "no worker finished it in {} deliveries (max_deliver)",
        a.deliveries
    );
    let decoded = async {
        let (payload, claim) = ctx.conn.payload(Some(&raw.headers), &raw.payload).await?;
        let b = decode(&payload)?;
        Ok::<_, Error>((with_columns(&b, ctx.in_schema.clone(), vec![])?, claim))
    }
    .await;
    let (batch, claim) = match decoded {
        Ok((b, c)) => (Ok(b), c),
        Err(e) => (Err(e.to_string()), None),
    };
    let mut outputs = Vec::new();
    let mut ids = Vec::new();
    if let Ok(b) = &batch {
        ids = record_ids(b)?;
        outputs.push(error_rows(b, &ctx.out_schema, ErrorKind::Internal, |id| {
            poison_message(ctx, id, a.deliveries, &why)
        })?);
    }
    let inc = Incoming {
        submission: super::submission_of(Some(&raw.headers)),
        msg: advisory.clone(),
        delivered: a.deliveries,
        stream_sequence: a.stream_seq,
        claim,
        batch,
    };
    // The dead letter carries the original bytes, not the advisory's.
    if !dead_letter(
        ctx,
        &inc,
        &raw.payload,
        REASON_MAX_DELIVER,
        &why,
        &ids,
        outputs,
    )
    .await
    {
        return Err(Error::Nats("dead letter not stored".into()));
    }
    ctx.nm.dead_lettered(REASON_MAX_DELIVER);
    if !ids.is_empty() {
        ctx.sm
            .failed(ErrorKind::Internal.as_str(), ids.len() as u64);
    }
    remove(&ctx.conn, &a.stream, a.stream_seq).await;
    tracing::error!(
        stage = %ctx.stage,
        seq = a.stream_seq,
        deliveries = a.deliveries,
        "Dead-lettered a message whose deliveries ran out."
    );
    Ok(true)
}
