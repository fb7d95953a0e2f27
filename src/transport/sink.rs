//! `capstream sink`: the last edge into Parquet, each record id exactly once.
//!
//! Rows are written to the pipeline's Parquet sink (atomic part files) and their input
//! messages are held unacknowledged until the part is committed (footer, fsync,
//! rename); only then are they acknowledged. A crash before the commit leaves a temp
//! file (removed at the next start) and unacknowledged messages (redelivered); a crash
//! after it leaves a committed part whose messages come back and are dropped, because
//! every committed id is in the index.
//!
//! The id index lives with the output: `_ids/<part>.json` lists the ids of each
//! committed part. It is rebuilt from the part's `id` column for any part without one
//! (a crash between the rename and the index write), so the parts stay the truth and
//! the index is a fast way to read them. Ids written to the open part and not yet
//! committed are kept in a concurrent set (`dashmap`), so a redelivered copy arriving
//! meanwhile is dropped too. One sink may write a folder at a time (the Parquet sink
//! holds the folder's lock); run several sinks only into several folders.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use async_nats::jetstream::{self, AckKind};
use dashmap::DashSet;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::codec::{check_version, decode_bounded, ClaimError};
use super::dead_letter::{publish_dead_letter, remove};
use super::metrics::NatsMetrics;
use super::pull::Puller;
use super::{
    error_rows, headers, id_batch, Connection, REASON_TOO_LARGE, REASON_UNDECODABLE, SINK,
};
use crate::error::{Error, Result};
use crate::pipeline::{Plan, Shutdown};
use crate::schema::{columns, with_columns, ErrorKind};
use crate::sinks::{lock_output, part_files, Commit, ResponseSinkConfig, SinkConfig};
use crate::telemetry::{Health, Metrics};

/// The index folder inside the output folder.
pub const ID_INDEX_DIR: &str = "_ids";

/// What `capstream sink` runs.
#[derive(Debug)]
pub struct SinkOptions {
    /// The checked pipeline.
    pub plan: Plan,
    /// The output folder.
    pub output: PathBuf,
}

/// What a sink did before it stopped.
#[derive(Debug, Clone, Default)]
pub struct SinkSummary {
    /// Rows committed.
    pub rows: u64,
    /// Rows dropped because their id was already committed or pending.
    pub duplicates: u64,
    /// Files committed.
    pub files: Vec<PathBuf>,
}

/// Committed ids of an output folder: the index, repaired from the parts.
#[derive(Debug, Default)]
pub struct IdIndex {
    ids: DashSet<String>,
}

impl IdIndex {
    /// Reads `dir`'s index, writing the entry of any committed part that lacks one.
    pub fn open(dir: &Path) -> Result<IdIndex> {
        let index = IdIndex::default();
        for part in part_files(dir)? {
            let entry = entry_path(dir, &part);
            let ids = match std::fs::read(&entry) {
                Ok(bytes) => serde_json::from_slice::<Vec<String>>(&bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(part = %part.display(), "Indexing a committed part without an index entry.");
                    let ids = part_ids(&part)?;
                    write_entry(dir, &part, &ids)?;
                    ids
                }
                Err(e) => return Err(Error::io(&entry, e)),
            };
            for id in ids {
                index.ids.insert(id);
            }
        }
        Ok(index)
    }

    /// True when `id` is committed.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Committed ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing is committed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn entry_path(dir: &Path, part: &Path) -> PathBuf {
    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    dir.join(ID_INDEX_DIR).join(format!("{name}.json"))
}

/// The `id` column of one part file.
fn part_ids(part: &Path) -> Result<Vec<String>> {
    let file = File::open(part).map_err(|e| Error::io(part, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let idx = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == columns::ID)
        .ok_or_else(|| Error::Config(format!("{}: no id column", part.display())))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let mut ids = Vec::new();
    for b in builder.with_projection(mask).build()? {
        let b = b?;
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Config(format!("{}: id is not a string", part.display())))?;
        ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    Ok(ids)
}

/// Writes a part's index entry atomically (temp file, fsync, rename, fsync folder).
fn write_entry(dir: &Path, part: &Path, ids: &[String]) -> Result<()> {
    let index = dir.join(ID_INDEX_DIR);
    std::fs::create_dir_all(&index).map_err(|e| Error::io(&index, e))?;
    let path = entry_path(dir, part);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(ids)?;
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    File::open(&index)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&index, e))
}

/// A message whose rows are written and not yet committed.
struct Held {
    msg: jetstream::Message,
    claim: Option<String>,
}

/// The messages held for the open part: their rows, and when the first was held
/// (the commit interval runs from then). [`commit`] empties it.
#[derive(Default)]
struct Pending {
    held: Vec<Held>,
    rows: usize,
    since: Option<Instant>,
}

impl Pending {
    fn hold(&mut self, msg: jetstream::Message, claim: Option<String>, rows: usize) {
        self.held.push(Held { msg, claim });
        self.rows += rows;
        self.since.get_or_insert_with(Instant::now);
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Runs the sink until `shutdown` stops it; commits and acknowledges what it holds,
/// then returns.
pub async fn run(
    conn: Connection,
    opts: SinkOptions,
    shutdown: Shutdown,
    metrics: Metrics,
    health: Health,
) -> Result<SinkSummary> {
    let plan = opts.plan;
    let dir = opts.output;
    let schema = plan.output_schema();
    let max_file_rows = match &plan.config.sink {
        SinkConfig::Parquet(c) => c.max_file_rows,
        SinkConfig::Response(_) => return Err(ResponseSinkConfig::refuse_output()),
    };
    let mut sink = plan
        .config
        .sink
        .build(lock_output(&dir)?, &schema, &plan.config.name)?;
    let index = Arc::new(IdIndex::open(&dir)?);
    let in_flight: Arc<DashSet<String>> = Arc::new(DashSet::new());
    tracing::info!(committed = index.len(), output = %dir.display(), "Sink ready.");

    let last = conn.topology.edges.len() - 1;
    let edge = conn.topology.edges[last].clone();
    let n = &plan.config.nats;
    let nm = NatsMetrics::new(&metrics, &plan.config.name, SINK);
    let bound = health.flag(format!("consumer {SINK} on {} bound", edge.stream));
    let Some(mut puller) = Puller::bind_until(
        &conn,
        &edge.stream,
        SINK,
        nm.clone(),
        Some(bound),
        &shutdown,
    )
    .await
    else {
        return Ok(SinkSummary::default());
    };
    let beat = health.register(
        "sink loop",
        Duration::from_millis(n.commit_interval_ms.max(n.idle_wait_ms)) * 3
            + super::pull::CLIENT_SLACK * 2
            + Duration::from_secs(30),
    );
    let sm = metrics.stage(SINK);
    let commit_every = Duration::from_millis(n.commit_interval_ms);
    let idle = Duration::from_millis(n.idle_wait_ms);
    let progress_every = Duration::from_millis((n.ack_wait_ms / 3).max(50));
    let pull_max = (n.max_ack_pending as usize).clamp(1, 256);

    let mut summary = SinkSummary::default();
    let mut pending = Pending::default();
    let mut last_progress = Instant::now();
    loop {
        beat.beat();
        let stopping = shutdown.is_stopping();
        if stopping && pending.is_empty() {
            break;
        }
        let msgs = if stopping {
            Vec::new()
        } else {
            let wait = match pending.since {
                None => idle,
                Some(t) => commit_every.saturating_sub(t.elapsed()),
            };
            match puller.pull(pull_max, wait, Duration::ZERO).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "Pull failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        };
        let got_any = !msgs.is_empty();
        for msg in msgs {
            let (delivered, seq) = msg
                .info()
                .map(|i| (i.delivered, i.stream_sequence))
                .unwrap_or((1, 0));
            if delivered > 1 {
                nm.redeliveries.inc();
            }
            let opened = open(&conn, &schema, &msg).await;
            let (batch, claim) = match opened {
                Ok(x) => x,
                Err(Opened::TooLarge(why, ids)) if !ids.is_empty() => {
                    // Deterministic: its records become error rows here and now, and
                    // the message goes to the dead letters.
                    match too_large(&conn, &edge, &nm, &msg, seq, &why, &ids, &schema).await {
                        Some(rows) => (rows, None),
                        None => {
                            nm.retries.inc();
                            let _ = msg
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await;
                            continue;
                        }
                    }
                }
                Err(o) => {
                    let (reason, e) = match o {
                        Opened::TooLarge(e, _) => (REASON_TOO_LARGE, e),
                        Opened::Bad(e) => (REASON_UNDECODABLE, e),
                    };
                    let max = if reason == REASON_TOO_LARGE {
                        1
                    } else {
                        n.max_deliver
                    };
                    undecodable(&conn, &edge, &nm, msg, delivered, seq, max, reason, &e).await;
                    continue;
                }
            };
            // Keep rows whose id is neither committed nor already pending.
            let ids = crate::schema::column::<StringArray>(&batch, columns::ID)?;
            let keep: BooleanArray = (0..ids.len())
                .map(|i| {
                    let id = ids.value(i);
                    Some(!index.contains(id) && in_flight.insert(id.to_string()))
                })
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            let dropped = batch.num_rows() - kept.num_rows();
            if dropped > 0 {
                nm.duplicates.inc_by(dropped as u64);
                summary.duplicates += dropped as u64;
            }
            sm.records_in.inc_by(batch.num_rows() as u64);
            // A part never straddles a commit: commit first if these rows would
            // overflow it.
            if pending.rows > 0 && pending.rows + kept.num_rows() > max_file_rows {
                commit(
                    &conn,
                    &mut *sink,
                    &dir,
                    &index,
                    &in_flight,
                    &mut pending,
                    &sm,
                    &mut summary,
                )
                .await?;
            }
            if kept.num_rows() > 0 {
                let early = tokio::task::block_in_place(|| sink.write(&kept))?;
                pending.hold(msg, claim, kept.num_rows());
                if !early.is_empty() {
                    // The sink closed a part on its own (byte limit): commit the rest
                    // too, so that every held message is covered.
                    report(&dir, &early, &sm, &mut summary)?;
                    commit(
                        &conn,
                        &mut *sink,
                        &dir,
                        &index,
                        &in_flight,
                        &mut pending,
                        &sm,
                        &mut summary,
                    )
                    .await?;
                }
            } else {
                pending.hold(msg, claim, 0);
            }
        }
        let due = pending.since.is_some_and(|t| t.elapsed() >= commit_every);
        if !pending.is_empty() && (due || !got_any || stopping || pending.rows >= max_file_rows) {
            commit(
                &conn,
                &mut *sink,
                &dir,
                &index,
                &in_flight,
                &mut pending,
                &sm,
                &mut summary,
            )
            .await?;
        } else if !pending.is_empty() && last_progress.elapsed() >= progress_every {
            for h in &pending.held {
                let _ = h.msg.ack_with(AckKind::Progress).await;
            }
            last_progress = Instant::now();
        }
    }
    Ok(summary)
}

/// Counts and indexes committed parts.
fn report(
    dir: &Path,
    commits: &[Commit],
    sm: &crate::telemetry::StageMetrics,
    summary: &mut SinkSummary,
) -> Result<()> {
    for c in commits {
        write_entry(dir, &c.path, &part_ids(&c.path)?)?;
        sm.committed(c.rows, c.bytes);
        sm.records_out.inc_by(c.rows);
        summary.rows += c.rows;
        summary.files.push(c.path.clone());
        tracing::info!(file = %c.path.display(), rows = c.rows, "Committed output file.");
    }
    Ok(())
}

/// Commits the open part, indexes it, then acknowledges every held message and
/// empties `pending`.
#[allow(clippy::too_many_arguments)]
async fn commit(
    conn: &Connection,
    sink: &mut dyn crate::sinks::Sink,
    dir: &Path,
    index: &IdIndex,
    in_flight: &DashSet<String>,
    pending: &mut Pending,
    sm: &crate::telemetry::StageMetrics,
    summary: &mut SinkSummary,
) -> Result<()> {
    let commits = tokio::task::block_in_place(|| sink.finish())?;
    report(dir, &commits, sm, summary)?;
    for id in in_flight.iter() {
        index.ids.insert(id.clone());
    }
    in_flight.clear();
    sm.batches.inc();
    sm.beat();
    let held = std::mem::take(pending).held;
    let acks = futures_util::future::join_all(held.iter().map(|h| h.msg.double_ack())).await;
    for (h, r) in held.iter().zip(acks) {
        match r {
            Ok(()) => {
                if let Some(c) = &h.claim {
                    conn.release_claim(c).await;
                }
            }
            // Its rows are committed; the redelivered copy is dropped by the index.
            Err(e) => tracing::warn!(error = %e, "Acknowledgement not confirmed."),
        }
    }
    Ok(())
}

/// Why the sink could not read a message.
enum Opened {
    /// Over `max_message_bytes`, with the ids it names (possibly none).
    TooLarge(String, Vec<String>),
    /// Anything else.
    Bad(String),
}

/// A received message as a batch in the output schema, with its claim.
async fn open(
    conn: &Connection,
    schema: &arrow::datatypes::SchemaRef,
    msg: &jetstream::Message,
) -> std::result::Result<(arrow::array::RecordBatch, Option<String>), Opened> {
    check_version(msg.headers.as_ref()).map_err(|e| Opened::Bad(e.to_string()))?;
    let (payload, claim) = conn
        .payload(msg.headers.as_ref(), &msg.payload)
        .await
        .map_err(|e| match e {
            ClaimError::TooLarge(m) => Opened::TooLarge(m, Vec::new()),
            ClaimError::Unavailable(m) => Opened::Bad(m),
        })?;
    let b = decode_bounded(&payload, conn.nats.max_message_bytes).map_err(|u| {
        if u.too_large {
            Opened::TooLarge(u.message, u.ids)
        } else {
            Opened::Bad(u.message)
        }
    })?;
    let b = with_columns(&b, schema.clone(), vec![]).map_err(|e| Opened::Bad(e.to_string()))?;
    Ok((b, claim))
}

/// Dead-letters a message over the limit whose ids are known and returns its
/// records as error rows; `None` when the dead letter could not be stored.
#[allow(clippy::too_many_arguments)]
async fn too_large(
    conn: &Connection,
    edge: &super::EdgeNames,
    nm: &NatsMetrics,
    msg: &jetstream::Message,
    seq: u64,
    why: &str,
    ids: &[String],
    schema: &arrow::datatypes::SchemaRef,
) -> Option<arrow::array::RecordBatch> {
    let mut extra = vec![
        (headers::DEAD_REASON, format!("{REASON_TOO_LARGE}: {why}")),
        (headers::DELIVERIES, "1".to_string()),
        (headers::ORIGIN, format!("{}:{seq}", edge.stream)),
        (headers::RECORD_IDS, ids.join(",")),
    ];
    if let Some(c) = msg.headers.as_ref().and_then(|h| h.get(headers::CLAIM)) {
        extra.push((headers::CLAIM, c.as_str().to_string()));
    }
    let payload = msg.payload.clone();
    if let Err(e) = publish_dead_letter(conn, edge, SINK, &extra, ids.len(), payload, seq).await {
        tracing::warn!(error = %e, "Dead-lettering failed; retrying later.");
        return None;
    }
    nm.dead_lettered(REASON_TOO_LARGE);
    tracing::error!(rows = ids.len(), error = %headers::escape(why), "Message over max_message_bytes; its records are error rows.");
    let b = id_batch(ids).ok()?;
    let subject = &edge.dead_letter_subject;
    error_rows(&b, schema, ErrorKind::TooLarge, |id| {
        format!("record {id}: {why}; dead-lettered to {subject}")
    })
    .ok()
}

#[allow(clippy::too_many_arguments)]
async fn undecodable(
    conn: &Connection,
    edge: &super::EdgeNames,
    nm: &NatsMetrics,
    msg: jetstream::Message,
    delivered: i64,
    seq: u64,
    max_deliver: i64,
    reason: &'static str,
    e: &str,
) {
    if delivered < max_deliver {
        tracing::warn!(error = %headers::escape(e), delivery = delivered, "Undecodable message; retrying later.");
        nm.retries.inc();
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    }
    let extra = vec![
        (headers::DEAD_REASON, format!("{reason}: {e}")),
        (headers::DELIVERIES, delivered.to_string()),
        (headers::ORIGIN, format!("{}:{seq}", edge.stream)),
    ];
    match publish_dead_letter(conn, edge, SINK, &extra, 0, msg.payload.clone(), seq).await {
        Ok(()) => {
            nm.dead_lettered(reason);
            let _ = msg.double_ack_with(AckKind::Term).await;
            remove(conn, &edge.stream, seq).await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "Dead-lettering failed; retrying later.");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_rebuilt_from_parts_without_entries() {
        let d = tempfile::tempdir().unwrap();
        let cfg: SinkConfig = toml::from_str("type = \"parquet\"").unwrap();
        let mut sink = cfg
            .build(
                lock_output(d.path()).unwrap(),
                &crate::schema::Edge::Source.schema(),
                "t",
            )
            .unwrap();
        let mut b = crate::schema::EnvelopeBuilder::new();
        b.push("a", None, None, None, Ok(b"x"));
        b.push("b", None, None, None, Ok(b"y"));
        sink.write(&b.finish().unwrap()).unwrap();
        let parts = sink.finish().unwrap();
        assert_eq!(parts.len(), 1);
        let index = IdIndex::open(d.path()).unwrap();
        assert!(index.contains("a") && index.contains("b") && !index.contains("c"));
        let entry = entry_path(d.path(), &parts[0].path);
        assert!(entry.exists(), "the missing entry was written");
        // The entry is what a second open reads.
        std::fs::write(&entry, b"[\"z\"]").unwrap();
        assert!(IdIndex::open(d.path()).unwrap().contains("z"));
    }
}
