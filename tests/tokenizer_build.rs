//! `train::tokenizer::build_caption_tokenizer` against transformers 5.24: the folder it
//! writes loads with `AutoTokenizer` / `BertTokenizerFast`, which give the same ids,
//! bos id and decoded text as capstream's own tokenizer.

use std::process::Command;

use capstream_torch::models::blip::BlipTokenizer;
use capstream_torch::train::tokenizer::build_caption_tokenizer;
use serde_json::Value;

use crate::util::repo;

const CAPTIONS: &[&str] = &[
    "A red circle on a blue background.",
    "a red circle and a yellow square",
    "Two green triangles, above a red dot!",
    "a small red dot next to a green triangle",
    "the yellow square is next to the red circle",
    "a blue square",
];

/// Unseen words (`zebra`, `café`), punctuation, capitals, and a word under min_count.
const SENTENCES: &[&str] = &[
    "A red circle on a blue background.",
    "Two green triangles, above a red dot!",
    "a zebra next to the yellow square",
    "the circle's colour: RED (mostly)... right?",
    "Un café naïve & 42 dots",
];

const PY: &str = r#"
import json, sys
from transformers import AutoTokenizer, BertTokenizerFast
d, sentences = sys.argv[1], json.loads(sys.argv[2])
out = {}
for name, tok in [("auto", AutoTokenizer.from_pretrained(d)), ("bert", BertTokenizerFast.from_pretrained(d))]:
    rows = []
    for s in sentences:
        ids = tok(s).input_ids
        rows.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
    out[name] = {"class": type(tok).__name__, "bos": tok.bos_token_id, "pad": tok.pad_token_id,
                 "sep": tok.sep_token_id, "len": len(tok), "rows": rows}
print(json.dumps(out))
"#;

#[test]
fn transformers_reads_the_built_tokenizer_as_capstream_does() {
    let dir = tempfile::tempdir().unwrap();
    let info = build_caption_tokenizer(CAPTIONS.iter().copied(), 2, dir.path()).unwrap();
    let ours = BlipTokenizer::from_dir(dir.path()).unwrap();

    let python = repo().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg("-c")
        .arg(PY)
        .arg(dir.path())
        .arg(serde_json::to_string(SENTENCES).unwrap())
        .output()
        .expect(".venv/bin/python (created by .ci/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["auto", "bert"] {
        let t = &v[name];
        assert_eq!(t["bos"], info.bos_token_id, "{name}: {t}");
        assert_eq!(t["pad"], info.pad_token_id, "{name}");
        assert_eq!(t["sep"], info.sep_token_id, "{name}");
        assert_eq!(t["len"], info.vocab_size as u64, "{name}");
        for (s, row) in SENTENCES.iter().zip(t["rows"].as_array().unwrap()) {
            let mut ids = vec![101];
            ids.extend(ours.encode(s).unwrap());
            ids.push(info.sep_token_id);
            let theirs: Vec<i64> = serde_json::from_value(row["ids"].clone()).unwrap();
            assert_eq!(theirs, ids, "{name}: ids of {s:?}");
            assert!(
                !ids.contains(&100),
                "{s:?} has an [UNK]: every lowercase ASCII word must tokenize"
            );
            let text = ours.decode(&ids).unwrap();
            assert_eq!(row["text"], text.as_str(), "{name}: decode of {s:?}");
        }
    }
    assert_eq!(v["auto"]["class"], "BertTokenizer");
    // Unseen and rare words come back whole (lowercased, accents stripped).
    let texts: Vec<&str> = v["auto"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts[2], "a zebra next to the yellow square");
    assert_eq!(texts[4], "un cafe naive & 42 dots");
}
