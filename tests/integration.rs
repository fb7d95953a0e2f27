//! capstream's integration tests: one binary (ripgrep style), one module per area.
//!
//! - `audio_parity`: audio DSP against librosa.
//! - `audio_metrics`: MSE, MAE, SNR, SC, LSD, MCD against numpy/librosa.
//! - `util`: helpers to run the binary, write pipelines and read Parquet output.
//! - `definitions`: every file in `pipelines/` and `schemas/` against the code.
//! - `layout`: no module cycles; the lean binary links no libtorch.
//! - `preprocess_parity`: image preprocessing against transformers' processor.
//! - `odd_images`: EXIF/XMP orientation, transparency, BMP and TIFF variants against Pillow.
//! - `files_run`: a folder of good and bad images, one output row each.
//! - `backfill`: Parquet in, Parquet out, references passing through.
//! - `custom_stage`: a stage defined and registered only in the test, run by the engine.
//! - `crafted`: hostile Parquet input (ids, caps, a broken file), one row per record.
//! - `interrupt_resume`: SIGINT midway, then `--resume`: every id exactly once.
//! - `metrics`: `/metrics` scraped during a run shows counters moving.
//! - `metrics_parity`: embedded and NATS mode end with the same counters, error rows
//!   included (`--metrics-file`).
//! - `speech`: eSpeak NG spoken descriptions and the features command.
//! - `blip_parity`: BLIP against transformers on tiny random checkpoints.
//! - `caption_stage`: the caption stage in the default pipeline.
//! - `train_audio`: `capstream train audio`: loss, checkpoints, seeds, resume.
//! - `train_caption`: `capstream train caption`: loss, HF checkpoints, reload, resume.
//! - `tokenizer_build`: a vocabulary built from captions, read alike by transformers.
//! - `check_with_transformers`: the committed script that checks a checkpoint in transformers.
//! - `neural_audio_stage`: generated log-mel and vocoded audio in a pipeline.
//! - `report`: the HTML report, rendered by headless Chromium.
//! - `score`: the score command and stage, metrics.json.
//! - `meteor`: METEOR, Porter stems and WordNet lookups against NLTK 3.10.4.
//! - `caption_metrics`: BLEU, ROUGE-L, CIDEr-D and PTB tokens against pycocoevalcap/NLTK.
//! - `datasets`: `dataset synth` (true captions, determinism), `split`, `import-coco`.
//! - `eval`: `capstream eval`: one split through the pipeline, eval.json, the report.
//! - `nats_util`: a real nats-server on free loopback ports, capstream role processes.
//! - `nats_modes`: NATS mode writes embedded mode's rows; servers without JetStream.
//! - `nats_auth`: user/password over mutual TLS, token, nkey and .creds servers end to
//!   end; wrong credentials and certificates fail fast; secrets stay out of logs.
//! - `nats_faults`: a killed caption worker, a poison record, exhausted deliveries, a
//!   restarted sink.
//! - `nats_load`: 10,000 small records through a no-model pipeline, exactly once.
//! - `nats_cluster`: a 3-node cluster with R3 streams, one node stopped and restarted.
//! - `nats_prometheus`: Prometheus with the deploy config scrapes a worker.
//! - `default_model`: models/default names shapes and colours at its card rate.
//! - `serve`: `capstream serve`: every endpoint and error code, shared batches, 429,
//!   a slow client, SIGTERM draining, and the NATS micro service over TLS.

mod util;

mod audio_metrics;
mod audio_parity;
mod backfill;
mod blip_parity;
mod caption_metrics;
mod caption_stage;
mod check_with_transformers;
mod crafted;
mod custom_stage;
mod datasets;
mod default_model;
mod definitions;
mod eval;
mod files_run;
mod interrupt_resume;
mod layout;
mod meteor;
mod metrics;
mod metrics_parity;
mod nats_auth;
mod nats_cluster;
mod nats_faults;
mod nats_load;
mod nats_modes;
mod nats_prometheus;
mod nats_util;
mod neural_audio_stage;
mod odd_images;
mod preprocess_parity;
mod report;
mod score;
mod serve;
mod speech;
mod tokenizer_build;
mod train_audio;
mod train_caption;
