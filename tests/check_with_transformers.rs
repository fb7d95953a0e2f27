//! `models/check_with_transformers.py` on the tiny_b fixture: transformers and capstream
//! give the same greedy token ids for every fixture image.

use std::process::Command;

use serde_json::Value;

use crate::util::{repo, BIN};

#[test]
fn check_script_passes_on_tiny_b() {
    let root = repo();
    let mut images: Vec<_> = std::fs::read_dir(root.join("tests/fixtures/blip/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    images.sort();
    assert!(images.len() >= 4);
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("models/check_with_transformers.py"))
        .arg("--model")
        .arg(root.join("tests/fixtures/blip/tiny_b"))
        .arg("--capstream")
        .arg(BIN)
        .args(["--max-new-tokens", "20"])
        .args(&images)
        .output()
        .expect(".venv/bin/python (created by .ci/setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["images"], images.len() as u64, "{v}");
    assert_eq!(v["equal"], v["images"], "{v}");
    assert_eq!(v["mismatches"], serde_json::json!([]), "{v}");
    assert_eq!(v["required_keys_missing"], serde_json::json!([]), "{v}");
}
