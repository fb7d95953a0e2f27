//! The running halves of the model stages. Their contracts (settings, schemas, hints)
//! are in `capstream::stages`, which every process reads; these build and run them, and
//! [`provide`] hands their builders to the registry.

pub mod caption;
pub mod neural_audio;

use std::any::Any;

use capstream::error::{Error, Result};
use capstream::stages::caption::CaptionConfig;
use capstream::stages::neural_audio::NeuralAudioConfig;
use capstream::stages::provide_model_stage;
use capstream::stages::{BuildContext, Stage};

/// Provides the builders of `caption` and `neural_audio` to the stage registry.
pub fn provide() {
    provide_model_stage(capstream::stages::caption::NAME, build_caption);
    provide_model_stage(capstream::stages::neural_audio::NAME, build_neural_audio);
}

fn settings<'a, C: 'static>(spec: &'a dyn Any, stage: &str) -> Result<&'a C> {
    spec.downcast_ref::<C>().ok_or_else(|| Error::Stage {
        stage: stage.to_string(),
        message: "the registry handed over settings of another stage".into(),
    })
}

fn build_caption(spec: &dyn Any, cx: &BuildContext) -> Result<Box<dyn Stage>> {
    let cfg: &CaptionConfig = settings(spec, capstream::stages::caption::NAME)?;
    Ok(Box::new(caption::Caption::new(cfg, cfg.folder(cx)?)?))
}

fn build_neural_audio(spec: &dyn Any, cx: &BuildContext) -> Result<Box<dyn Stage>> {
    let cfg: &NeuralAudioConfig = settings(spec, capstream::stages::neural_audio::NAME)?;
    Ok(Box::new(neural_audio::NeuralAudioStage::new(
        cfg,
        &cfg.folder(cx)?,
    )?))
}
