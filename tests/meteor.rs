//! NLTK METEOR parity (`tests/fixtures/metrics/make_meteor_goldens.py`, nltk 3.10.4 on
//! Debian's WordNet 3.0): every golden caption set within 1e-6 (overall and per
//! reference), Porter stems identical, `_morphy`, `synsets` and METEOR's synonym sets
//! identical. Needs `/usr/share/wordnet` (Debian `wordnet-base`) or `$WNSEARCHDIR`.
//!
//! `METEOR_BENCH=/tmp/meteor_bench.json cargo test --release meteor_speed -- --ignored
//! --nocapture` times the Rust port on the set the script's `--bench` wrote and timed
//! NLTK on.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use capstream::metrics::caption::meteor::{porter_stem, Meteor};
use capstream::metrics::caption::wordnet::{Pos, WordNet};
use serde_json::Value;

use crate::util::repo;

fn wordnet() -> Arc<WordNet> {
    static WN: OnceLock<Arc<WordNet>> = OnceLock::new();
    WN.get_or_init(|| Arc::new(WordNet::open_default().expect("WordNet")))
        .clone()
}

fn golden(name: &str) -> Value {
    let path = repo().join("tests/fixtures/metrics").join(name);
    let text = std::fs::read_to_string(&path).expect("golden file");
    let value: Value = serde_json::from_str(&text).expect("golden json");
    assert_eq!(value["versions"]["nltk"], "3.10.4");
    value
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// The goldens hold scores as Python `repr` strings: exact, unlike serde_json's
/// default float parsing, which can be an ulp off.
fn score(v: &Value) -> f64 {
    v.as_str().expect("score string").parse().expect("score")
}

#[test]
fn meteor_matches_nltk_on_every_golden_set() {
    let meteor = Meteor::new(wordnet());
    let sets = golden("meteor_goldens.json");
    let sets = sets["sets"].as_array().expect("sets");
    assert!(sets.len() >= 200);
    let mut worst = 0f64;
    for (k, set) in sets.iter().enumerate() {
        let refs: Vec<Vec<String>> = set["refs"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        let hyp = strings(&set["hyp"]);
        let expected = score(&set["score"]);
        let ours = meteor.score(&refs, &hyp);
        worst = worst.max((ours - expected).abs());
        assert!(
            (ours - expected).abs() <= 1e-6,
            "set {k}: {ours} vs NLTK {expected}\n refs {refs:?}\n hyp {hyp:?}"
        );
        for (r, per_ref) in refs.iter().zip(set["per_ref"].as_array().unwrap()) {
            let expected = score(per_ref);
            let ours = meteor.single_score(r, &hyp);
            worst = worst.max((ours - expected).abs());
            assert!(
                (ours - expected).abs() <= 1e-6,
                "set {k}: single {ours} vs NLTK {expected}\n ref {r:?}\n hyp {hyp:?}"
            );
        }
    }
    eprintln!("METEOR: {} sets, max |diff| {worst:e}", sets.len());
}

#[test]
fn porter_stems_match_nltk() {
    let golden = golden("porter_goldens.json");
    let pairs = golden["stems"].as_array().expect("stems");
    assert!(pairs.len() >= 2000);
    let wrong: Vec<String> = pairs
        .iter()
        .filter_map(|p| {
            let (word, expected) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
            let ours = porter_stem(word);
            (ours != expected).then(|| format!("{word:?}: {ours:?} vs NLTK {expected:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} stems differ:\n{}",
        wrong.len(),
        pairs.len(),
        wrong.join("\n")
    );
}

#[test]
fn morphy_synsets_and_synonyms_match_nltk() {
    let wn = wordnet();
    let golden = golden("wordnet_goldens.json");
    let entries = golden["words"].as_array().expect("words");
    assert!(entries.len() >= 200);
    for e in entries {
        let word = e["word"].as_str().unwrap();
        let lower = word.to_lowercase();
        for pos in Pos::ALL {
            let expected = strings(&e["morphy"][pos.tag().to_string()]);
            assert_eq!(
                wn.morphy(&lower, pos),
                expected,
                "morphy({word:?}, {pos:?})"
            );
        }
        let synsets: Vec<(String, u64)> = wn
            .synsets(word)
            .iter()
            .map(|s| (s.pos.to_string(), u64::from(s.offset)))
            .collect();
        let expected: Vec<(String, u64)> = e["synsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s[0].as_str().unwrap().to_string(), s[1].as_u64().unwrap()))
            .collect();
        assert_eq!(synsets, expected, "synsets({word:?})");
        assert_eq!(
            wn.synonyms(word),
            strings(&e["synonyms"]),
            "synonyms({word:?})"
        );
    }
}

#[test]
fn worked_examples_from_the_reference() {
    let meteor = Meteor::new(wordnet());
    let toks = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let img1 = meteor.score(
        &[
            toks("a man is riding a horse"),
            toks("a person rides a brown horse on the beach"),
            toks("man riding horse"),
        ],
        &toks("a man riding a horse on the beach"),
    );
    assert_eq!(img1, 0.7806451612903227);
    let img2 = meteor.score(
        &[
            toks("two dogs play in the snow"),
            toks("dogs playing in snow"),
        ],
        &toks("two dogs are playing in the snow"),
    );
    assert_eq!(img2, 0.9653916211293262);
    assert_eq!(meteor.score(&[], &toks("a dog")), 0.0);
    assert_eq!(
        meteor.single_score(&toks("a car"), &toks("an automobile")),
        0.0
    );
}

#[test]
fn a_missing_wordnet_is_a_clear_error() {
    let err = WordNet::open("/no/such/wordnet").unwrap_err().to_string();
    assert!(
        err.contains("/no/such/wordnet") && err.contains("wordnet-base"),
        "{err}"
    );
}

#[test]
#[ignore = "benchmark: needs METEOR_BENCH from make_meteor_goldens.py --bench"]
fn meteor_speed() {
    let path = std::env::var("METEOR_BENCH").expect("METEOR_BENCH=path to the bench json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let items: Vec<(Vec<Vec<String>>, Vec<String>, f64)> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            let refs = it["refs"].as_array().unwrap().iter().map(strings).collect();
            (refs, strings(&it["hyp"]), it["score"].as_f64().unwrap())
        })
        .collect();
    let t = Instant::now();
    let wn = WordNet::open_default().unwrap();
    let load = t.elapsed().as_secs_f64();
    let meteor = Meteor::new(wn);
    let t = Instant::now();
    let cold: Vec<f64> = items.iter().map(|(r, h, _)| meteor.score(r, h)).collect();
    let cold_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let warm: Vec<f64> = items.iter().map(|(r, h, _)| meteor.score(r, h)).collect();
    let warm_s = t.elapsed().as_secs_f64();
    for ((c, w), (_, _, expected)) in cold.iter().zip(&warm).zip(&items) {
        assert!((c - expected).abs() <= 1e-6 && c == w);
    }
    let nltk = data["nltk_seconds"].as_f64().unwrap();
    eprintln!(
        "{} items: WordNet load {load:.3} s; score cold {cold_s:.3} s ({:.0}x NLTK's {nltk:.3} s), \
         warm {warm_s:.3} s ({:.0}x)",
        items.len(),
        nltk / cold_s,
        nltk / warm_s
    );
}
