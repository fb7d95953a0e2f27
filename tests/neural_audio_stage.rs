//! The `neural_audio` stage: every captioned row gets the log-mel and waveform the
//! checkpoint computes from that row's image embedding; error rows keep null audio;
//! Griffin-Lim works as the untrained vocoder; a caption model of another width stops
//! the run with a clear message.

use std::collections::HashMap;

use arrow::array::{Array, BinaryArray, Float32Array, ListArray, RecordBatch, UInt32Array};

use capstream::dsp::wav::read_wav;
use capstream_torch::models::audio::NeuralAudio;

use crate::util::{pipeline, read_output, repo, run_pipeline, strings};

fn pipeline_text(caption_model: &str, vocoder: &str) -> String {
    let root = repo();
    format!(
        r#"
name = "neural"
[source]
type = "files"
[[stage]]
type = "decode_image"
[[stage]]
type = "caption"
model = "{root}/tests/fixtures/blip/{caption_model}"
device = "cpu"
[[stage]]
type = "neural_audio"
model = "{root}/tests/fixtures/neural_audio/model"
vocoder = "{vocoder}"
griffin_lim_iters = 8
device = "cpu"
[sink]
type = "parquet"
write_wav = true
columns = "all"
"#,
        root = root.display()
    )
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

fn floats(l: &ListArray, i: usize) -> Vec<f32> {
    l.value(i)
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// Runs the pipeline on the fixture images (4 good, 5 bad); returns rows by id with
/// (status, embedding, mel, wav bytes).
#[allow(clippy::type_complexity)]
fn run(
    vocoder: &str,
) -> (
    tempfile::TempDir,
    HashMap<String, (String, Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<u8>>)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &pipeline_text("tiny_b", vocoder));
    let out = dir.path().join("out");
    let res = run_pipeline(&p, &repo().join("tests/fixtures/images"), &out, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let mut rows = HashMap::new();
    for b in read_output(&out) {
        let ids = strings(&b, "id");
        let status = strings(&b, "status");
        let emb = col::<ListArray>(&b, "image_embedding");
        let mel = col::<ListArray>(&b, "neural_mel");
        let frames = col::<UInt32Array>(&b, "neural_mel_frames");
        let wav = col::<BinaryArray>(&b, "neural_wav");
        let rate = col::<UInt32Array>(&b, "neural_sample_rate");
        for i in 0..b.num_rows() {
            let ok = status[i].as_deref() == Some("ok");
            assert_eq!(mel.is_valid(i), ok);
            assert_eq!(wav.is_valid(i), ok);
            assert_eq!(frames.is_valid(i), ok);
            if ok {
                assert_eq!(frames.value(i), 64);
                assert_eq!(rate.value(i), 16000);
            }
            rows.insert(
                ids[i].clone().unwrap(),
                (
                    status[i].clone().unwrap(),
                    emb.is_valid(i).then(|| floats(emb, i)),
                    mel.is_valid(i).then(|| floats(mel, i)),
                    wav.is_valid(i).then(|| wav.value(i).to_vec()),
                ),
            );
        }
    }
    (dir, rows)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn every_row_gets_the_checkpoints_audio_for_its_embedding() {
    let (dir, rows) = run("neural");
    let n_images = std::fs::read_dir(repo().join("tests/fixtures/images"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.extension().and_then(|x| x.to_str()) != Some("py")
        })
        .count();
    assert_eq!(rows.len(), n_images, "one row per input");
    let ok: Vec<_> = rows.iter().filter(|(_, r)| r.0 == "ok").collect();
    assert!(ok.len() >= 2, "fixture has decodable images");
    let model = NeuralAudio::from_dir(
        &repo().join("tests/fixtures/neural_audio/model"),
        tch::Device::Cpu,
    )
    .unwrap();
    let mut mels = Vec::new();
    for (id, (_, emb, mel, wav)) in &ok {
        let emb = emb.as_ref().unwrap();
        let want = model.synthesize(&[emb]).unwrap().remove(0);
        // The stage runs rows in micro-batches; libtorch may pick other kernels for
        // another batch size, so equal up to float rounding, not bit for bit.
        let mel_diff = max_diff(mel.as_ref().unwrap(), &want.mel_db);
        assert!(mel_diff < 1e-3, "{id}: log-mel off by {mel_diff} dB");
        let bytes = wav.as_ref().unwrap();
        let audio = read_wav(bytes, 10.0).unwrap();
        assert_eq!(audio.sample_rate, 16000);
        let got = audio.mono();
        assert_eq!(got.len(), 63 * 512);
        let worst = max_diff(&got, &want.waveform);
        assert!(
            worst <= 1.0 / 32767.0 + 1e-5,
            "{id}: PCM16 of the waveform off by {worst}"
        );
        let file = dir.path().join(format!("out/wav/{id}.neural.wav"));
        assert_eq!(&std::fs::read(&file).unwrap(), bytes, "{}", file.display());
        mels.push(mel.clone().unwrap());
    }
    mels.dedup();
    assert_eq!(mels.len(), ok.len(), "different images, different log-mels");
}

#[test]
fn griffin_lim_vocodes_the_same_log_mel() {
    let (_d1, neural) = run("neural");
    let (_d2, gl) = run("griffin_lim");
    let mut compared = 0;
    for (id, (status, _, mel, wav)) in &gl {
        let other = &neural[id];
        assert_eq!(status, &other.0);
        if status == "ok" {
            assert_eq!(mel, &other.2, "{id}: same generator output");
            let a = read_wav(wav.as_ref().unwrap(), 10.0).unwrap().mono();
            assert_eq!(a.len(), 63 * 512);
            assert_ne!(
                wav, &other.3,
                "{id}: Griffin-Lim audio equals the neural vocoder's"
            );
            compared += 1;
        }
    }
    assert!(compared >= 2);
}

#[test]
fn an_embedding_of_another_width_stops_the_run_naming_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    // tiny_a's vision width is 32; the audio fixture was trained on tiny_b's 48.
    let p = pipeline(dir.path(), &pipeline_text("tiny_a", "neural"));
    let res = run_pipeline(
        &p,
        &repo().join("tests/fixtures/images"),
        &dir.path().join("out"),
        &[],
    );
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("neural_audio") && err.contains("32") && err.contains("48"),
        "{err}"
    );
}
