//! The checkpoint's WordPiece tokenizer (`tokenizer.json`, or `vocab.txt` as a fallback).

use std::path::Path;

use tokenizers::Tokenizer;

use capstream::error::{Error, Result};

/// Encodes prompts and decodes captions.
pub struct BlipTokenizer {
    inner: Tokenizer,
}

impl std::fmt::Debug for BlipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BlipTokenizer({} tokens)",
            self.inner.get_vocab_size(true)
        )
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: format!("tokenizer: {e}"),
    }
}

impl BlipTokenizer {
    /// Loads `tokenizer.json` from `dir`, or builds a lowercasing BERT WordPiece
    /// tokenizer from `vocab.txt`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            let inner = Tokenizer::from_file(&json).map_err(|e| tok_err(&json, e))?;
            return Ok(BlipTokenizer { inner });
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.is_file() {
            return Err(tok_err(dir, "no tokenizer.json or vocab.txt"));
        }
        use tokenizers::models::wordpiece::WordPiece;
        use tokenizers::normalizers::BertNormalizer;
        use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
        let model = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| tok_err(&vocab, e))?;
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
        Ok(BlipTokenizer { inner })
    }

    /// Word pieces of `text` without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(Path::new("tokenizer"), e))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Text of `ids`, special tokens skipped, as transformers' `decode(...,
    /// skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, true)
            .map_err(|e| tok_err(Path::new("tokenizer"), e))
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }
}
