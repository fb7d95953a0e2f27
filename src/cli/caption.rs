//! `capstream caption`: caption image files directly, outside a pipeline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use capstream::imaging::{prepare, BicubicResizer, Limits};
use capstream::models::blip::{Captioner, EarlyStopping, GenerationConfig};
use capstream::models::device::{parse_device, parse_dtype};

#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// A Hugging Face BLIP captioning checkpoint folder (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Conditional captioning prompt, e.g. "a picture of".
    #[arg(long, default_value = "")]
    prompt: String,
    /// Drop the prompt from the caption text, as original BLIP does.
    #[arg(long)]
    strip_prompt: bool,
    /// Beam search with N beams (1 = greedy).
    #[arg(long, default_value_t = 1)]
    beams: usize,
    /// Beam scores are divided by length ** length_penalty.
    #[arg(long, default_value_t = 1.0)]
    length_penalty: f64,
    /// Beam search: stop as soon as N hypotheses are finished.
    #[arg(long)]
    early_stopping: bool,
    /// Captions returned per image.
    #[arg(long, default_value_t = 1)]
    num_return_sequences: usize,
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Sample instead of greedy or beam search.
    #[arg(long)]
    sample: bool,
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram_size: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// f32, bf16 (CPU or CUDA), or f16 (CUDA).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// One JSON object per image per line.
    #[arg(long)]
    json: bool,
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(args: CaptionArgs) -> Result<ExitCode> {
    super::init_logging("warn");
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = parse_device(&args.device)?;
    let kind = parse_dtype(&args.dtype, device)?;
    let captioner = Captioner::from_dir(&args.model, device, kind)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let gen = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.min_new_tokens,
        num_beams: args.beams,
        length_penalty: args.length_penalty,
        early_stopping: if args.early_stopping {
            EarlyStopping::True
        } else {
            EarlyStopping::False
        },
        do_sample: args.sample,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        no_repeat_ngram_size: args.no_repeat_ngram_size,
        num_return_sequences: args.num_return_sequences,
        seed: args.seed,
    };
    gen.validate()?;
    let size = captioner.image_size();
    let mut resizer = BicubicResizer::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failures = 0;
    for chunk in args.images.chunks(args.batch_size.max(1)) {
        // Lines come out in input order: failures in place, not first.
        let prepared: Vec<std::result::Result<Vec<u8>, String>> = chunk
            .iter()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        prepare(&b, &Limits::default(), size, size, &mut resizer)
                            .map(|p| p.rgb)
                            .map_err(|e| e.to_string())
                    })
            })
            .collect();
        let images: Vec<&[u8]> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(Vec::as_slice)
            .collect();
        let mut results = if images.is_empty() {
            Vec::new()
        } else {
            let pixels = captioner.pixels(&images)?;
            let prompts = vec![args.prompt.as_str(); images.len()];
            captioner.caption(&pixels, &prompts, &gen, args.strip_prompt)?
        }
        .into_iter();
        for (path, p) in chunk.iter().zip(&prepared) {
            let r = match p {
                Err(e) => {
                    failures += 1;
                    if args.json {
                        writeln!(out, "{}", json!({"image": path, "error": e}))?;
                    } else {
                        eprintln!("{}: {e}", path.display());
                    }
                    continue;
                }
                Ok(_) => results.next().expect("one result per prepared image"),
            };
            let best = &r.captions[0];
            if args.json {
                let mut obj =
                    json!({"image": path, "caption": best.text, "token_ids": best.token_ids});
                if r.captions.len() > 1 {
                    obj["alternatives"] = r
                        .captions
                        .iter()
                        .skip(1)
                        .map(|c| json!({"caption": c.text, "token_ids": c.token_ids}))
                        .collect();
                }
                writeln!(out, "{obj}")?;
            } else {
                writeln!(out, "{}\t{}", path.display(), best.text)?;
            }
        }
    }
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
