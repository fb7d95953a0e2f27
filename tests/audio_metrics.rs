//! Audio metrics against numpy/scipy/librosa computations of the same pinned
//! definitions (`tests/fixtures/audio_metrics/make_goldens.py`), in the library and
//! through `capstream audio-metrics`.

use capstream::dsp::wav::read_wav;
use capstream::metrics::audio::{score_audio, AudioMetricParams};

use crate::util::{capstream, repo};

fn goldens() -> Vec<serde_json::Value> {
    let dir = repo().join("tests/fixtures/audio_metrics");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    v["pairs"].as_array().unwrap().clone()
}

fn wav(name: &str) -> Vec<f32> {
    let p = repo().join("tests/fixtures/audio_metrics").join(name);
    read_wav(&std::fs::read(p).unwrap(), 10.0).unwrap().mono()
}

fn close(got: f64, want: &serde_json::Value, rel: f64, what: &str) {
    match want.as_f64() {
        None => assert!(got.is_nan(), "{what}: {got}, expected undefined"),
        Some(w) => assert!(
            (got - w).abs() <= rel * w.abs().max(1e-12) + 1e-12,
            "{what}: {got} vs {w}"
        ),
    }
}

#[test]
fn library_matches_numpy_and_librosa() {
    for g in goldens() {
        let name = g["name"].as_str().unwrap();
        let (x, y) = (
            wav(g["ref"].as_str().unwrap()),
            wav(g["est"].as_str().unwrap()),
        );
        let s = score_audio(&x, &y, 16000, &AudioMetricParams::default());
        assert_eq!(
            s.compared_samples as u64,
            g["compared_samples"].as_u64().unwrap()
        );
        close(s.mse, &g["mse"], 1e-9, &format!("{name} mse"));
        close(s.mae, &g["mae"], 1e-9, &format!("{name} mae"));
        close(s.snr_db, &g["snr_db"], 1e-9, &format!("{name} snr"));
        close(
            s.spectral_convergence,
            &g["spectral_convergence"],
            1e-6,
            &format!("{name} sc"),
        );
        close(s.lsd_db, &g["lsd_db"], 1e-6, &format!("{name} lsd"));
        close(s.mcd, &g["mcd"], 1e-5, &format!("{name} mcd"));
    }
}

#[test]
fn cli_reports_the_same_numbers_and_the_lengths() {
    let g = &goldens()[2]; // the shorter estimate
    let dir = repo().join("tests/fixtures/audio_metrics");
    let out = capstream(&[
        "audio-metrics",
        dir.join("ref_2.wav").to_str().unwrap(),
        dir.join("est_2.wav").to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "mse",
        "mae",
        "snr_db",
        "spectral_convergence",
        "lsd_db",
        "mcd",
    ] {
        close(v[k].as_f64().unwrap(), &g[k], 1e-5, k);
    }
    assert_eq!(v["reference_samples"], 8000);
    assert_eq!(v["estimate_samples"], 7000);
    assert_eq!(v["compared_samples"], 7000);
    assert_eq!(v["estimate_resampled"], false);
}
