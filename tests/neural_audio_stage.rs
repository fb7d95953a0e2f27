//! The `neural_audio` stage: every captioned row gets the log-mel and waveform the
//! checkpoint computes from that row's caption and image embedding; error rows keep
//! null audio;
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

/// One output row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    status: String,
    caption: Option<String>,
    emb: Option<Vec<f32>>,
    mel: Option<Vec<f32>>,
    frames: Option<u32>,
    wav: Option<Vec<u8>>,
}

/// Runs the pipeline on the fixture images (4 good, 5 bad); returns rows by id.
fn run(vocoder: &str) -> (tempfile::TempDir, HashMap<String, Row>) {
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
        let captions = strings(&b, "caption");
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
                // The generator chooses the length: at least 2 frames, at most the
                // config's max_frames, and the log-mel holds 80 bands of them.
                let f = frames.value(i);
                assert!((2..=320).contains(&f), "{f} frames");
                assert_eq!(floats(mel, i).len(), 80 * f as usize);
                assert_eq!(rate.value(i), 16000);
            }
            rows.insert(
                ids[i].clone().unwrap(),
                Row {
                    status: status[i].clone().unwrap(),
                    caption: captions[i].clone(),
                    emb: emb.is_valid(i).then(|| floats(emb, i)),
                    mel: mel.is_valid(i).then(|| floats(mel, i)),
                    frames: frames.is_valid(i).then(|| frames.value(i)),
                    wav: wav.is_valid(i).then(|| wav.value(i).to_vec()),
                },
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
    let ok: Vec<_> = rows.iter().filter(|(_, r)| r.status == "ok").collect();
    assert!(ok.len() >= 2, "fixture has decodable images");
    let model = NeuralAudio::from_dir(
        &repo().join("tests/fixtures/neural_audio/model"),
        tch::Device::Cpu,
    )
    .unwrap();
    let mut mels = Vec::new();
    for (id, row) in &ok {
        let emb = row.emb.as_ref().unwrap();
        let caption = row.caption.as_deref().unwrap();
        let want = model.synthesize(&[(emb, caption)]).unwrap().remove(0);
        assert_eq!(row.frames, Some(want.frames as u32), "{id}");
        // The stage runs rows in micro-batches; libtorch may pick other kernels for
        // another batch size, so equal up to float rounding, not bit for bit.
        let mel_diff = max_diff(row.mel.as_ref().unwrap(), &want.mel_db);
        assert!(mel_diff < 1e-3, "{id}: log-mel off by {mel_diff} dB");
        let bytes = row.wav.as_ref().unwrap();
        let audio = read_wav(bytes, 20.0).unwrap();
        assert_eq!(audio.sample_rate, 16000);
        let got = audio.mono();
        assert_eq!(got.len(), (want.frames - 1) * 512);
        let worst = max_diff(&got, &want.waveform);
        assert!(
            worst <= 1.0 / 32767.0 + 1e-5,
            "{id}: PCM16 of the waveform off by {worst}"
        );
        let file = dir.path().join(format!("out/wav/{id}.neural.wav"));
        assert_eq!(&std::fs::read(&file).unwrap(), bytes, "{}", file.display());
        mels.push(row.mel.clone().unwrap());
    }
    mels.sort_by(|a, b| a.partial_cmp(b).unwrap());
    mels.dedup();
    assert_eq!(mels.len(), ok.len(), "different rows, different log-mels");
}

#[test]
fn griffin_lim_vocodes_the_same_log_mel() {
    let (_d1, neural) = run("neural");
    let (_d2, gl) = run("griffin_lim");
    let mut compared = 0;
    for (id, row) in &gl {
        let other = &neural[id];
        assert_eq!(row.status, other.status);
        if row.status == "ok" {
            assert_eq!(row.mel, other.mel, "{id}: same generator output");
            let a = read_wav(row.wav.as_ref().unwrap(), 20.0).unwrap().mono();
            assert_eq!(a.len(), (row.frames.unwrap() as usize - 1) * 512);
            assert_ne!(
                row.wav, other.wav,
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
