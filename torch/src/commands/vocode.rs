//! `capstream vocode`: log-mel `.npy` files → WAV, with a neural audio checkpoint's
//! vocoder or with Griffin-Lim. The log-mels must follow the checkpoint's definition
//! (`config.json` `mel`), e.g. `capstream features --sr 16000 --n-fft 1024 --hop 512
//! --n-mels 80 --db` for the default one.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::models::audio::NeuralAudio;
use crate::models::device::parse_device;
use capstream::dsp::mel_inverse::mel_db_to_audio;
use capstream::dsp::npy::decode_f32;
use capstream::dsp::wav::write_wav_pcm16;

use capstream_cli::vocode::{VocodeArgs, Vocoder};

pub fn run(args: VocodeArgs) -> Result<ExitCode> {
    capstream_cli::init_logging("warn");
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let model = NeuralAudio::from_dir(&args.model, parse_device(&args.device)?)?;
    let cfg = model.config().mel.clone();
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let (mut audio_seconds, mut busy) = (0.0, 0.0);
    for input in &args.inputs {
        let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let (mel, shape) =
            decode_f32(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
        let [bands, frames] = shape[..] else {
            bail!(
                "{}: shape {shape:?}, expected (n_mels, frames)",
                input.display()
            );
        };
        if bands != cfg.n_mels || frames < 2 {
            bail!(
                "{}: {bands} mel bands x {frames} frames; the model needs {} bands and 2+ frames",
                input.display(),
                cfg.n_mels
            );
        }
        let t = Instant::now();
        let wave = match args.vocoder {
            Vocoder::Neural => model.vocode(&mel, frames)?,
            Vocoder::GriffinLim => mel_db_to_audio(
                &mel,
                frames,
                &model.mel_params(),
                args.griffin_lim_iters,
                None,
            ),
        };
        busy += t.elapsed().as_secs_f64();
        audio_seconds += wave.len() as f64 / f64::from(cfg.sample_rate);
        let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
        let out = args.out_dir.join(format!("{stem}.wav"));
        std::fs::write(&out, write_wav_pcm16(&wave, cfg.sample_rate))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "clips": args.inputs.len(),
            "audio_seconds": audio_seconds,
            "vocode_seconds": busy,
            "real_time_factor": busy / audio_seconds,
        })
    );
    Ok(ExitCode::SUCCESS)
}
