//! Distributed mode: the same stages as pools of workers joined by NATS JetStream.
//!
//! This module owns everything that crosses the wire: subject, stream, consumer and
//! bucket names ([`Topology`]), their idempotent creation from the pipeline file's
//! `[nats]` table, the message format ([`codec`]: Arrow IPC streams whose buffers are
//! zstd-compressed or not as `[nats] compression` says, the claim check for large
//! batches), and the three roles: [`worker`] runs one stage,
//! [`submit`] publishes a source, [`sink`] commits Parquet exactly once. It must not
//! know what a stage computes: workers drive stages through the same
//! [`StageChain`](crate::pipeline::StageChain) loop as the embedded runtime, so the two
//! modes differ only in how a batch arrives (a pull) and leaves (a publish).
//!
//! ```text
//! submit ─▶ [stream 00 → decode_image] ─▶ workers ─▶ [stream 01 → caption] ─▶ … ─▶ [stream NN → sink] ─▶ sink
//!               one WorkQueue stream per edge, one durable pull consumer per stream
//! ```
//!
//! Delivery is at-least-once between stages and exactly-once into the output: a worker
//! acknowledges its input only after the server acknowledged the output publish, output
//! messages carry a deterministic `Nats-Msg-Id` (the server drops republished copies
//! inside its duplicate window), and the sink drops record ids it already committed.
//! A message that fails on every delivery is dead-lettered (`dead_letter`, and
//! `advisory` for one no worker lived to fail): its records continue as error rows,
//! and its bytes go to the dead-letter stream with the reason.

mod advisory;
pub mod auth;
pub mod codec;
mod dead_letter;
pub mod metrics;
pub mod pull;
pub mod sink;
pub mod submit;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use async_nats::jetstream::{self, consumer, stream};
use sha2::{Digest, Sha256};

use crate::config::{NatsConfig, NatsStorage, PipelineConfig};
use crate::error::{Error, Result};
use crate::pipeline::BuildContext;
use crate::schema::{columns, ErrorKind, Status};
use crate::stages::StageConfig;

/// Message headers. Names are fixed: other tools (and older workers) read them.
pub mod headers {
    /// The edge schema version of the payload ([`SCHEMA_VERSION`](crate::schema::SCHEMA_VERSION)).
    pub const SCHEMA_VERSION: &str = "Capstream-Schema-Version";
    /// The stage that produced the payload (`source` for `capstream submit`).
    pub const STAGE: &str = "Capstream-Stage";
    /// The edge the payload travels on: its index and the consuming stage, `01.caption`.
    pub const EDGE: &str = "Capstream-Edge";
    /// Rows in the payload.
    pub const ROWS: &str = "Capstream-Rows";
    /// Object Store name holding the payload when it was too large for a message.
    pub const CLAIM: &str = "Capstream-Claim";
    /// Dead letters: why the message was given up.
    pub const DEAD_REASON: &str = "Capstream-Dead-Reason";
    /// Dead letters: deliveries made before it was given up.
    pub const DELIVERIES: &str = "Capstream-Deliveries";
    /// Dead letters: the stream and sequence it came from, `STREAM:SEQ`.
    pub const ORIGIN: &str = "Capstream-Origin";
    /// Dead letters: the record ids it held, comma-separated.
    pub const RECORD_IDS: &str = "Capstream-Record-Ids";
    /// The `capstream submit` run a message descends from; copied from input to output
    /// by every worker and part of every message id, so that the server's de-duplication
    /// drops redelivered copies within a submission but never a later submission of the
    /// same records.
    pub const SUBMISSION: &str = "Capstream-Submission";

    /// Longest value capstream writes into a header; a longer one is cut, with a
    /// marker saying how much was left out. Headers count against the server's
    /// `max_payload`, and a 10 kB error text has no business in one.
    pub const MAX_VALUE_BYTES: usize = 2048;

    /// `s` as a header value: backslash, CR, LF, tab and every other control
    /// character escaped (`\\`, `\r`, `\n`, `\t`, `\u{1b}`), so that no value can end
    /// the header block or panic the client (async-nats asserts on CR and LF), then
    /// cut to [`MAX_VALUE_BYTES`] on a character boundary.
    pub fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len().min(MAX_VALUE_BYTES));
        for (i, c) in s.char_indices() {
            let piece = match c {
                '\\' => "\\\\".to_string(),
                '\r' => "\\r".to_string(),
                '\n' => "\\n".to_string(),
                '\t' => "\\t".to_string(),
                c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
                c => c.to_string(),
            };
            // Room for the marker of what is cut.
            if out.len() + piece.len() > MAX_VALUE_BYTES - 32 {
                out.push_str(&format!("...[+{} bytes]", s.len() - i));
                return out;
            }
            out.push_str(&piece);
        }
        out
    }

    /// Inserts `value`, escaped, under `name` (one of this module's names).
    pub fn put(h: &mut async_nats::HeaderMap, name: &'static str, value: &str) {
        h.insert(name, escape(value).as_str());
    }
}

/// The stage name used for the source's messages and metrics.
pub const SOURCE: &str = "source";
/// The consumer name of the sink.
pub const SINK: &str = "sink";
/// Dead-letter reason: the stage failed on the message on its last delivery.
pub const REASON_STAGE_ERROR: &str = "stage_error";
/// Dead-letter reason: the payload could not be decoded.
pub const REASON_UNDECODABLE: &str = "undecodable";
/// Dead-letter reason: the message declares more than `[nats] max_message_bytes`.
pub const REASON_TOO_LARGE: &str = "too_large";
/// Dead-letter reason: the stage ran past `[nats] batch_timeout_ms` on its last
/// delivery.
pub const REASON_TIMEOUT: &str = "timeout";
/// Dead-letter reason: `max_deliver` deliveries ended without any outcome (a worker
/// died or hung on it every time); found through the server's advisory.
pub const REASON_MAX_DELIVER: &str = "max_deliver";
/// The oldest nats-server with everything distributed mode uses (WorkQueue pull
/// consumers with idle heartbeats, nak delays, `Nats-Msg-Id`, direct get).
pub const MIN_SERVER: (u64, u64) = (2, 9);

/// One pipeline edge on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeNames {
    /// Position: edge `i` feeds stage `i`; the last feeds the sink.
    pub index: usize,
    /// The producing stage (`source` for edge 0).
    pub from: String,
    /// The consuming stage, or `sink`; also the durable consumer's name.
    pub to: String,
    /// The WorkQueue stream.
    pub stream: String,
    /// The one subject of the stream.
    pub subject: String,
    /// Dead letters from this edge's consumer.
    pub dead_letter_subject: String,
    /// The server's max-deliveries advisory for this edge's consumer.
    pub advisory_subject: String,
    /// The edge runs inside one worker (its consumer has `chain = true`): no stream,
    /// no consumer, nothing on the wire.
    pub internal: bool,
}

impl EdgeNames {
    /// The `Capstream-Edge` header value.
    pub fn label(&self) -> String {
        format!("{:02}.{}", self.index, self.to)
    }
}

/// Every name distributed mode uses for one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Edge `i` feeds stage `i`; the last feeds the sink.
    pub edges: Vec<EdgeNames>,
    /// Limits stream keeping dead letters of every edge.
    pub dead_letter_stream: String,
    /// WorkQueue stream capturing the max-deliveries advisories of every edge (the
    /// server publishes them on core NATS, where nobody may be listening).
    pub advisory_stream: String,
    /// Object Store bucket for claim-checked payloads.
    pub claims_bucket: String,
}

/// `s` with everything outside `[A-Za-z0-9_-]` replaced by `_`, lowercased.
fn token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Topology {
    /// The names for `cfg`: they depend only on `[nats] prefix`, the pipeline's name and
    /// its stages, so every process computes the same ones.
    pub fn new(cfg: &PipelineConfig) -> Topology {
        let prefix = token(&cfg.nats.prefix);
        let pipe = token(&cfg.name);
        let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
        let mut edges = Vec::new();
        let n = cfg.stages.len();
        for i in 0..=n {
            let from = if i == 0 {
                SOURCE.to_string()
            } else {
                cfg.stages[i - 1].name().to_string()
            };
            let to = if i == n {
                SINK.to_string()
            } else {
                cfg.stages[i].name().to_string()
            };
            let stream = upper(&format!("{prefix}_{pipe}_{i:02}_{to}"));
            let subject = format!("{prefix}.{pipe}.{i:02}.{to}");
            edges.push(EdgeNames {
                index: i,
                internal: i < n && cfg.stages[i].chained(),
                advisory_subject: format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{to}"
                ),
                dead_letter_subject: format!("{prefix}.{pipe}.dlq.{i:02}.{to}"),
                from,
                to,
                stream,
                subject,
            });
        }
        Topology {
            edges,
            dead_letter_stream: upper(&format!("{prefix}_{pipe}_DLQ")),
            advisory_stream: upper(&format!("{prefix}_{pipe}_ADVISORIES")),
            claims_bucket: upper(&format!("{prefix}_{pipe}_CLAIMS")),
        }
    }

    /// The edges that travel over NATS (all but those inside a chain).
    pub fn wire_edges(&self) -> impl Iterator<Item = &EdgeNames> {
        self.edges.iter().filter(|e| !e.internal)
    }

    /// Subjects of the dead-letter stream.
    pub fn dead_letter_subjects(&self) -> Vec<String> {
        self.wire_edges()
            .map(|e| e.dead_letter_subject.clone())
            .collect()
    }
}

/// The submission token of a received message (empty for messages from elsewhere).
pub fn submission_of(headers: Option<&async_nats::HeaderMap>) -> String {
    headers
        .and_then(|h| h.get(headers::SUBMISSION))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// Maps any displayable error into [`Error::Nats`] naming what was being done.
pub(crate) fn nats_err<E: std::fmt::Display>(what: impl Into<String>) -> impl FnOnce(E) -> Error {
    let what = what.into();
    move |e| Error::Nats(format!("{what}: {e}"))
}

/// Logs the client's connection events: reconnects are warnings an operator wants to
/// see (with the reason when the server gave one), never silence.
fn log_event(role: &str, event: async_nats::Event) {
    use async_nats::Event as E;
    match event {
        E::Connected => tracing::info!(role, "Connected to NATS."),
        E::Disconnected => tracing::warn!(role, "Disconnected from NATS; reconnecting."),
        E::LameDuckMode => tracing::warn!(role, "NATS server entered lame duck mode."),
        E::SlowConsumer(sid) => tracing::warn!(role, sid, "NATS slow consumer."),
        E::ServerError(e) => tracing::warn!(role, error = %e, "NATS server error."),
        E::ClientError(e) => tracing::warn!(role, error = %e, "NATS client error."),
        E::Draining | E::Closed => tracing::debug!(role, event = %event, "NATS connection event."),
    }
}

/// A connection with JetStream checked, and the pipeline's streams and consumers in
/// place.
#[derive(Clone)]
pub struct Connection {
    /// The core client.
    pub client: async_nats::Client,
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The names.
    pub topology: Arc<Topology>,
    /// The pipeline's settings.
    pub nats: NatsConfig,
    /// The bucket for claim-checked payloads.
    pub claims: jetstream::object_store::ObjectStore,
    /// Largest payload that travels inline: the configured limit, lowered to what the
    /// server accepts (minus room for headers).
    pub inline_limit: usize,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("topology", &self.topology)
            .finish()
    }
}

/// Room left in a message for headers when the payload is sized against the server's
/// `max_payload`.
const HEADER_ROOM: usize = 8 << 10;

fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut it = v.trim_start_matches('v').split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Connects to `url` (comma-separated for a cluster) as `name` with the credentials and
/// TLS of `cfg`'s `[nats]` table and checks the server's version; no JetStream is
/// needed. The first connection is tried once per server: a wrong password, an
/// untrusted certificate or an unreachable server fails within the connect timeout,
/// with an error naming the server and the method. Once connected, the client
/// reconnects on its own after any disconnect.
pub async fn connect(url: &str, name: &str, cfg: &PipelineConfig) -> Result<async_nats::Client> {
    let urls: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let shown = auth::redact_url(url);
    let base = cfg.path.parent().unwrap_or(std::path::Path::new("."));
    let settings = auth::Settings::resolve(&cfg.nats, &urls, base, |k| std::env::var(k).ok())?;
    let how = settings.describe();
    let role = name.to_string();
    let options = settings
        .options()
        .await?
        .name(name)
        .event_callback(move |event| {
            let role = role.clone();
            async move { log_event(&role, event) }
        });
    let client = options.connect(urls).await.map_err(|e| {
        use async_nats::ConnectErrorKind as K;
        let why = match e.kind() {
            K::AuthorizationViolation => format!("the server refused {how}"),
            K::Authentication => format!("cannot sign the server's challenge with {how}"),
            K::Tls => format!("the TLS settings cannot be used ({how})"),
            K::TimedOut => format!(
                "no answer within {} ms ({how})",
                cfg.nats.connect_timeout_ms
            ),
            _ => {
                // TLS handshake failures arrive as I/O errors; say which side
                // refused whom.
                let text = e.to_string();
                if text.contains("invalid peer certificate") {
                    format!("the server's certificate is not trusted by the CA given ({how})")
                } else if text.contains("alert") {
                    format!("the server refused the TLS handshake, usually the client certificate ({how})")
                } else {
                    format!("connection failed ({how})")
                }
            }
        };
        Error::Nats(format!("cannot connect to {shown}: {why}: {e}"))
    })?;
    let info = client.server_info();
    match parse_version(&info.version) {
        Some(v) if v >= MIN_SERVER => {}
        _ => {
            return Err(Error::Nats(format!(
                "nats-server at {url} is version {}; distributed mode needs {}.{} or newer",
                info.version, MIN_SERVER.0, MIN_SERVER.1
            )))
        }
    }
    Ok(client)
}

impl Connection {
    /// Connects to `url` as `name` with the credentials and TLS of `cfg`'s `[nats]`
    /// table, checks the server (version, JetStream) and creates or updates every
    /// stream, consumer and bucket of `cfg`'s pipeline. Safe to call from many
    /// processes at once.
    ///
    /// The first connection is tried once per server (no retry loop): a wrong
    /// password, an untrusted certificate or an unreachable server fails within the
    /// connect timeout, with an error naming the server and the method. Once
    /// connected, the client reconnects on its own after any disconnect.
    pub async fn open(url: &str, name: &str, cfg: &PipelineConfig) -> Result<Connection> {
        let client = connect(url, name, cfg).await?;
        let info = client.server_info();
        let no_js = || {
            Error::Nats(format!(
                "nats-server {} at {url} has JetStream disabled; start it with `-js` \
                 (or a `jetstream {{}}` block in its config, see deploy/nats)",
                info.version
            ))
        };
        if !info.jetstream {
            return Err(no_js());
        }
        // The account must have JetStream too. Read the raw answer: async-nats' typed
        // account info does not parse what a 2.9 server sends.
        let answer = client
            .request("$JS.API.INFO", bytes::Bytes::new())
            .await
            .map_err(|e| {
                Error::Nats(format!(
                    "{} (no answer to $JS.API.INFO: {e})",
                    no_js().to_string().trim_start_matches("nats: ")
                ))
            })?;
        let v: serde_json::Value = serde_json::from_slice(&answer.payload)?;
        if let Some(err) = v.get("error") {
            return Err(Error::Nats(format!(
                "{}; the server answered: {err}",
                no_js().to_string().trim_start_matches("nats: ")
            )));
        }
        let js = jetstream::new(client.clone());
        let topology = Arc::new(Topology::new(cfg));
        let nats = cfg.nats.clone();
        ensure(&js, &topology, &nats).await?;
        let claims = ensure_claims(&js, &topology, &nats).await?;
        let inline_limit = nats
            .max_payload
            .min(info.max_payload.saturating_sub(HEADER_ROOM).max(1024));
        Ok(Connection {
            client,
            js,
            topology,
            nats,
            claims,
            inline_limit,
        })
    }

    /// Readiness also requires this connection to be up (the client reconnects by
    /// itself; while it is away the process is live but not ready).
    pub fn watch_health(&self, health: &crate::telemetry::Health) {
        let c = self.client.clone();
        health.ready_when("NATS connected", move || {
            c.connection_state() == async_nats::connection::State::Connected
        });
    }

    /// Edge `i`, which must travel over NATS.
    fn wire_edge(&self, i: usize) -> Result<&EdgeNames> {
        match self.topology.edges.get(i) {
            Some(e) if !e.internal => Ok(e),
            Some(e) => Err(Error::Config(format!(
                "{} has chain = true: it runs in the worker of {}, not on its own",
                e.to, e.from
            ))),
            None => Err(Error::Runtime(format!("no edge {i}"))),
        }
    }

    /// The durable pull consumer of edge `i`.
    pub async fn consumer(&self, i: usize) -> Result<consumer::PullConsumer> {
        let e = self.wire_edge(i)?;
        let s = self
            .js
            .get_stream(&e.stream)
            .await
            .map_err(nats_err(format!("stream {}", e.stream)))?;
        s.get_consumer(&e.to)
            .await
            .map_err(nats_err(format!("consumer {} on {}", e.to, e.stream)))
    }

    /// Messages still in edge `i`'s stream (WorkQueue: not yet acknowledged by its
    /// consumer) plus those delivered and not acknowledged.
    pub async fn backlog(&self, i: usize) -> Result<u64> {
        let e = self.wire_edge(i)?;
        let s = self
            .js
            .get_stream(&e.stream)
            .await
            .map_err(nats_err(format!("stream {}", e.stream)))?;
        Ok(s.cached_info().state.messages)
    }

    /// True when every edge stream is empty: every record submitted so far reached
    /// the sink's committed output or the dead-letter stream.
    pub async fn drained(&self) -> Result<bool> {
        for e in self.topology.wire_edges() {
            if self.backlog(e.index).await? > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn storage(s: NatsStorage) -> stream::StorageType {
    match s {
        NatsStorage::File => stream::StorageType::File,
        NatsStorage::Memory => stream::StorageType::Memory,
    }
}

/// Runs `op` up to five times, 100 ms × attempt apart; the last error names `what`.
/// Several processes starting at once race on creating the same streams and consumers.
async fn retrying<F, Fut>(what: &str, mut op: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let mut last = String::new();
    for attempt in 0..5u64 {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                last = e;
                tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
            }
        }
    }
    let hint = if last.contains("10047") || last.contains("insufficient storage") {
        "; lower [nats] dead_letter_max_bytes or claims_max_bytes, or raise the server's \
         jetstream max_file_store / max_memory_store"
    } else {
        ""
    };
    Err(Error::Nats(format!(
        "cannot create or update {what}: {last}{hint}"
    )))
}

/// Creates or updates one stream.
async fn put_stream(js: &jetstream::Context, config: stream::Config) -> Result<()> {
    retrying(&format!("stream {}", config.name), || async {
        js.create_or_update_stream(config.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

/// Creates or updates one durable consumer. On 2.9 a durable create with an equal
/// config is a no-op and a changed one an update, so this is idempotent.
async fn put_consumer(
    js: &jetstream::Context,
    stream_name: &str,
    config: consumer::pull::Config,
) -> Result<()> {
    let name = config.durable_name.clone().unwrap_or_default();
    retrying(&format!("consumer {name} on {stream_name}"), || async {
        let s = js
            .get_stream(stream_name)
            .await
            .map_err(|e| e.to_string())?;
        s.create_consumer(config.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

/// Streams and consumers of the pipeline, created or brought to the file's settings.
async fn ensure(js: &jetstream::Context, t: &Topology, n: &NatsConfig) -> Result<()> {
    let max_msg = i32::try_from(n.max_payload + HEADER_ROOM).unwrap_or(i32::MAX);
    for e in t.wire_edges() {
        put_stream(
            js,
            stream::Config {
                name: e.stream.clone(),
                subjects: vec![e.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: storage(n.storage),
                num_replicas: n.replicas,
                max_message_size: max_msg,
                duplicate_window: Duration::from_secs(n.duplicate_window_s),
                description: Some(format!("capstream edge {} -> {}", e.from, e.to)),
                ..Default::default()
            },
        )
        .await?;
        put_consumer(
            js,
            &e.stream,
            consumer::pull::Config {
                durable_name: Some(e.to.clone()),
                description: Some(format!("capstream {} workers", e.to)),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(n.ack_wait_ms),
                // The sink's writes are idempotent by record id and it fails on no
                // record, so its deliveries are unlimited: a sink that crashes over and
                // over must not leave exhausted messages stuck in its stream. It still
                // dead-letters an undecodable message after `max_deliver` tries itself.
                max_deliver: if e.to == SINK { -1 } else { n.max_deliver },
                max_ack_pending: n.max_ack_pending,
                filter_subject: e.subject.clone(),
                ..Default::default()
            },
        )
        .await?;
    }
    put_stream(
        js,
        stream::Config {
            name: t.dead_letter_stream.clone(),
            subjects: t.dead_letter_subjects(),
            retention: stream::RetentionPolicy::Limits,
            storage: storage(n.storage),
            num_replicas: n.replicas,
            // Bounded: a poison flood must not fill the server's disk. The oldest dead
            // letters go first; their records are already error rows in the output.
            max_age: Duration::from_secs(n.dead_letter_max_age_s),
            max_bytes: n.dead_letter_bytes(),
            discard: stream::DiscardPolicy::Old,
            // The server refuses a duplicate window longer than max_age.
            duplicate_window: Duration::from_secs(match n.dead_letter_max_age_s {
                0 => n.duplicate_window_s,
                age => n.duplicate_window_s.min(age),
            }),
            description: Some("capstream dead letters".into()),
            ..Default::default()
        },
    )
    .await?;
    put_stream(
        js,
        stream::Config {
            name: t.advisory_stream.clone(),
            subjects: t.wire_edges().map(|e| e.advisory_subject.clone()).collect(),
            retention: stream::RetentionPolicy::WorkQueue,
            storage: storage(n.storage),
            num_replicas: n.replicas,
            description: Some("capstream max-deliveries advisories".into()),
            ..Default::default()
        },
    )
    .await?;
    for e in t.wire_edges() {
        put_consumer(
            js,
            &t.advisory_stream,
            consumer::pull::Config {
                durable_name: Some(dead_letter_consumer(&e.to)),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(n.ack_wait_ms),
                filter_subject: e.advisory_subject.clone(),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// The advisory consumer a stage's workers share to dead-letter its exhausted messages.
pub fn dead_letter_consumer(to: &str) -> String {
    format!("dlq_{to}")
}

async fn ensure_claims(
    js: &jetstream::Context,
    t: &Topology,
    n: &NatsConfig,
) -> Result<jetstream::object_store::ObjectStore> {
    let bucket = &t.claims_bucket;
    let store = match js.get_object_store(bucket).await {
        Ok(s) => s,
        Err(_) => match js
            .create_object_store(jetstream::object_store::Config {
                bucket: bucket.clone(),
                description: Some("capstream claim-checked batches".into()),
                storage: storage(n.storage),
                num_replicas: n.replicas,
                max_age: Duration::from_secs(n.claims_max_age_s),
                max_bytes: n.claims_bytes(),
                ..Default::default()
            })
            .await
        {
            Ok(s) => s,
            // Another process created it meanwhile.
            Err(first) => js.get_object_store(bucket).await.map_err(|_| {
                Error::Nats(format!("cannot create object store {bucket}: {first}"))
            })?,
        },
    };
    // A bucket made by an older capstream (or with other limits) is brought to the
    // file's: its backing stream is OBJ_<bucket>.
    let backing = format!("OBJ_{bucket}");
    let mut s = js
        .get_stream(&backing)
        .await
        .map_err(nats_err(format!("stream {backing}")))?;
    let info = s
        .info()
        .await
        .map_err(nats_err(format!("stream {backing}")))?;
    let want_age = Duration::from_secs(n.claims_max_age_s);
    if info.config.max_age != want_age || info.config.max_bytes != n.claims_bytes() {
        let mut c = info.config.clone();
        c.max_age = want_age;
        c.max_bytes = n.claims_bytes();
        js.update_stream(c)
            .await
            .map_err(nats_err(format!("update stream {backing}")))?;
    }
    Ok(store)
}

/// A short revision of a stage's settings and model folder: part of every output
/// message id, so that output of a changed stage is never dropped as a duplicate of
/// the old one's.
pub fn stage_revision(stage: &StageConfig, cx: &BuildContext) -> String {
    let mut h = Sha256::new();
    h.update(format!("{stage:?}").as_bytes());
    if let Some(Ok(dir)) = stage.model_dir(cx) {
        h.update(dir.display().to_string().as_bytes());
    }
    if let Some(a) = &cx.audio_model_override {
        h.update(a.display().to_string().as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

/// The record ids of a batch, in row order.
pub fn record_ids(batch: &RecordBatch) -> Result<Vec<String>> {
    let ids = crate::schema::column::<StringArray>(batch, columns::ID)?;
    Ok((0..ids.len()).map(|i| ids.value(i).to_string()).collect())
}

/// The `Nats-Msg-Id` of a batch produced by `stage` at `revision` for `submission`: a
/// digest of its record ids, so that every redelivery of the same input republishes the
/// same id.
pub fn message_id(stage: &str, revision: &str, submission: &str, ids: &[String]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    format!(
        "{stage}:{revision}:{submission}:{}",
        hex::encode(&h.finalize()[..16])
    )
}

/// A one-column batch of `ids`, so that error rows can be made for records whose
/// batch could not be decoded (only their ids could be read).
pub(crate) fn id_batch(ids: &[String]) -> Result<RecordBatch> {
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new(columns::ID, arrow::datatypes::DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(ids.to_vec()))],
    )?)
}

/// `input`'s records as rows of `schema` that failed with `kind`: envelope columns
/// carried over, every column the stage would have added null, `status = "error"`.
/// `message(id)` names the record and the reason.
pub fn error_rows(
    input: &RecordBatch,
    schema: &SchemaRef,
    kind: ErrorKind,
    message: impl Fn(&str) -> String,
) -> Result<RecordBatch> {
    let n = input.num_rows();
    let ids = crate::schema::column::<StringArray>(input, columns::ID)?;
    let status: ArrayRef = Arc::new(StringArray::from(vec![Status::Error.as_str(); n]));
    let kinds: ArrayRef = Arc::new(StringArray::from(vec![kind.as_str(); n]));
    let messages: ArrayRef = Arc::new(StringArray::from(
        (0..n).map(|i| message(ids.value(i))).collect::<Vec<_>>(),
    ));
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let a = match f.name().as_str() {
            columns::STATUS => status.clone(),
            columns::ERROR_KIND => kinds.clone(),
            columns::ERROR => messages.clone(),
            name => match input.column_by_name(name) {
                Some(c) if c.data_type() == f.data_type() => c.clone(),
                _ => new_null_array(f.data_type(), n),
            },
        };
        arrays.push(a);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const P: &str = r#"
name = "My pipe"
mode = "nats"
[source]
type = "files"
[[stage]]
type = "decode_image"
[sink]
type = "parquet"
"#;

    #[test]
    fn names_are_stable_and_legal() {
        let cfg = PipelineConfig::parse(P, Path::new("p.toml")).unwrap();
        let t = Topology::new(&cfg);
        assert_eq!(t.edges.len(), 2);
        assert_eq!(t.edges[0].stream, "CAPSTREAM_MY_PIPE_00_DECODE_IMAGE");
        assert_eq!(t.edges[0].subject, "capstream.my_pipe.00.decode_image");
        assert_eq!(t.edges[1].to, SINK);
        assert_eq!(t.edges[1].from, "decode_image");
        assert_eq!(
            t.edges[1].advisory_subject,
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.CAPSTREAM_MY_PIPE_01_SINK.sink"
        );
        assert_eq!(t.claims_bucket, "CAPSTREAM_MY_PIPE_CLAIMS");
        assert!(t.wire_edges().all(|e| !e.internal));
    }

    #[test]
    fn a_chained_stage_has_no_edge_on_the_wire() {
        let text = P.replace(
            "[sink]",
            "[[stage]]\ntype = \"speak\"\nchain = true\n[sink]",
        );
        let cfg = PipelineConfig::parse(&text, Path::new("p.toml")).unwrap();
        let t = Topology::new(&cfg);
        assert_eq!(t.edges.len(), 3);
        assert!(
            t.edges[1].internal,
            "decode_image -> speak stays in one worker"
        );
        let wire: Vec<&str> = t.wire_edges().map(|e| e.to.as_str()).collect();
        assert_eq!(wire, ["decode_image", SINK]);
        assert_eq!(t.edges[2].from, "speak");
        assert_eq!(t.dead_letter_subjects().len(), 2);
    }

    #[test]
    fn message_ids_depend_on_ids_stage_and_revision() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let m = message_id("caption", "r1", "s1", &ids);
        assert_eq!(m, message_id("caption", "r1", "s1", &ids));
        assert_ne!(m, message_id("caption", "r2", "s1", &ids));
        assert_ne!(m, message_id("score", "r1", "s1", &ids));
        assert_ne!(m, message_id("caption", "r1", "s2", &ids));
        assert_ne!(m, message_id("caption", "r1", "s1", &ids[..1]));
        assert!(m.starts_with("caption:r1:s1:"));
    }

    #[test]
    fn header_values_are_escaped_and_capped() {
        assert_eq!(
            headers::escape("a\nb\r\\c\td\u{1b}e"),
            "a\\nb\\r\\\\c\\td\\u{1b}e"
        );
        let long = format!("record x\ny: {}", "é".repeat(6_000));
        let v = headers::escape(&long);
        assert!(v.len() <= headers::MAX_VALUE_BYTES, "{}", v.len());
        assert!(
            v.starts_with("record x\\ny: ") && v.ends_with(" bytes]"),
            "{v}"
        );
        // The client asserts on CR and LF; escaped values go in without a panic.
        let mut h = async_nats::HeaderMap::new();
        headers::put(&mut h, headers::DEAD_REASON, &long);
        headers::put(&mut h, headers::RECORD_IDS, "a\r\nForged: 1");
        assert_eq!(
            h.get(headers::RECORD_IDS).unwrap().as_str(),
            "a\\r\\nForged: 1"
        );
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.9.10"), Some((2, 9)));
        assert_eq!(parse_version("v2.10.1-beta"), Some((2, 10)));
        assert!(parse_version("x").is_none());
        assert!((2, 8) < MIN_SERVER && (2, 10) >= MIN_SERVER);
    }

    #[test]
    fn error_rows_keep_the_envelope_and_null_the_rest() {
        let mut b = crate::schema::EnvelopeBuilder::new();
        b.push("r1", Some("a.png"), None, None, Ok(b"xx"));
        let input = b.finish().unwrap();
        let schema = crate::schema::Edge::Captioned.schema();
        let out = error_rows(&input, &schema, ErrorKind::Internal, |id| {
            format!("record {id}: boom")
        })
        .unwrap();
        assert_eq!(out.schema(), schema);
        let st = crate::schema::column::<StringArray>(&out, columns::STATUS).unwrap();
        assert_eq!(st.value(0), "error");
        let e = crate::schema::column::<StringArray>(&out, columns::ERROR).unwrap();
        assert_eq!(e.value(0), "record r1: boom");
        let uri = crate::schema::column::<StringArray>(&out, columns::URI).unwrap();
        assert_eq!(uri.value(0), "a.png");
        assert!(out.column_by_name(columns::CAPTION).unwrap().is_null(0));
    }
}
