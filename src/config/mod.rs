//! Pipeline files: the TOML a user writes, parsed and checked.
//!
//! This module owns the serde types of `pipelines/*.toml` and their validation. Every
//! table rejects unknown keys, and errors name the file and the key. It must not build
//! stages or touch the runtime: [`pipeline::Plan`](crate::pipeline::Plan) turns a
//! checked [`PipelineConfig`] into running parts.

mod serve;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use serve::ServeConfig;

use crate::error::{Error, Result};
pub use crate::limits::{BatchConfig, MAX_BATCH_BYTES, MAX_RECORD_BYTES};
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;
use crate::stages::StageConfig;

/// How stages are connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One process; stages joined by bounded in-memory channels.
    #[default]
    Embedded,
    /// Each stage a pool of workers joined by NATS JetStream streams (`[nats]`).
    Nats,
}

/// Where a JetStream stream keeps its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsStorage {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory: faster, lost with the server.
    Memory,
}

/// How batch bodies are compressed on the wire (Arrow IPC buffer compression; readers
/// detect it, so workers with different settings interoperate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsCompression {
    /// zstd: for links where bytes cost more than CPU.
    #[default]
    Zstd,
    /// None: for loopback or a fast LAN, where compressing decoded pixels spends CPU a
    /// co-located model could use (benches/nats measures both).
    None,
}

/// A key that must not appear in a pipeline file: its presence is remembered so that
/// validation can say where the value belongs instead (a secret in a file that lives in
/// git and in every container image is a leaked secret).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forbidden;

impl<'de> Deserialize<'de> for Forbidden {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Forbidden)
    }
}

/// `[nats]`: distributed mode. Streams and consumers are created (idempotently) from
/// these settings by every `capstream worker`, `submit` and `sink`.
///
/// Credentials are never values here: the table names files (or the environment
/// variables `CAPSTREAM_NATS_PASSWORD` / `CAPSTREAM_NATS_TOKEN`), which
/// [`transport::auth`](crate::transport::auth) reads at connect time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL used when the command line gives no `--nats`.
    pub url: String,
    /// First token of every subject and name of every stream, consumer and bucket.
    pub prefix: String,
    /// Copies of every stream in a cluster (1 on a single server, 3 for R3).
    pub replicas: usize,
    /// Where streams keep messages.
    pub storage: NatsStorage,
    /// A delivered message not acknowledged within this time is redelivered. Workers
    /// send progress acks while a batch is in inference, so this bounds how long a dead
    /// worker holds records, not how long a batch may take.
    pub ack_wait_ms: u64,
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliver: i64,
    /// Delivered but unacknowledged messages per consumer (all workers of a stage).
    pub max_ack_pending: i64,
    /// Encoded batches above this many bytes travel through the Object Store (claim
    /// check) instead of inside the message; also each stream's largest message.
    pub max_payload: usize,
    /// Most bytes one message may decode to (the Arrow buffers it declares, checked
    /// before anything is decompressed), and the largest claim-check object read. A
    /// message over it is dead-lettered (`too_large`) and its records become error rows,
    /// so a small zstd bomb cannot inflate a worker's memory.
    pub max_message_bytes: usize,
    /// Redelivery delay after a failed attempt.
    pub nak_delay_ms: u64,
    /// Window in which the server drops a republished `Nats-Msg-Id`.
    pub duplicate_window_s: u64,
    /// Records per message published by `capstream submit`.
    pub records_per_message: usize,
    /// `submit` pauses while the first stream holds more messages than this.
    pub max_backlog: u64,
    /// The sink commits a part file at least this often while rows are pending.
    pub commit_interval_ms: u64,
    /// How long an idle worker's pull request waits for a first message.
    pub idle_wait_ms: u64,
    /// Longest one stage batch may take. After it the worker stops sending progress
    /// acks, returns the messages for redelivery and replaces its stage thread; on the
    /// last delivery the records become `error_kind = "timeout"` rows.
    pub batch_timeout_ms: u64,
    /// A consumer is stalled when it reports pending messages while pulls have
    /// returned nothing for this long; the worker then re-binds it (and, on a cluster,
    /// asks for a consumer leader step-down), counting each recovery.
    pub stall_after_ms: u64,
    /// Each connection attempt to one server (TCP, TLS, handshake) gives up after this.
    pub connect_timeout_ms: u64,
    /// Compression of batch bodies in messages.
    pub compression: NatsCompression,
    /// Dead letters older than this are dropped by the server (0: kept until
    /// `dead_letter_max_bytes`).
    pub dead_letter_max_age_s: u64,
    /// The dead-letter stream keeps at most this many bytes, dropping the oldest (-1:
    /// no limit). The server reserves it at creation; unset, 1 GiB with file storage
    /// and 64 MiB with memory storage, which fit the shipped server configs.
    pub dead_letter_max_bytes: Option<i64>,
    /// Claim-check objects older than this are dropped by the server (a crashed
    /// consumer's object otherwise stays forever). Keep it above the longest backlog.
    pub claims_max_age_s: u64,
    /// The claims bucket holds at most this many bytes (-1: no limit); a put beyond it
    /// fails and the message is retried, which is back-pressure rather than loss.
    /// Reserved at creation; unset, 10 GiB with file storage and 256 MiB with memory.
    pub claims_max_bytes: Option<i64>,

    // === Authentication and TLS ===
    /// User name for user/password authentication (with `password_file` or
    /// `CAPSTREAM_NATS_PASSWORD`).
    pub user: Option<String>,
    /// File holding the password (one line; a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// File holding an authentication token (else `CAPSTREAM_NATS_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// File holding an nkey seed (`SU…`) for nkey authentication.
    pub nkey_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and nkey seed) for decentralized JWT authentication.
    pub credentials_file: Option<PathBuf>,
    /// PEM CA certificate(s) the server's certificate must chain to. Setting any
    /// `tls_*` key (or a `tls://` URL) makes TLS required.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Refused: a password is never written in a pipeline file.
    pub password: Option<Forbidden>,
    /// Refused: a token is never written in a pipeline file.
    pub token: Option<Forbidden>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "capstream".into(),
            replicas: 1,
            storage: NatsStorage::File,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            max_ack_pending: 256,
            max_payload: 1 << 20,
            max_message_bytes: 256 << 20,
            nak_delay_ms: 2_000,
            duplicate_window_s: 120,
            records_per_message: 1,
            max_backlog: 10_000,
            commit_interval_ms: 1_000,
            idle_wait_ms: 2_000,
            batch_timeout_ms: 600_000,
            stall_after_ms: 15_000,
            connect_timeout_ms: 5_000,
            compression: NatsCompression::Zstd,
            dead_letter_max_age_s: 30 * 24 * 3600,
            dead_letter_max_bytes: None,
            claims_max_age_s: 7 * 24 * 3600,
            claims_max_bytes: None,
            user: None,
            password_file: None,
            token_file: None,
            nkey_file: None,
            credentials_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            password: None,
            token: None,
        }
    }
}

impl NatsConfig {
    /// `dead_letter_max_bytes`, or its default for the storage type.
    pub fn dead_letter_bytes(&self) -> i64 {
        self.dead_letter_max_bytes.unwrap_or(match self.storage {
            NatsStorage::File => 1 << 30,
            NatsStorage::Memory => 64 << 20,
        })
    }

    /// `claims_max_bytes`, or its default for the storage type.
    pub fn claims_bytes(&self) -> i64 {
        self.claims_max_bytes.unwrap_or(match self.storage {
            NatsStorage::File => 10 << 30,
            NatsStorage::Memory => 256 << 20,
        })
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("[nats] {m}")));
        if self.prefix.is_empty()
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad("prefix must be letters, digits, '_' or '-'");
        }
        if !(1..=5).contains(&self.replicas) {
            return bad("replicas must be 1 to 5");
        }
        if self.ack_wait_ms < 100 {
            return bad("ack_wait_ms must be at least 100");
        }
        if self.max_deliver < 1 {
            return bad("max_deliver must be at least 1");
        }
        if self.max_ack_pending < 1 {
            return bad("max_ack_pending must be at least 1");
        }
        if self.max_payload < 1024 {
            return bad("max_payload must be at least 1024");
        }
        if self.max_message_bytes < self.max_payload {
            return bad("max_message_bytes must be at least max_payload");
        }
        if self.records_per_message == 0 || self.max_backlog == 0 {
            return bad("records_per_message and max_backlog must be at least 1");
        }
        if self.commit_interval_ms == 0 || self.idle_wait_ms == 0 {
            return bad("commit_interval_ms and idle_wait_ms must be at least 1");
        }
        if self.batch_timeout_ms < 100 || self.stall_after_ms < 100 {
            return bad("batch_timeout_ms and stall_after_ms must be at least 100");
        }
        if self.connect_timeout_ms < 100 {
            return bad("connect_timeout_ms must be at least 100");
        }
        if [self.dead_letter_max_bytes, self.claims_max_bytes]
            .iter()
            .flatten()
            .any(|&b| b == 0 || b < -1)
        {
            return bad(
                "dead_letter_max_bytes and claims_max_bytes must be -1 (unlimited) or positive",
            );
        }
        if self.password.is_some() {
            return bad(
                "password: secrets are never read from a pipeline file; set password_file \
                 (a file only the service can read) or CAPSTREAM_NATS_PASSWORD",
            );
        }
        if self.token.is_some() {
            return bad(
                "token: secrets are never read from a pipeline file; set token_file or \
                 CAPSTREAM_NATS_TOKEN",
            );
        }
        Ok(())
    }
}

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name used in metrics labels, logs and output metadata.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// How stages are connected.
    #[serde(default)]
    pub mode: Mode,
    /// Capacity of every channel between stages, in batches.
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
    /// Default micro-batching for every stage.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Where records come from.
    pub source: SourceConfig,
    /// The stages, in order.
    #[serde(default, rename = "stage")]
    pub stages: Vec<StageConfig>,
    /// Where rows land.
    pub sink: SinkConfig,
    /// Distributed mode settings (used by `mode = "nats"` and the worker commands), and
    /// the connection of `capstream serve --nats`.
    #[serde(default)]
    pub nats: NatsConfig,
    /// `capstream serve`'s limits (with `[source] type = "request"`).
    #[serde(default)]
    pub serve: ServeConfig,
    /// The file this came from; set by [`PipelineConfig::load`].
    #[serde(skip)]
    pub path: PathBuf,
}

fn default_channel_capacity() -> usize {
    4
}

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates pipeline text; `path` is used in messages and to resolve
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: PipelineConfig = toml::from_str(text).map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.path = path.to_path_buf();
        cfg.validate().map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::Config("name must not be empty".into()));
        }
        if self.channel_capacity == 0 {
            return Err(Error::Config("channel_capacity must be at least 1".into()));
        }
        self.batch.validate("[batch]")?;
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(b) = s.batch() {
                b.validate(&format!("stage {} ({})", i + 1, s.name()))?;
            }
            if s.workers() == 0 {
                return Err(Error::Config(format!(
                    "stage {} ({}): workers must be at least 1",
                    i + 1,
                    s.name()
                )));
            }
            s.validate()
                .map_err(|e| Error::Config(format!("stage {} ({}): {e}", i + 1, s.name())))?;
            if i == 0 && s.chained() {
                return Err(Error::Config(format!(
                    "stage 1 ({}): chain = true needs a stage before it",
                    s.name()
                )));
            }
        }
        self.source.validate()?;
        self.sink.validate()?;
        self.nats.validate()?;
        self.serve.validate()?;
        // A request source's rows go back to their callers, and only there.
        let request = matches!(self.source, SourceConfig::Request(_));
        let response = matches!(self.sink, SinkConfig::Response(_));
        if request != response {
            return Err(Error::Config(
                "[source] type = \"request\" and [sink] type = \"response\" go together: \
                 rows of served requests are answered, not written"
                    .into(),
            ));
        }
        if request && self.mode == Mode::Nats {
            return Err(Error::Config(
                "a request pipeline runs in `capstream serve`, in one process: mode must be \
                 \"embedded\" (serve --nats answers NATS requests without JetStream)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The stages run by the worker of stage `head` in distributed mode: `head` and
    /// every `chain = true` stage right after it.
    pub fn chain(&self, head: usize) -> std::ops::Range<usize> {
        let end = (head + 1..self.stages.len())
            .find(|&j| !self.stages[j].chained())
            .unwrap_or(self.stages.len());
        head..end
    }

    /// Micro-batching of a chain: the smallest `[stage.batch]` among its stages (a
    /// worker never holds more messages than its model stage takes in one batch),
    /// else the pipeline's.
    pub fn chain_batch(&self, chain: std::ops::Range<usize>) -> BatchConfig {
        self.stages[chain]
            .iter()
            .filter_map(|s| s.batch())
            .min_by_key(|b| b.max_rows)
            .unwrap_or(self.batch)
    }

    /// Stage threads of a chain's worker: the most any of its stages asks for.
    pub fn chain_workers(&self, chain: std::ops::Range<usize>) -> usize {
        self.stages[chain]
            .iter()
            .map(|s| s.workers())
            .max()
            .unwrap_or(1)
    }

    /// Resolves a path written in the pipeline file relative to the file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path
                .parent()
                .map(|d| d.join(p))
                .unwrap_or_else(|| p.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[source]
type = "files"
[sink]
type = "parquet"
"#;

    #[test]
    fn minimal_file_parses_with_defaults() {
        let cfg = PipelineConfig::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.batch, BatchConfig::default());
        assert_eq!(cfg.channel_capacity, 4);
        assert!(cfg.stages.is_empty());
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        for (text, key) in [
            (format!("{MINIMAL}\nbogus = 1\n"), "bogus"),
            (
                MINIMAL.replace("type = \"files\"", "type = \"files\"\nrecursiv = true"),
                "recursiv",
            ),
            (
                format!("{MINIMAL}\n[[stage]]\ntype = \"decode_image\"\nimage_sise = 3\n"),
                "image_sise",
            ),
            (format!("{MINIMAL}\n[batch]\nmax_row = 3\n"), "max_row"),
        ] {
            let err = PipelineConfig::parse(&text, Path::new("dir/p.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("dir/p.toml"), "{err}");
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn a_request_source_needs_a_response_sink_and_one_process() {
        let served = "name = \"s\"\n[source]\ntype = \"request\"\n[sink]\ntype = \"response\"\n";
        let cfg = PipelineConfig::parse(served, Path::new("s.toml")).unwrap();
        assert_eq!(cfg.serve, ServeConfig::default());
        for text in [
            served.replace("\"response\"", "\"parquet\""),
            MINIMAL.replace("\"parquet\"", "\"response\""),
        ] {
            let e = PipelineConfig::parse(&text, Path::new("s.toml")).unwrap_err();
            assert!(e.to_string().contains("go together"), "{e}");
        }
        let e = PipelineConfig::parse(&format!("mode = \"nats\"\n{served}"), Path::new("s.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("one process"), "{e}");
        let e = PipelineConfig::parse(
            &format!("{served}[serve]\nqueue_capacity = 0\n"),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("queue_capacity"), "{e}");
    }

    #[test]
    fn zero_limits_are_rejected() {
        let text = format!("{MINIMAL}\n[batch]\nmax_rows = 0\n");
        let err = PipelineConfig::parse(&text, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("max_rows"), "{err}");
    }

    #[test]
    fn chains_group_a_stage_with_the_chain_true_stages_after_it() {
        let text = format!(
            "{MINIMAL}
[[stage]]
type = \"decode_image\"
workers = 2
[[stage]]
type = \"caption\"
model = \"m\"
chain = true
[stage.batch]
max_rows = 8
[[stage]]
type = \"speak\"
"
        );
        let cfg = PipelineConfig::parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(cfg.chain(0), 0..2);
        assert_eq!(cfg.chain(2), 2..3);
        assert_eq!(cfg.chain_batch(0..2).max_rows, 8, "the model stage's batch");
        assert_eq!(cfg.chain_batch(2..3), cfg.batch);
        assert_eq!(cfg.chain_workers(0..2), 2);

        let first = text.replacen("workers = 2", "workers = 2\nchain = true", 1);
        let err = PipelineConfig::parse(&first, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("stage 1"), "{err}");
    }
}
