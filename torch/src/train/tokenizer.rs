//! A BLIP/BERT WordPiece tokenizer folder built from a caption corpus.
//!
//! Training a small BLIP from a config (no pretrained checkpoint) needs a vocabulary for
//! its captions. This module owns building that vocabulary and writing the tokenizer
//! files of a checkpoint folder so that both capstream
//! ([`BlipTokenizer`](crate::models::blip::BlipTokenizer)) and transformers
//! (`AutoTokenizer.from_pretrained`, `BlipProcessor`) load it:
//!
//! - `tokenizer.json`: WordPiece (`[UNK]`, `##`), `BertNormalizer` (lowercase, which also
//!   strips accents), `BertPreTokenizer`, `[CLS] $A [SEP]` post-processing, WordPiece
//!   decoder, the seven specials as added tokens;
//! - `vocab.txt`, one token per line;
//! - `tokenizer_config.json` as transformers 5.24 writes it for a `BlipProcessor`
//!   (`BertTokenizer`, bos `[DEC]`, extra special `[ENC]`), and the legacy
//!   `special_tokens_map.json` that transformers 4.x reads.
//!
//! The layout is the one of `tests/fixtures/blip/make_fixtures.py`: `[PAD]` = 0,
//! `[unused0]`..`[unused98]`, `[UNK]` = 100, `[CLS]` = 101, `[SEP]` = 102, `[MASK]` = 103,
//! the single printable ASCII characters, the corpus words (as BERT's basic tokenizer
//! splits them; count >= `min_count`; by descending count, then alphabetically), `##c`
//! for every `c` in `0-9a-z` (so any unseen lowercase ASCII word still tokenizes), then
//! `[DEC]` (BLIP's bos) and `[ENC]` last. The output depends only on the captions and
//! `min_count`: the same inputs give the same bytes.
//!
//! It does not train subwords beyond single characters, and does not touch model weights.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Tokenizer,
};

use capstream::error::{Error, Result};

const PAD: &str = "[PAD]";
const UNK: &str = "[UNK]";
const CLS: &str = "[CLS]";
const SEP: &str = "[SEP]";
const MASK: &str = "[MASK]";
const DEC: &str = "[DEC]";
const ENC: &str = "[ENC]";

/// Single characters after `[MASK]`: `CHARS` of `make_fixtures.py` (printable ASCII
/// without space and upper case).
const CHARS: &str = "!\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
/// Characters that get a `##c` continuation piece.
const CONT_CHARS: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
/// WordPiece maps longer words to `[UNK]` without looking them up (transformers' default).
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// What a trainer needs to know about the written tokenizer.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizerInfo {
    /// Tokens in `vocab.txt` (the text model's `vocab_size`).
    pub vocab_size: usize,
    /// `[DEC]`, BLIP's bos: the first decoder input.
    pub bos_token_id: i64,
    /// `[PAD]`.
    pub pad_token_id: i64,
    /// `[SEP]`, on which generation stops.
    pub sep_token_id: i64,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: format!("tokenizer: {e}"),
    }
}

fn normalizer() -> BertNormalizer {
    BertNormalizer::new(true, true, None, true)
}

/// The words of `caption` as BERT's basic tokenizer gives them: cleaned, lowercased
/// (accents stripped), split on whitespace and around every punctuation character.
fn words(caption: &str, out: &mut impl FnMut(&str)) -> Result<()> {
    let norm = normalizer();
    let mut n = NormalizedString::from(caption);
    norm.normalize(&mut n)
        .map_err(|e| Error::Config(format!("normalizing caption {caption:?}: {e}")))?;
    let mut pre = PreTokenizedString::from(n);
    BertPreTokenizer
        .pre_tokenize(&mut pre)
        .map_err(|e| Error::Config(format!("splitting caption {caption:?}: {e}")))?;
    for (w, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        if !w.is_empty() {
            out(w);
        }
    }
    Ok(())
}

/// The vocabulary in id order.
fn build_vocab<'a>(
    captions: impl IntoIterator<Item = &'a str>,
    min_count: usize,
) -> Result<Vec<String>> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for caption in captions {
        words(caption, &mut |w| {
            *counts.entry(w.to_string()).or_insert(0) += 1
        })?;
    }
    let mut vocab: Vec<String> = vec![PAD.to_string()];
    vocab.extend((0..99).map(|i| format!("[unused{i}]")));
    vocab.extend([UNK, CLS, SEP, MASK].map(String::from));
    let mut seen: HashSet<String> = vocab.iter().cloned().collect();
    let mut push = |vocab: &mut Vec<String>, t: String| {
        if seen.insert(t.clone()) {
            vocab.push(t);
        }
    };
    for c in CHARS.chars() {
        push(&mut vocab, c.to_string());
    }
    let mut corpus: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|(w, n)| *n >= min_count && w.chars().count() <= MAX_INPUT_CHARS_PER_WORD)
        .collect();
    corpus.sort_by(|(wa, na), (wb, nb)| nb.cmp(na).then_with(|| wa.cmp(wb)));
    for (w, _) in corpus {
        push(&mut vocab, w);
    }
    for c in CONT_CHARS.chars() {
        push(&mut vocab, format!("##{c}"));
    }
    // The corpus cannot produce bracketed tokens (`[` and `]` are punctuation), so [DEC]
    // and [ENC] are always new and last.
    vocab.extend([DEC, ENC].map(String::from));
    Ok(vocab)
}

/// `vocab.txt`: one token per line.
fn vocab_text(vocab: &[String]) -> String {
    vocab.iter().map(|t| format!("{t}\n")).collect()
}

fn tokenizer(vocab: &[String], out_dir: &Path) -> Result<Tokenizer> {
    let ids: HashMap<String, u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let id = |t: &str| -> Result<u32> {
        ids.get(t)
            .copied()
            .ok_or_else(|| tok_err(out_dir, format!("{t} missing from the vocabulary")))
    };
    // `vocab.txt` read back: the builder wants the crate's own map type.
    let text = vocab_text(vocab);
    let map = WordPiece::read_bytes(text.as_bytes()).map_err(|e| tok_err(out_dir, e))?;
    if map.len() != vocab.len() {
        return Err(tok_err(out_dir, "duplicate tokens in the vocabulary"));
    }
    let model = WordPiece::builder()
        .vocab(map)
        .unk_token(UNK.to_string())
        .continuing_subword_prefix("##".to_string())
        .max_input_chars_per_word(MAX_INPUT_CHARS_PER_WORD)
        .build()
        .map_err(|e| tok_err(out_dir, e))?;
    let post = TemplateProcessing::builder()
        .try_single(format!("{CLS} $A {SEP}"))
        .map_err(|e| tok_err(out_dir, e))?
        .try_pair(format!("{CLS} $A {SEP} $B:1 {SEP}:1"))
        .map_err(|e| tok_err(out_dir, e))?
        .special_tokens(vec![(CLS, id(CLS)?), (SEP, id(SEP)?)])
        .build()
        .map_err(|e| tok_err(out_dir, e))?;
    let mut tk = Tokenizer::new(model);
    tk.with_normalizer(Some(normalizer()));
    tk.with_pre_tokenizer(Some(BertPreTokenizer));
    tk.with_post_processor(Some(post));
    tk.with_decoder(Some(WordPieceDecoder::new("##".to_string(), true)));
    let specials: Vec<AddedToken> = [PAD, UNK, CLS, SEP, MASK, DEC, ENC]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tk.add_special_tokens(&specials);
    Ok(tk)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write(path, &text)
}

/// Builds the vocabulary of `captions` (words seen at least `min_count` times) and writes
/// `tokenizer.json`, `vocab.txt`, `tokenizer_config.json` and `special_tokens_map.json`
/// into `out_dir` (created if missing).
pub fn build_caption_tokenizer<'a>(
    captions: impl IntoIterator<Item = &'a str>,
    min_count: usize,
    out_dir: &Path,
) -> Result<TokenizerInfo> {
    let vocab = build_vocab(captions, min_count)?;
    let tk = tokenizer(&vocab, out_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;

    let json_path = out_dir.join("tokenizer.json");
    let text = tk.to_string(true).map_err(|e| tok_err(&json_path, e))?;
    write(&json_path, &text)?;
    write(&out_dir.join("vocab.txt"), &vocab_text(&vocab))?;
    // Keys in the (sorted) order transformers 5.24 writes them.
    let config = json!({
        "backend": "tokenizers",
        "bos_token": DEC,
        "cls_token": CLS,
        "do_lower_case": true,
        "extra_special_tokens": [ENC],
        "mask_token": MASK,
        "model_max_length": 512,
        "pad_token": PAD,
        "processor_class": "BlipProcessor",
        "sep_token": SEP,
        "strip_accents": null,
        "tokenize_chinese_chars": true,
        "tokenizer_class": "BertTokenizer",
        "unk_token": UNK,
    });
    write_json(&out_dir.join("tokenizer_config.json"), &config)?;
    let map = json!({
        "additional_special_tokens": [ENC],
        "bos_token": DEC,
        "cls_token": CLS,
        "mask_token": MASK,
        "pad_token": PAD,
        "sep_token": SEP,
        "unk_token": UNK,
    });
    write_json(&out_dir.join("special_tokens_map.json"), &map)?;

    let index = |t: &str| -> Result<i64> {
        vocab
            .iter()
            .position(|v| v == t)
            .map(|i| i as i64)
            .ok_or_else(|| tok_err(out_dir, format!("{t} missing from the vocabulary")))
    };
    Ok(TokenizerInfo {
        vocab_size: vocab.len(),
        bos_token_id: index(DEC)?,
        pad_token_id: index(PAD)?,
        sep_token_id: index(SEP)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::blip::BlipTokenizer;

    const CAPTIONS: &[&str] = &[
        "A red circle on a blue background.",
        "a red circle and a yellow square",
        "Two green triangles, above a red dot!",
        "a zebra",
        "the yellow square is next to the red circle",
    ];

    fn vocab_of(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("vocab.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn special_ids_follow_the_bert_layout() {
        let dir = tempfile::tempdir().unwrap();
        let info = build_caption_tokenizer(CAPTIONS.iter().copied(), 1, dir.path()).unwrap();
        let vocab = vocab_of(dir.path());
        assert_eq!(info.vocab_size, vocab.len());
        assert_eq!((info.pad_token_id, info.sep_token_id), (0, 102));
        assert_eq!(info.bos_token_id as usize, vocab.len() - 2);
        let tok = BlipTokenizer::from_dir(dir.path()).unwrap();
        for (t, id) in [
            ("[PAD]", 0),
            ("[unused0]", 1),
            ("[unused98]", 99),
            ("[UNK]", 100),
            ("[CLS]", 101),
            ("[SEP]", 102),
            ("[MASK]", 103),
            ("!", 104),
        ] {
            assert_eq!(tok.token_id(t), Some(id), "{t}");
            assert_eq!(vocab[id as usize], t);
        }
        assert_eq!(tok.token_id("[DEC]"), Some(info.bos_token_id));
        assert_eq!(tok.token_id("[ENC]"), Some(vocab.len() as i64 - 1));
        assert_eq!(vocab[vocab.len() - 3], "##z");
        // Corpus words right after the characters: most frequent first, ties alphabetical.
        let first_word = 104 + CHARS.chars().count();
        assert_eq!(
            &vocab[first_word..first_word + 4],
            ["red", "circle", "square", "the"]
        );
    }

    #[test]
    fn known_sentence_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        build_caption_tokenizer(CAPTIONS.iter().copied(), 1, dir.path()).unwrap();
        let vocab = vocab_of(dir.path());
        let id = |t: &str| vocab.iter().position(|v| v == t).unwrap() as i64;
        let tok = BlipTokenizer::from_dir(dir.path()).unwrap();
        let ids = tok.encode("A Red circle, next to the Zebra!").unwrap();
        let expected: Vec<i64> = ["a", "red", "circle", ",", "next", "to", "the", "zebra", "!"]
            .iter()
            .map(|t| id(t))
            .collect();
        assert_eq!(ids, expected);
        assert_eq!(
            tok.decode(&ids).unwrap(),
            "a red circle, next to the zebra!"
        );
        // An unseen word falls back to single characters.
        let ids = tok.encode("cat").unwrap();
        assert_eq!(ids, vec![id("c"), id("##a"), id("##t")]);
        assert_eq!(tok.decode(&ids).unwrap(), "cat");
        // Specials are skipped when decoding.
        let mut with_specials = vec![id("[DEC]")];
        with_specials.extend(tok.encode("a red dot").unwrap());
        with_specials.push(102);
        assert_eq!(tok.decode(&with_specials).unwrap(), "a red dot");
    }

    #[test]
    fn rare_words_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        build_caption_tokenizer(CAPTIONS.iter().copied(), 2, dir.path()).unwrap();
        let vocab = vocab_of(dir.path());
        let has = |t: &str| vocab.iter().any(|v| v == t);
        for w in ["red", "circle", "yellow", "square", "the"] {
            assert!(has(w), "{w} (seen at least twice) is missing");
        }
        for w in ["zebra", "triangles", "background", "blue", "two"] {
            assert!(!has(w), "{w} (seen once) is in the vocabulary");
        }
        let tok = BlipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(
            tok.decode(&tok.encode("a zebra").unwrap()).unwrap(),
            "a zebra"
        );
    }

    #[test]
    fn output_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        build_caption_tokenizer(CAPTIONS.iter().copied(), 1, a.path()).unwrap();
        build_caption_tokenizer(CAPTIONS.iter().rev().copied(), 1, b.path()).unwrap();
        for f in [
            "tokenizer.json",
            "vocab.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            let x = std::fs::read(a.path().join(f)).unwrap();
            let y = std::fs::read(b.path().join(f)).unwrap();
            assert!(x == y, "{f} differs between two builds");
        }
    }
}
