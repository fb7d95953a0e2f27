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
mod runtime;
mod shutdown;
mod stage;

pub use runtime::{Progress, RunSummary};
pub use shutdown::Shutdown;
pub use stage::Stage;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::schema::{check_compatible, Edge};
use crate::sinks::{FolderLock, Sink};
use crate::sources::{Source, SourceInput};

/// What a stage's `build` may use: everything outside the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The pipeline file's folder, for relative paths in it.
    pub base_dir: PathBuf,
    /// A model folder given on the command line, overriding the pipeline file's.
    pub model_override: Option<PathBuf>,
    /// An audio model folder given on the command line (`--audio-model`).
    pub audio_model_override: Option<PathBuf>,
    /// The caption model's input side, read from its `config.json` before any stage
    /// is built, so that `decode_image` prepares images at the size the model needs.
    pub model_image_size: Option<u32>,
}

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

    /// The schema of the rows that reach the sink.
    pub fn output_schema(&self) -> SchemaRef {
        self.schemas.last().expect("starts non-empty").clone()
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
        let mut cx = BuildContext {
            base_dir: self
                .config
                .path
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            model_override: self.model_override.clone(),
            audio_model_override: self.audio_model_override.clone(),
            model_image_size: None,
        };
        if let Some(dir) = self.config.stages.iter().find_map(|s| s.model_dir(&cx)) {
            let cfg = crate::models::blip::Config::from_file(&dir?.join("config.json"))?;
            cx.model_image_size = Some(cfg.vision_config.image_size as u32);
        }
        Ok(Pipeline {
            plan: self,
            source,
            sink,
            cx,
        })
    }
}

/// A pipeline with its source and sink open.
pub struct Pipeline {
    plan: Plan,
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
    cx: BuildContext,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.plan.config.name)
            .finish()
    }
}
