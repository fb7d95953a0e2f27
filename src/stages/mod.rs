//! Stages, one folder each, and the one list that registers the built-in ones.
//!
//! Adding a stage means: a folder here whose config implements [`StageSpec`], one line
//! in [`builtin`], its schema under `schemas/` and an example in `pipelines/`. The
//! runtime, transport and CLI never change: they see only [`StageConfig`]. A stage kept
//! outside this crate registers itself with [`register`] instead.
//!
//! A model stage (`caption`, `neural_audio`) is split at the libtorch boundary: its
//! folder here holds what every process of a pipeline must agree on (settings, schemas,
//! what it asks of the stage before it), and its running half lives in the model-side
//! crate, `capstream-torch`, which provides the builder ([`provide_model_stage`]). So a
//! decode worker or a sink of a caption pipeline plans it without linking libtorch.

mod audio_limits;
pub mod caption;
mod contract;
pub mod decode_image;
pub mod features;
pub mod neural_audio;
mod registry;
pub mod score;
pub mod speak;

use std::path::PathBuf;
use std::sync::LazyLock;

pub use contract::{BuildContext, Stage};
pub use registry::{
    model_stage, provide_model_stage, register, registered, Hints, ModelBuilder, Registration,
    StageConfig, StageSpec,
};

use crate::error::{Error, Result};

/// The stages every capstream knows, in the order `capstream validate` lists them.
pub(crate) fn builtin() -> &'static [Registration] {
    static BUILTIN: LazyLock<Vec<Registration>> = LazyLock::new(|| {
        vec![
            Registration::of::<decode_image::DecodeImageConfig>(decode_image::NAME),
            Registration::of::<caption::CaptionConfig>(caption::NAME),
            Registration::of::<features::FeaturesConfig>(features::NAME),
            Registration::of::<speak::SpeakConfig>(speak::NAME),
            Registration::of::<neural_audio::NeuralAudioConfig>(neural_audio::NAME),
            Registration::of::<score::ScoreConfig>(score::NAME),
        ]
    });
    &BUILTIN
}

/// A model folder: the command line's, else the pipeline file's (relative to the file).
fn model_folder(
    overridden: Option<&PathBuf>,
    configured: Option<&PathBuf>,
    cx: &BuildContext,
    missing: &str,
) -> Result<PathBuf> {
    match (overridden, configured) {
        (Some(m), _) => Ok(m.clone()),
        (None, Some(m)) if m.is_absolute() => Ok(m.clone()),
        (None, Some(m)) => Ok(cx.base_dir.join(m)),
        (None, None) => Err(Error::Config(missing.into())),
    }
}

/// A device as a pipeline file or flag names it, before anyone asks libtorch which
/// devices exist (the model side does, when it builds the stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// CUDA 0 when libtorch sees a GPU, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceName {
    /// Parses `auto`, `cpu`, `cuda` or `cuda:N`: the one grammar of every `device`
    /// key and `--device` flag.
    pub fn parse(s: &str) -> Result<DeviceName> {
        match s {
            "auto" => Ok(DeviceName::Auto),
            "cpu" => Ok(DeviceName::Cpu),
            "cuda" => Ok(DeviceName::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceName::Cuda(n)),
                _ => Err(Error::Config(format!(
                    "device {other:?}: expected auto, cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

fn check_device(s: &str) -> Result<()> {
    DeviceName::parse(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::DeviceName;

    #[test]
    fn device_names_parse_to_one_grammar() {
        assert_eq!(DeviceName::parse("auto").unwrap(), DeviceName::Auto);
        assert_eq!(DeviceName::parse("cpu").unwrap(), DeviceName::Cpu);
        assert_eq!(DeviceName::parse("cuda").unwrap(), DeviceName::Cuda(0));
        assert_eq!(DeviceName::parse("cuda:3").unwrap(), DeviceName::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", ""] {
            let e = DeviceName::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected auto, cpu, cuda or cuda:N"),
                "{bad}: {e}"
            );
        }
    }
}
