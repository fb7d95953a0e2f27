//! The runtime: builds a pipeline from its config and runs it.
//!
//! This module owns channels, micro-batching, threads, shutdown and the standard
//! metrics. Stages, sources and sinks only transform, read or write; none of them knows
//! how it is connected. The flow, embedded mode:
//!
//! ```text
//! source thread ─▶ [batcher task ─▶ N stage threads] ─▶ … ─▶ sink thread
//!            bounded tokio channels between every hop (back-pressure)
//! ```
//!
//! Each stage has one async batcher task that gathers rows into micro-batches (by rows,
//! bytes and a maximum delay) and one or more dedicated threads that own a built stage
//! (a model's tensors are not `Sync`, so a model lives on one thread).

mod batcher;
mod chain;
mod runtime;
mod shutdown;
mod source;

pub use chain::{chain_label, StageChain};
pub use runtime::{Progress, RunSummary};
pub use shutdown::Shutdown;
pub(crate) use source::CountedSource;
// The stage contract lives with the stages; the runtime only drives it.
pub use crate::stages::{BuildContext, Stage};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::schema::{check_compatible, Edge};
use crate::sinks::{FolderLock, Sink};
use crate::sources::{Source, SourceInput};
use crate::stages::Hints;

/// A checked plan: the config with the schema of every edge computed.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline file.
    pub config: PipelineConfig,
    /// `schemas[0]` is the source's output, `schemas[i + 1]` stage `i`'s output.
    pub schemas: Vec<SchemaRef>,
    /// A model folder that overrides the pipeline file's (`--model`).
    pub model_override: Option<PathBuf>,
    /// An audio model folder that overrides the pipeline file's (`--audio-model`).
    pub audio_model_override: Option<PathBuf>,
}

impl Plan {
    /// Computes every edge schema, failing at the first stage whose input does not match
    /// its upstream's output (naming both).
    pub fn new(config: PipelineConfig) -> Result<Plan> {
        let mut schemas = vec![Edge::Source.schema()];
        let mut upstream = "source".to_string();
        for stage in &config.stages {
            let input = schemas.last().expect("starts non-empty").clone();
            if let Err(detail) = check_compatible(&stage.input_schema(), &input) {
                return Err(Error::SchemaMismatch {
                    upstream,
                    downstream: stage.name().to_string(),
                    detail,
                });
            }
            schemas.push(stage.output_schema(&input));
            upstream = stage.name().to_string();
        }
        config
            .sink
            .schema(schemas.last().expect("starts non-empty"))?;
        Ok(Plan {
            config,
            schemas,
            model_override: None,
            audio_model_override: None,
        })
    }

    /// What stage `stage`'s `build` gets: the pipeline file's folder, the command
    /// line's model folders and what the stage after it asks for. Embedded threads and
    /// NATS workers build from the same context.
    pub fn context(&self, stage: usize) -> Result<BuildContext> {
        let mut cx = BuildContext {
            base_dir: self
                .config
                .path
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            model_override: self.model_override.clone(),
            audio_model_override: self.audio_model_override.clone(),
            downstream: Hints::default(),
        };
        if let Some(next) = self.config.stages.get(stage + 1) {
            cx.downstream = next.upstream_hints(&cx)?;
        }
        Ok(cx)
    }

    /// The schema of the rows that reach the sink.
    pub fn output_schema(&self) -> SchemaRef {
        self.schemas.last().expect("starts non-empty").clone()
    }

    /// A pipeline over a source and sink opened by the caller: `capstream serve`'s
    /// request source and response sink, which a request feeds and answers rather than
    /// a path and a folder.
    pub fn open_with(self, source: Box<dyn Source>, sink: Box<dyn Sink>) -> Result<Pipeline> {
        let contexts = (0..self.config.stages.len())
            .map(|i| self.context(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline {
            plan: self,
            source,
            sink,
            contexts,
        })
    }

    /// Opens the source and sink and returns a pipeline ready to run.
    pub fn open(
        self,
        input: SourceInput,
        output: FolderLock,
        skip: Arc<HashSet<String>>,
    ) -> Result<Pipeline> {
        let source = self.config.source.build(&input, skip)?;
        let sink = self
            .config
            .sink
            .build(output, &self.output_schema(), &self.config.name)?;
        self.open_with(source, sink)
    }
}

/// A pipeline with its source and sink open.
pub struct Pipeline {
    plan: Plan,
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
    /// Stage `i`'s build context.
    contexts: Vec<BuildContext>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.plan.config.name)
            .finish()
    }
}
