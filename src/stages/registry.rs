//! The stage registry: how a `[[stage]]` table becomes a [`StageConfig`].
//!
//! A stage kind is registered once, by name, with the type its table parses into. The
//! keys every stage has (`workers`, `batch`, `chain`) are read here, so a stage's own
//! config holds only its own settings. The runtime, transport and CLI only ever see a
//! [`StageConfig`]: they never name a stage, so a new stage changes none of them.
//!
//! This module must not know any particular stage: the built-in ones are listed by
//! [`super::builtin`], and anyone else calls [`register`].

use std::any::Any;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits::BatchConfig;
use crate::stages::{BuildContext, Stage};

/// What one stage tells the stage before it, read before anything is built (so that
/// the upstream can prepare its output to fit, e.g. images at the model's size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// Side of the square image this stage takes, in pixels.
    pub image_size: Option<u32>,
}

/// A stage's own settings: what a registered stage kind parses its table into.
///
/// Implementors are plain serde structs (`deny_unknown_fields`), one per stage folder.
pub trait StageSpec: std::fmt::Debug + Send + Sync + Any {
    /// Checks settings without building anything.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// The columns this stage needs from its upstream.
    fn input_schema(&self) -> SchemaRef;

    /// The schema this stage emits, given a compatible input.
    fn output_schema(&self, input: &SchemaRef) -> SchemaRef;

    /// What this stage asks of the stage before it. Runs in every process that plans
    /// the pipeline, so it may read files (a model's config) but must not load models.
    fn upstream_hints(&self, _cx: &BuildContext) -> Result<Hints> {
        Ok(Hints::default())
    }

    /// The model folder this stage loads, if any: part of the stage's identity on
    /// NATS, so that output of a changed model is never taken for the old one's.
    fn model_dir(&self, _cx: &BuildContext) -> Option<Result<PathBuf>> {
        None
    }

    /// Whether the stage runs a model, so that only a process with the model side
    /// (libtorch) can build it; [`build`](StageSpec::build) then hands over to the
    /// builder the model side provided ([`model_stage`]).
    fn runs_model(&self) -> bool {
        false
    }

    /// Builds the running stage. Called on the thread that will run it.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>>;
}

/// Builds a model stage from its settings (a `StageSpec` the builder downcasts).
pub type ModelBuilder = fn(&dyn Any, &BuildContext) -> Result<Box<dyn Stage>>;

/// Builders of model stages, provided by the model side at start-up.
static MODEL_BUILDERS: RwLock<Vec<(&'static str, ModelBuilder)>> = RwLock::new(Vec::new());

/// Provides the builder of model stage `name`: the model side (the crate that links
/// libtorch) calls this once per model stage before any pipeline is built.
pub fn provide_model_stage(name: &'static str, build: ModelBuilder) {
    let mut builders = MODEL_BUILDERS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    builders.retain(|(n, _)| *n != name);
    builders.push((name, build));
}

fn model_builder(name: &str) -> Option<ModelBuilder> {
    MODEL_BUILDERS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// Builds model stage `name` with the builder the model side provided, or says that
/// this process has none.
pub fn model_stage(
    name: &'static str,
    spec: &dyn Any,
    cx: &BuildContext,
) -> Result<Box<dyn Stage>> {
    match model_builder(name) {
        Some(build) => build(spec, cx),
        None => Err(Error::NoModelSide {
            stage: name.to_string(),
        }),
    }
}

/// A stage kind: its `type` name and how to read its table.
#[derive(Clone, Copy)]
pub struct Registration {
    name: &'static str,
    parse: fn(toml::Value) -> std::result::Result<Arc<dyn StageSpec>, String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .finish()
    }
}

impl Registration {
    /// The kind `name`, whose table (less the shared keys) deserializes into `C`.
    pub fn of<C: StageSpec + DeserializeOwned>(name: &'static str) -> Registration {
        Registration {
            name,
            parse: |v| {
                C::deserialize(v)
                    .map(|c| Arc::new(c) as Arc<dyn StageSpec>)
                    .map_err(|e| e.to_string().trim_end().to_string())
            },
        }
    }

    /// The `type` name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Kinds registered at run time, after the built-in ones.
static REGISTERED: RwLock<Vec<Registration>> = RwLock::new(Vec::new());

/// Registers a stage kind, so that pipeline files may name it as a `type`. Call it
/// before any pipeline is parsed. A name already taken is refused.
pub fn register(kind: Registration) -> Result<()> {
    if lookup(kind.name).is_some() {
        return Err(Error::Config(format!(
            "stage type {:?} is registered twice",
            kind.name
        )));
    }
    REGISTERED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(kind);
    Ok(())
}

/// Every known stage type, built-in first.
pub fn registered() -> Vec<&'static str> {
    let mut names: Vec<_> = super::builtin().iter().map(|r| r.name).collect();
    names.extend(
        REGISTERED
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|r| r.name),
    );
    names
}

fn lookup(name: &str) -> Option<Registration> {
    super::builtin()
        .iter()
        .copied()
        .find(|r| r.name == name)
        .or_else(|| {
            REGISTERED
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .copied()
                .find(|r| r.name == name)
        })
}

/// A `[[stage]]` table: the keys every stage shares, and the stage's own settings.
#[derive(Debug, Clone)]
pub struct StageConfig {
    name: &'static str,
    /// Worker threads for this stage, each holding its own built stage.
    pub workers: usize,
    /// Micro-batching that overrides the pipeline's `[batch]`, if set.
    pub batch: Option<BatchConfig>,
    /// Distributed mode: run inside the previous stage's worker, on the same stage
    /// thread, instead of as a pool of its own; the edge between the two carries
    /// nothing over NATS. Embedded mode ignores it (its stages are in one process).
    pub chain: bool,
    spec: Arc<dyn StageSpec>,
}

/// The keys of every `[[stage]]` table, read before the stage's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "one")]
    workers: usize,
    #[serde(default)]
    batch: Option<BatchConfig>,
    #[serde(default)]
    chain: bool,
}

fn one() -> usize {
    1
}

const SHARED_KEYS: [&str; 4] = ["type", "workers", "batch", "chain"];

impl StageConfig {
    /// Reads one `[[stage]]` table.
    pub fn from_table(mut table: toml::Table) -> std::result::Result<StageConfig, String> {
        let mut shared = toml::Table::new();
        for k in SHARED_KEYS {
            if let Some(v) = table.remove(k) {
                shared.insert(k.to_string(), v);
            }
        }
        let shared = Shared::deserialize(toml::Value::Table(shared))
            .map_err(|e| format!("[[stage]]: {}", e.to_string().trim_end()))?;
        let kind = lookup(&shared.kind).ok_or_else(|| {
            format!(
                "[[stage]]: unknown type {:?}; known types: {}",
                shared.kind,
                registered().join(", ")
            )
        })?;
        let spec = (kind.parse)(toml::Value::Table(table))
            .map_err(|e| format!("[[stage]] type = {:?}: {e}", kind.name))?;
        Ok(StageConfig {
            name: kind.name,
            workers: shared.workers,
            batch: shared.batch,
            chain: shared.chain,
            spec,
        })
    }

    /// The stage's stable name: config `type`, metric label and log field.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Worker threads for this stage (each holds its own built stage).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether the stage runs inside the previous stage's worker (distributed mode).
    pub fn chained(&self) -> bool {
        self.chain
    }

    /// Micro-batching that overrides the pipeline's, if set.
    pub fn batch(&self) -> Option<BatchConfig> {
        self.batch
    }

    /// The stage's own settings, if they are a `C`.
    pub fn spec<C: StageSpec>(&self) -> Option<&C> {
        (self.spec.as_ref() as &dyn Any).downcast_ref::<C>()
    }

    /// Checks settings without building anything.
    pub fn validate(&self) -> Result<()> {
        self.spec.validate()
    }

    /// The columns this stage needs from its upstream.
    pub fn input_schema(&self) -> SchemaRef {
        self.spec.input_schema()
    }

    /// The schema this stage emits, given a compatible input.
    pub fn output_schema(&self, input: &SchemaRef) -> SchemaRef {
        self.spec.output_schema(input)
    }

    /// What this stage asks of the stage before it.
    pub fn upstream_hints(&self, cx: &BuildContext) -> Result<Hints> {
        self.spec.upstream_hints(cx)
    }

    /// The model folder the stage loads, if any.
    pub fn model_dir(&self, cx: &BuildContext) -> Option<Result<PathBuf>> {
        self.spec.model_dir(cx)
    }

    /// Whether building this stage needs a model side this process lacks.
    pub fn needs_model_side(&self) -> bool {
        self.spec.runs_model() && model_builder(self.name).is_none()
    }

    /// Builds the running stage. Called on the thread that will run it.
    pub fn build(&self, cx: &BuildContext) -> Result<Box<dyn Stage>> {
        self.spec.build(cx)
    }
}

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        StageConfig::from_table(table).map_err(serde::de::Error::custom)
    }
}
