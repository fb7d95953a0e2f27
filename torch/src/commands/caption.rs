//! `capstream caption`: caption image files directly, outside a pipeline.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use crate::models::blip::{Captioner, EarlyStopping, GenerationConfig};
use crate::models::device::{parse_device, parse_dtype};
use capstream::imaging::{prepare, BicubicResizer, Limits};
use capstream::stages::caption::{model_max_new_tokens, DEFAULT_MAX_NEW_TOKENS};

use capstream_cli::caption::CaptionArgs;

pub fn run(args: CaptionArgs) -> Result<ExitCode> {
    capstream_cli::init_logging("warn");
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = parse_device(&args.device)?;
    let kind = parse_dtype(&args.dtype, device)?;
    let captioner = Captioner::from_dir(&args.model, device, kind)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let gen = GenerationConfig {
        max_new_tokens: match args.max_new_tokens {
            Some(n) => n,
            None => model_max_new_tokens(&args.model)?.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
        },
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
