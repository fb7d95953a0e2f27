//! METEOR exactly as NLTK 3.10.4 computes it (`nltk.translate.meteor_score`,
//! `meteor_score` / `single_meteor_score`; `shared/reference/metrics.md` §2a).
//!
//! Owns: NLTK's alignment (exact, then Porter-stem, then WordNet-synonym matches, each
//! stage greedy from the last hypothesis word to the first, each word taking the
//! highest-index reference word still free), its chunk count, the fragmentation
//! penalty and the max over references; and the per-word caches that make it fast.
//! Must not: tokenize (NLTK 3.10 takes token lists; lowercasing is the only
//! preprocessing, as NLTK's default `preprocess=str.lower`), aggregate over a corpus
//! (NLTK has no corpus METEOR; average the sentence scores), or reproduce Java METEOR
//! 1.5 (pycocoevalcap), which differs in every stage.
//!
//! NLTK quirks kept on purpose: the synonym stage looks up the *stems* left over by the
//! stem stage and compares them with reference *stems* (so `car`/`automobile` does not
//! match: `automobile` stems to `automobil`); chunks are counted on the greedy
//! alignment, not minimised; an identical sentence never reaches 1.0.
//!
//! Speed: every distinct token is lowercased, stemmed and given its synonym set once
//! per [`Meteor`] and then held as small integer ids, so scoring is integer compares.

#[path = "porter.rs"]
mod porter;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::wordnet::WordNet;

/// NLTK's `PorterStemmer().stem(word)` (default `NLTK_EXTENSIONS` mode; lowercases).
pub fn porter_stem(word: &str) -> String {
    porter::stem(word)
}

/// METEOR's weights, NLTK's keyword arguments of the same names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeteorParams {
    /// Relative weight of precision and recall in the F-mean (NLTK: 0.9).
    pub alpha: f64,
    /// Shape of the fragmentation penalty (NLTK: 3.0).
    pub beta: f64,
    /// Weight of the fragmentation penalty (NLTK: 0.5).
    pub gamma: f64,
}

impl Default for MeteorParams {
    fn default() -> Self {
        MeteorParams {
            alpha: 0.9,
            beta: 3.0,
            gamma: 0.5,
        }
    }
}

/// A token after NLTK's preprocessing, as ids from [`Vocab::ids`].
#[derive(Clone, Copy, Debug)]
struct Token {
    /// The lowercased token (exact stage).
    word: u32,
    /// Its Porter stem (stem stage, and the synonym stage's reference side).
    stem: u32,
    /// Index into [`Vocab::synonyms`]: the stem's synonym set (synonym stage's
    /// hypothesis side).
    synonyms: u32,
}

/// The per-word caches: strings become ids once, then scoring compares integers.
#[derive(Default)]
struct Vocab {
    /// Every string seen: lowercased tokens, stems and WordNet lemma names.
    ids: HashMap<Box<str>, u32>,
    /// Raw token (before lowercasing) → its ids.
    tokens: HashMap<Box<str>, Token>,
    /// Stem id → index into `synonyms`.
    synonyms_of_stem: HashMap<u32, u32>,
    /// Sorted ids of a stem's synonyms, the stem included.
    synonyms: Vec<Box<[u32]>>,
}

impl Vocab {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(s.into(), id);
        id
    }

    fn add(&mut self, raw: &str, wordnet: &WordNet) -> Token {
        if let Some(&token) = self.tokens.get(raw) {
            return token;
        }
        // NLTK: `preprocess=str.lower` on every token, then `stemmer.stem`, which
        // lowercases again.
        let lower = raw.to_lowercase();
        let stem = porter::stem(&lower);
        let word = self.intern(&lower);
        let stem_id = self.intern(&stem);
        let synonyms = match self.synonyms_of_stem.get(&stem_id) {
            Some(&k) => k,
            None => {
                let mut ids: Vec<u32> = wordnet
                    .synonyms(&stem)
                    .iter()
                    .map(|name| self.intern(name))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let k = self.synonyms.len() as u32;
                self.synonyms.push(ids.into_boxed_slice());
                self.synonyms_of_stem.insert(stem_id, k);
                k
            }
        };
        let token = Token {
            word,
            stem: stem_id,
            synonyms,
        };
        self.tokens.insert(raw.into(), token);
        token
    }

    /// The tokens' ids, or `None` when one has not been seen yet.
    fn lookup(&self, raw: &[String], out: &mut Vec<Token>) -> bool {
        out.clear();
        for t in raw {
            match self.tokens.get(t.as_str()) {
                Some(&token) => out.push(token),
                None => return false,
            }
        }
        true
    }
}

/// NLTK's METEOR with a loaded WordNet; see the module docs. Shareable across threads
/// (`&self` scoring; the caches sit behind a read-write lock that is only written when
/// a new word appears).
pub struct Meteor {
    wordnet: Arc<WordNet>,
    params: MeteorParams,
    vocab: RwLock<Vocab>,
}

impl std::fmt::Debug for Meteor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meteor")
            .field("wordnet", &self.wordnet)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Above this many hypothesis × reference word pairs a stage indexes the reference
/// words instead of scanning them (NLTK 3.10's linear-time matching; same result).
const SCAN_LIMIT: usize = 4096;

impl Meteor {
    /// METEOR with NLTK's default weights (α 0.9, β 3, γ 0.5).
    pub fn new(wordnet: impl Into<Arc<WordNet>>) -> Meteor {
        Meteor::with_params(wordnet, MeteorParams::default())
    }

    /// METEOR with other weights.
    pub fn with_params(wordnet: impl Into<Arc<WordNet>>, params: MeteorParams) -> Meteor {
        Meteor {
            wordnet: wordnet.into(),
            params,
            vocab: RwLock::new(Vocab::default()),
        }
    }

    /// The WordNet the synonym stage uses.
    pub fn wordnet(&self) -> &WordNet {
        &self.wordnet
    }

    /// The weights.
    pub fn params(&self) -> MeteorParams {
        self.params
    }

    /// NLTK's `meteor_score(references, hypothesis)`: the best
    /// [`single_score`](Self::single_score) over the references. NLTK raises on an
    /// empty reference list; this returns 0.0.
    pub fn score(&self, references: &[Vec<String>], hypothesis: &[String]) -> f64 {
        self.with_tokens(references, hypothesis, |vocab, refs, hyp| {
            let best = refs
                .iter()
                .map(|r| self.single(vocab, r, hyp, SCAN_LIMIT))
                .fold(f64::NEG_INFINITY, f64::max);
            if refs.is_empty() {
                0.0
            } else {
                best
            }
        })
    }

    /// NLTK's `single_meteor_score(reference, hypothesis)`.
    pub fn single_score(&self, reference: &[String], hypothesis: &[String]) -> f64 {
        let references = [reference.to_vec()];
        self.with_tokens(&references, hypothesis, |vocab, refs, hyp| {
            self.single(vocab, &refs[0], hyp, SCAN_LIMIT)
        })
    }

    /// Resolves every token to ids (adding new words under the write lock), then runs
    /// `f` under the read lock.
    fn with_tokens<R>(
        &self,
        references: &[Vec<String>],
        hypothesis: &[String],
        f: impl FnOnce(&Vocab, &[Vec<Token>], &[Token]) -> R,
    ) -> R {
        let mut hyp = Vec::with_capacity(hypothesis.len());
        let mut refs: Vec<Vec<Token>> = vec![Vec::new(); references.len()];
        // A poisoned lock only means another thread panicked mid-insert of a complete
        // entry or none; the maps are still consistent, so go on.
        {
            let vocab = self.vocab.read().unwrap_or_else(PoisonError::into_inner);
            let known = vocab.lookup(hypothesis, &mut hyp)
                && references
                    .iter()
                    .zip(refs.iter_mut())
                    .all(|(r, out)| vocab.lookup(r, out));
            if known {
                return f(&vocab, &refs, &hyp);
            }
        }
        {
            let mut vocab = self.vocab.write().unwrap_or_else(PoisonError::into_inner);
            for t in hypothesis.iter().chain(references.iter().flatten()) {
                vocab.add(t, &self.wordnet);
            }
        }
        let vocab = self.vocab.read().unwrap_or_else(PoisonError::into_inner);
        let all_known = vocab.lookup(hypothesis, &mut hyp)
            && references
                .iter()
                .zip(refs.iter_mut())
                .all(|(r, out)| vocab.lookup(r, out));
        debug_assert!(all_known, "every token was just added");
        f(&vocab, &refs, &hyp)
    }

    /// `single_meteor_score` on resolved tokens.
    fn single(&self, vocab: &Vocab, reference: &[Token], hyp: &[Token], scan_limit: usize) -> f64 {
        let (m, chunks) = align(vocab, hyp, reference, scan_limit);
        // NLTK returns 0.0 on any ZeroDivisionError: an empty side or no match.
        if hyp.is_empty() || reference.is_empty() || m == 0 {
            return 0.0;
        }
        let MeteorParams { alpha, beta, gamma } = self.params;
        // Same operations in the same order as NLTK, so the floats agree to the bit.
        let precision = m as f64 / hyp.len() as f64;
        let recall = m as f64 / reference.len() as f64;
        let fmean = (precision * recall) / (alpha * precision + (1.0 - alpha) * recall);
        let frag = chunks as f64 / m as f64;
        let penalty = gamma * frag.powf(beta);
        (1.0 - penalty) * fmean
    }
}

/// `_enum_align_words` then `_count_chunks`: (number of matches, chunks).
fn align<'a>(
    vocab: &'a Vocab,
    hyp: &'a [Token],
    reference: &'a [Token],
    scan_limit: usize,
) -> (usize, usize) {
    let mut state = Alignment {
        hyp,
        reference,
        hyp_free: vec![true; hyp.len()],
        ref_free: vec![true; reference.len()],
        matches: Vec::with_capacity(hyp.len().min(reference.len())),
        indexed: hyp.len() * reference.len() > scan_limit,
    };
    // 1. Exact (lowercased) words.
    state.stage(|t| t.word, |h| std::slice::from_ref(&h.word));
    // 2. Porter stems.
    state.stage(|t| t.stem, |h| std::slice::from_ref(&h.stem));
    // 3. WordNet synonyms of the hypothesis stem (itself included) against reference
    //    stems.
    state.stage(|t| t.stem, |h| &vocab.synonyms[h.synonyms as usize]);
    let mut matches = state.matches;
    matches.sort_unstable_by_key(|&(i, _)| i);
    let chunks = 1 + matches
        .windows(2)
        .filter(|p| !(p[1].0 == p[0].0 + 1 && p[1].1 == p[0].1 + 1))
        .count();
    (matches.len(), chunks)
}

/// The words still free and the matches so far.
struct Alignment<'a> {
    hyp: &'a [Token],
    reference: &'a [Token],
    hyp_free: Vec<bool>,
    ref_free: Vec<bool>,
    matches: Vec<(usize, usize)>,
    /// Whether stages index the reference words instead of scanning them.
    indexed: bool,
}

impl<'a> Alignment<'a> {
    /// One stage of `_match_enums` / `_enum_wordnetsyn_match`: each free hypothesis
    /// word, last to first, takes the highest-index free reference word whose key
    /// (`ref_key`) is one of its `candidates` (sorted ids).
    fn stage(&mut self, ref_key: fn(&Token) -> u32, candidates: impl Fn(&'a Token) -> &'a [u32]) {
        if self.indexed {
            self.stage_indexed(ref_key, candidates);
            return;
        }
        for (i, h) in self.hyp.iter().enumerate().rev() {
            if !self.hyp_free[i] {
                continue;
            }
            let wanted = candidates(h);
            let ref_free = &self.ref_free;
            if let Some(j) = (0..self.reference.len()).rev().find(|&j| {
                ref_free[j] && wanted.binary_search(&ref_key(&self.reference[j])).is_ok()
            }) {
                self.hyp_free[i] = false;
                self.ref_free[j] = false;
                self.matches.push((i, j));
            }
        }
    }

    /// The same stage through an index of the free reference words (key → ascending
    /// positions), as NLTK 3.10 does it, so long inputs stay near linear.
    fn stage_indexed(
        &mut self,
        ref_key: fn(&Token) -> u32,
        candidates: impl Fn(&'a Token) -> &'a [u32],
    ) {
        let mut positions: HashMap<u32, Vec<usize>> = HashMap::new();
        for (j, r) in self.reference.iter().enumerate() {
            if self.ref_free[j] {
                positions.entry(ref_key(r)).or_default().push(j);
            }
        }
        for (i, h) in self.hyp.iter().enumerate().rev() {
            if !self.hyp_free[i] {
                continue;
            }
            // NLTK's `best_j`: the highest free position over all candidate keys.
            let best = candidates(h)
                .iter()
                .filter_map(|k| positions.get(k).and_then(|p| p.last()).map(|&j| (*k, j)))
                .max_by_key(|&(_, j)| j);
            if let Some((k, j)) = best {
                if let Some(p) = positions.get_mut(&k) {
                    p.pop();
                }
                self.hyp_free[i] = false;
                self.ref_free[j] = false;
                self.matches.push((i, j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexed stages (long inputs) and the scanning ones (captions) must align
    /// identically; the golden sets are short, so force the indexed path on them.
    #[test]
    fn indexed_and_scanning_alignment_agree() {
        let Ok(wordnet) = WordNet::open_default() else {
            // The integration tests report a missing WordNet; nothing to compare here.
            return;
        };
        let meteor = Meteor::new(wordnet);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/metrics/meteor_goldens.json");
        let text = std::fs::read_to_string(path).expect("meteor goldens");
        let golden: serde_json::Value = serde_json::from_str(&text).expect("json");
        let words = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        };
        let sets = golden["sets"].as_array().expect("sets");
        for set in sets {
            let hyp = words(&set["hyp"]);
            for r in set["refs"].as_array().expect("refs") {
                let r = words(r);
                let refs = [r];
                meteor.with_tokens(&refs, &hyp, |vocab, refs, hyp| {
                    let scan = meteor.single(vocab, &refs[0], hyp, usize::MAX);
                    let indexed = meteor.single(vocab, &refs[0], hyp, 0);
                    assert_eq!(scan.to_bits(), indexed.to_bits(), "{:?} / {:?}", refs, hyp);
                });
            }
        }
    }
}
