//! `capstream worker`: one stage of a pipeline as a member of its consumer's pool.
//!
//! A worker pulls at most the stage's batch size of messages at a time (never more:
//! a delivered message's ack clock runs while it waits, the pull-batch trap for slow
//! model stages), decodes them into one batch, hands it to a stage thread (a model's
//! tensors live on one thread, as in embedded mode) and sends progress acks while the
//! batch is in inference. Output goes to the next edge one message per input message
//! (split further only to stay under `max_message_bytes`), with a `Nats-Msg-Id` made of
//! the input's record ids, the stage and its revision; an input is acknowledged
//! (confirmed by the server) only after the server acknowledged its output.
//!
//! Every batch has a deadline (`[nats] batch_timeout_ms`). A batch past it gets no more
//! progress acks, its messages are returned for redelivery (dead-lettered with
//! `timeout` error rows on their last delivery, see `dead_letter`), and the
//! stage thread, which may be wedged for good, is replaced by a fresh one.
//!
//! This module must not know what any stage computes; it only runs the
//! [`Stage`] contract. What happens to a message that fails is
//! `dead_letter`'s; how messages are pulled is [`super::pull`]'s; the stage thread and
//! its deadline are [`thread`]'s, decoding [`incoming`]'s, publishing [`publish`]'s.

mod incoming;
mod publish;
mod thread;

pub(crate) use incoming::{open, Incoming, ProgressTicker};
pub(crate) use publish::{publish_and_ack, publish_rows, split};
pub(crate) use thread::{Ran, StageThread};

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use async_nats::jetstream;

use super::dead_letter::{self, Refused};
use super::metrics::NatsMetrics;
use super::pull::{Puller, CLIENT_SLACK};
use super::{stage_revision, Connection, EdgeNames, REASON_STAGE_ERROR};
use crate::error::{Error, Result};
use crate::pipeline::{chain_label, BuildContext, Plan, Shutdown};
use crate::stages::StageConfig;
use crate::telemetry::{Health, Metrics, StageMetrics};

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

impl WorkerSummary {
    fn add(&mut self, o: &WorkerSummary) {
        self.messages += o.messages;
        self.records += o.records;
        self.dead_lettered += o.dead_lettered;
    }
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

/// Everything a stage loop shares.
pub(crate) struct Ctx {
    pub(crate) conn: Connection,
    pub(crate) input: EdgeNames,
    pub(crate) output: EdgeNames,
    pub(crate) in_schema: SchemaRef,
    pub(crate) out_schema: SchemaRef,
    /// The stage's name, or the chain's (`decode_image+caption`).
    pub(crate) stage: String,
    pub(crate) revision: String,
    pub(crate) max_deliver: i64,
    pub(crate) nak_delay: Duration,
    progress_every: Duration,
    pub(crate) batch_timeout: Duration,
    batch_messages: usize,
    pub(crate) idle: Duration,
    fill: Duration,
    pub(crate) nm: NatsMetrics,
    pub(crate) sm: StageMetrics,
    /// The chain's stages, each with its build context.
    stages: Vec<(StageConfig, BuildContext)>,
    pub(crate) health: Health,
}

impl Ctx {
    /// How long a loop of this worker may go without a beat before the process is
    /// not live: a whole batch deadline, a pull and slack.
    pub(crate) fn loop_allowance(&self) -> Duration {
        self.batch_timeout * 2 + self.idle + CLIENT_SLACK * 2 + Duration::from_secs(10)
    }
}

/// Runs stage `opts.stage` until `shutdown` stops it; then finishes and acknowledges
/// the batches in hand and returns. `health` gets the consumer's readiness and every
/// loop's heartbeat.
pub async fn run(
    conn: Connection,
    opts: WorkerOptions,
    shutdown: Shutdown,
    metrics: Metrics,
    health: Health,
) -> Result<WorkerSummary> {
    let plan = opts.plan;
    let i = opts.stage;
    let chain = plan.config.chain(i);
    let stages = chain
        .clone()
        .map(|j| Ok((plan.config.stages[j].clone(), plan.context(j)?)))
        .collect::<Result<Vec<_>>>()?;
    let stage = chain_label(&plan.config.stages[chain.clone()]);
    let bcfg = plan.config.chain_batch(chain.clone());
    let n = &plan.config.nats;
    let ctx = Arc::new(Ctx {
        input: conn.topology.edges[i].clone(),
        output: conn.topology.edges[chain.end].clone(),
        in_schema: plan.schemas[i].clone(),
        out_schema: plan.schemas[chain.end].clone(),
        revision: stages
            .iter()
            .map(|(c, cx)| stage_revision(c, cx))
            .collect::<Vec<_>>()
            .join("+"),
        max_deliver: n.max_deliver,
        nak_delay: Duration::from_millis(n.nak_delay_ms),
        progress_every: Duration::from_millis((n.ack_wait_ms / 3).max(50)),
        batch_timeout: Duration::from_millis(n.batch_timeout_ms),
        batch_messages: bcfg.max_rows.div_ceil(n.records_per_message).max(1),
        idle: Duration::from_millis(n.idle_wait_ms),
        fill: Duration::from_millis(bcfg.max_delay_ms),
        nm: NatsMetrics::new(&metrics, &plan.config.name, &stage),
        sm: metrics.stage(&stage),
        stage,
        conn,
        stages,
        health,
    });
    let mut threads = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        threads
            .push(StageThread::start(ctx.stages.clone(), ctx.sm.clone(), ctx.batch_timeout).await?);
    }
    tracing::info!(
        stage = %ctx.stage,
        threads = threads.len(),
        consumer = %ctx.input.to,
        stream = %ctx.input.stream,
        revision = %ctx.revision,
        "Worker ready."
    );
    let bound = ctx.health.flag(format!(
        "consumer {} on {} bound",
        ctx.input.to, ctx.input.stream
    ));
    // One puller per stage thread: each keeps its own stall accounting.
    let mut pullers = Vec::new();
    for _ in 0..threads.len() {
        let Some(p) = Puller::bind_until(
            &ctx.conn,
            &ctx.input.stream,
            &ctx.input.to,
            ctx.nm.clone(),
            Some(bound.clone()),
            &shutdown,
        )
        .await
        else {
            return Ok(WorkerSummary::default());
        };
        pullers.push(p);
    }
    let poller = tokio::spawn(poll_consumer(pullers[0].consumer().clone(), ctx.nm.clone()));
    let dlq = tokio::spawn(super::advisory::advisory_loop(
        ctx.clone(),
        shutdown.clone(),
    ));
    let mut loops = Vec::new();
    for (k, (t, mut puller)) in threads.into_iter().zip(pullers).enumerate() {
        let ctx = ctx.clone();
        let sd = shutdown.clone();
        loops.push(tokio::spawn(async move {
            stage_loop(&ctx, t, &mut puller, &sd, k).await
        }));
    }
    let mut total = WorkerSummary::default();
    let mut first_err = None;
    for l in loops {
        match l.await {
            Ok(Ok(s)) => total.add(&s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
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

/// One stage thread's loop: pull, handle, repeat; a thread stuck past the batch
/// deadline is replaced.
async fn stage_loop(
    ctx: &Ctx,
    mut t: StageThread,
    puller: &mut Puller,
    shutdown: &Shutdown,
    k: usize,
) -> Result<WorkerSummary> {
    let beat = ctx
        .health
        .register(format!("{} loop {k}", ctx.stage), ctx.loop_allowance());
    let mut sum = WorkerSummary::default();
    while !shutdown.is_stopping() {
        beat.beat();
        let msgs = match puller.pull(ctx.batch_messages, ctx.idle, ctx.fill).await {
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
        handle(ctx, &t, msgs, &mut sum).await;
        if t.is_stuck() {
            tracing::error!(
                stage = %ctx.stage,
                timeout_ms = ctx.batch_timeout.as_millis() as u64,
                "A batch ran past batch_timeout_ms; abandoning its stage thread and starting a new one."
            );
            t = StageThread::start(ctx.stages.clone(), ctx.sm.clone(), ctx.batch_timeout).await?;
        }
    }
    Ok(sum)
}

/// Keeps the consumer gauges current.
async fn poll_consumer(mut consumer: jetstream::consumer::PullConsumer, nm: NatsMetrics) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), consumer.info()).await {
            Ok(Ok(info)) => {
                nm.pending.set(info.num_pending as i64);
                nm.ack_pending.set(info.num_ack_pending as i64);
                nm.redelivered.set(info.num_redelivered as i64);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "Consumer info failed."),
            Err(_) => tracing::debug!("Consumer info timed out."),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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
            Err(_) => dead_letter::fail(ctx, inc, sum).await,
        }
    }
    if good.is_empty() {
        return;
    }
    let batches: Vec<&RecordBatch> = good.iter().filter_map(|g| g.batch.as_ref().ok()).collect();
    let whole = concat_batches(&ctx.in_schema, batches.iter().copied());
    let ran = match whole {
        Ok(b) => {
            tracing::debug!(
                stage = %ctx.stage,
                messages = good.len(),
                rows = b.num_rows(),
                "Batch in inference."
            );
            t.run(b).await
        }
        Err(e) => Ran::Failed(e.into()),
    };
    let ran = per_message(ctx, &good, ran);
    match ran {
        Ok(per_msg) => {
            publish_and_ack(ctx, good, per_msg, sum).await;
            tracing::debug!(stage = %ctx.stage, "Batch done.");
        }
        Err(None) => {
            // No more progress acks for a batch past its deadline.
            drop(ticker);
            ctx.nm.batch_timeouts.inc();
            tracing::warn!(stage = %ctx.stage, messages = good.len(), "Batch past its deadline; returning its messages.");
            let why = past_deadline(ctx, "batch");
            for inc in good {
                time_out(ctx, inc, why.clone(), sum).await;
            }
            return;
        }
        Err(Some(e)) if good.len() > 1 => {
            tracing::warn!(stage = %ctx.stage, error = %e, messages = good.len(), "Batch failed; retrying its messages one by one.");
            for inc in good {
                let Ok(b) = inc.batch.clone() else { continue };
                let ran = t.run(b).await;
                match per_message(ctx, std::slice::from_ref(&inc), ran) {
                    Ok(out) => publish_and_ack(ctx, vec![inc], out, sum).await,
                    Err(Some(e)) => {
                        let stage = (!t.is_stuck()).then_some(t);
                        dead_letter::fail_stage(
                            ctx,
                            inc,
                            REASON_STAGE_ERROR,
                            &e.to_string(),
                            stage,
                            sum,
                        )
                        .await
                    }
                    Err(None) => time_out(ctx, inc, past_deadline(ctx, "record"), sum).await,
                }
            }
        }
        Err(Some(e)) => {
            let inc = good.pop().expect("one message");
            dead_letter::fail_stage(ctx, inc, REASON_STAGE_ERROR, &e.to_string(), Some(t), sum)
                .await
        }
    }
    drop(ticker);
}

/// A run's outcome as output rows per input message; `Err(None)` is a run past its deadline.
fn per_message(
    ctx: &Ctx,
    inputs: &[Incoming],
    ran: Ran,
) -> std::result::Result<Vec<RecordBatch>, Option<Error>> {
    match ran {
        Ran::Done(outs) => split(ctx, inputs, outs).map_err(Some),
        Ran::Failed(e) => Err(Some(e)),
        Ran::TimedOut => Err(None),
    }
}

fn past_deadline(ctx: &Ctx, what: &str) -> String {
    format!(
        "stage {} did not finish the {what} within batch_timeout_ms = {}",
        ctx.stage,
        ctx.batch_timeout.as_millis()
    )
}

/// Returns `inc` as a timeout: redelivered, then a timeout row once max_deliver is spent.
async fn time_out(ctx: &Ctx, mut inc: Incoming, why: String, sum: &mut WorkerSummary) {
    inc.batch = Err(Refused::timeout(why, inc.batch.as_ref().ok().cloned()));
    dead_letter::fail(ctx, inc, sum).await;
}
