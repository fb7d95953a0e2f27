//! The crate's one error type.
//!
//! `Error` is what a library function returns when it *cannot continue*: a bad pipeline
//! file, an unreadable output folder, a schema mismatch between stages. A record that
//! fails (an undecodable image) is not an `Error`: it becomes an output row with
//! `status = "error"` and an [`ErrorKind`](crate::schema::ErrorKind) (see `schema`).

use std::path::PathBuf;

/// Everything that can stop a capstream operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // === Configuration ===
    /// A pipeline file could not be read or parsed.
    #[error("pipeline file {path}: {message}")]
    Pipeline {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key where there is one.
        message: String,
    },
    /// A setting is out of range or contradicts another.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Two stages disagree on the batch schema between them.
    #[error("schema mismatch between {upstream} and {downstream}: {detail}")]
    SchemaMismatch {
        /// The stage that produces the batches.
        upstream: String,
        /// The stage that consumes them.
        downstream: String,
        /// The first difference found.
        detail: String,
    },
    /// A schema name that does not exist.
    #[error("unknown schema edge {0:?}")]
    UnknownEdge(String),

    // === Input and output ===
    /// File system I/O, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Arrow failed to build or convert a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed to read or write a file.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// JSON (de)serialisation.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    // === Models ===
    /// libtorch reported an error (the model side converts `tch`'s errors).
    #[error("libtorch: {0}")]
    Torch(String),
    /// A stage runs a model, and this process has no model side to build it with.
    #[error(
        "stage {stage} runs a model, and this process has no model side (capstream-torch) to build it"
    )]
    NoModelSide {
        /// The stage's name.
        stage: String,
    },
    /// A model folder is incomplete or inconsistent with its config.
    #[error("model {path}: {message}")]
    Model {
        /// The model folder or file.
        path: PathBuf,
        /// What is wrong, naming the tensor or file.
        message: String,
    },

    // === Distributed mode ===
    /// NATS or JetStream refused or failed an operation (connection, stream, consumer,
    /// publish, object store), with what was being done.
    #[error("nats: {0}")]
    Nats(String),

    // === Runtime ===
    /// A stage failed in a way that stops the pipeline.
    #[error("stage {stage} failed: {message}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// Why it cannot go on.
        message: String,
    },
    /// A pipeline task ended abnormally (panic or lost channel).
    #[error("pipeline runtime: {0}")]
    Runtime(String),
    /// The run was aborted by a second interrupt.
    #[error("aborted by signal")]
    Aborted,
}

impl Error {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
