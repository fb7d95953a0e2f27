//! BLEU as pycocoevalcap's `Bleu(4)` computes it, and NLTK 3.10's `corpus_bleu` /
//! `sentence_bleu` with its eight `SmoothingFunction` methods.
//!
//! This module owns the n-gram counting shared by the caption metrics (token interning,
//! packed n-gram keys, clipped counts); CIDEr-D uses it too. It takes token lists (what
//! [`super::ptb::tokenize`] returns, or any pre-tokenized text) and must not tokenize,
//! lowercase or do I/O. Definitions and quirks follow `shared/reference/metrics.md` §1a
//! and §1b; parity is tested against `tests/fixtures/metrics/goldens.json`.
//!
//! # pycocoevalcap
//! Corpus BLEU-1..4 sums clipped n-gram matches, n-gram counts, hypothesis lengths and
//! "closest" reference lengths (ties to the shorter reference) over the corpus. Its
//! `small = 1e-9` and `tiny = 1e-15` guards are kept, so a zero count gives a tiny
//! positive score and an exact match scores slightly below 1, as in the Python.
//!
//! # NLTK
//! Micro-averaged modified precisions, brevity penalty `exp(1 − r/c)`, uniform weights
//! by default, and the smoothing methods with NLTK's quirks: on a corpus, methods 4–7
//! see the *last* segment and the *total* hypothesis length (metrics.md §1b).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Why a corpus cannot be scored; the Python references fail on these with an
/// assertion or an exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorpusError {
    /// Candidates and reference lists do not pair up.
    #[error("{candidates} candidates but {references} reference lists")]
    LengthMismatch {
        /// Number of candidates (hypotheses).
        candidates: usize,
        /// Number of reference lists.
        references: usize,
    },
    /// An item has no reference; every scorer needs at least one.
    #[error("item {index} has no references")]
    NoReferences {
        /// Position of the item in the corpus.
        index: usize,
    },
    /// More weights than the four n-gram orders this module counts.
    #[error("{0} weights; at most 4 n-gram orders are supported")]
    TooManyOrders(usize),
    /// NLTK's smoothing method 6 asserts a non-zero trigram precision.
    #[error("smoothing method 6 needs a non-zero trigram precision")]
    ZeroTrigramPrecision,
}

/// Checks the shape every corpus-level scorer needs.
pub(crate) fn check_corpus<C, R>(
    candidates: &[C],
    references: &[Vec<R>],
) -> Result<(), CorpusError> {
    if candidates.len() != references.len() {
        return Err(CorpusError::LengthMismatch {
            candidates: candidates.len(),
            references: references.len(),
        });
    }
    match references.iter().position(Vec::is_empty) {
        Some(index) => Err(CorpusError::NoReferences { index }),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Shared n-gram machinery.

/// FxHash (rustc's hasher) with a final rotation, so that the low bits hashbrown uses
/// for buckets depend on the whole key. Keys are our own ids, so HashDoS is moot.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// Hash-map builder for [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// Maps token strings to dense ids so that n-grams become integers.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    ids: HashMap<&'a str, u32, FxBuild>,
}

impl<'a> Interner<'a> {
    /// Ids of `tokens`, appended to `out` (cleared first).
    pub(crate) fn ids_into<T: AsRef<str>>(&mut self, tokens: &'a [T], out: &mut Vec<u32>) {
        out.clear();
        for token in tokens {
            let next = self.ids.len() as u32;
            out.push(*self.ids.entry(token.as_ref()).or_insert(next));
        }
    }
}

/// Largest n-gram order a packed key holds.
pub(crate) const MAX_ORDER: usize = 4;

/// Packs up to four token ids into one key: lane `i` (32 bits) holds `id + 1`, so the
/// order is the number of non-zero lanes and keys of different orders never collide.
#[inline]
pub(crate) fn ngram_key(ids: &[u32]) -> u128 {
    debug_assert!(ids.len() <= MAX_ORDER);
    let mut key = 0u128;
    for (lane, &id) in ids.iter().enumerate() {
        key |= u128::from(id + 1) << (32 * lane);
    }
    key
}

/// Order (1..=4) of a packed key.
#[inline]
pub(crate) fn key_order(key: u128) -> usize {
    (128 - key.leading_zeros() as usize).div_ceil(32)
}

/// Counts of the n-grams of orders `1..=max_n` (at most 4) of `ids`, sorted by key.
pub(crate) fn sorted_counts(ids: &[u32], max_n: usize, out: &mut Vec<(u128, u32)>) {
    out.clear();
    for n in 1..=max_n.min(MAX_ORDER) {
        for window in ids.windows(n) {
            out.push((ngram_key(window), 1));
        }
    }
    out.sort_unstable_by_key(|&(key, _)| key);
    out.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}

/// Per-key maximum count over several sorted count lists (`cook_refs`' `maxcounts`).
fn max_counts(lists: &[Vec<(u128, u32)>], out: &mut Vec<(u128, u32)>) {
    out.clear();
    for list in lists {
        out.extend_from_slice(list);
    }
    out.sort_unstable_by_key(|&(key, _)| key);
    out.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.max(next.1);
            true
        } else {
            false
        }
    });
}

/// Clipped matches per order: Σ min(count, max reference count) over the candidate's
/// n-grams, indexed by order − 1.
fn clipped_matches(candidate: &[(u128, u32)], ref_max: &[(u128, u32)]) -> [u64; MAX_ORDER] {
    let mut correct = [0u64; MAX_ORDER];
    for &(key, count) in candidate {
        if let Ok(at) = ref_max.binary_search_by_key(&key, |&(k, _)| k) {
            correct[key_order(key) - 1] += u64::from(count.min(ref_max[at].1));
        }
    }
    correct
}

/// The counts one segment contributes: clipped matches and n-gram totals per order,
/// hypothesis length and every reference length.
struct Segment {
    correct: [u64; MAX_ORDER],
    total: [u64; MAX_ORDER],
    hyp_len: usize,
    ref_lens: Vec<usize>,
}

/// Scratch buffers reused across segments, so the hot loop does not allocate.
#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    cand: Vec<(u128, u32)>,
    refs: Vec<Vec<(u128, u32)>>,
    ref_max: Vec<(u128, u32)>,
}

impl Scratch {
    fn segment<'a, T: AsRef<str>>(
        &mut self,
        interner: &mut Interner<'a>,
        candidate: &'a [T],
        references: &'a [Vec<T>],
        max_n: usize,
    ) -> Segment {
        if self.refs.len() < references.len() {
            self.refs.resize_with(references.len(), Vec::new);
        }
        let mut ref_lens = Vec::with_capacity(references.len());
        for (reference, counts) in references.iter().zip(self.refs.iter_mut()) {
            interner.ids_into(reference, &mut self.ids);
            sorted_counts(&self.ids, max_n, counts);
            ref_lens.push(reference.len());
        }
        max_counts(&self.refs[..references.len()], &mut self.ref_max);
        interner.ids_into(candidate, &mut self.ids);
        sorted_counts(&self.ids, max_n, &mut self.cand);
        let correct = clipped_matches(&self.cand, &self.ref_max);
        let hyp_len = candidate.len();
        let mut total = [0u64; MAX_ORDER];
        for (n, slot) in total.iter_mut().enumerate().take(max_n.min(MAX_ORDER)) {
            *slot = (hyp_len.saturating_sub(n)) as u64;
        }
        Segment {
            correct,
            total,
            hyp_len,
            ref_lens,
        }
    }
}

/// The reference length closest to `hyp_len`, ties going to the shorter one (both
/// pycocoevalcap's `min((abs(l-L), l))` and NLTK's `closest_ref_length`).
fn closest_ref_len(ref_lens: &[usize], hyp_len: usize) -> usize {
    ref_lens
        .iter()
        .copied()
        .min_by_key(|&len| (len.abs_diff(hyp_len), len))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// pycocoevalcap.

/// pycocoevalcap's `Bleu(4).compute_score`: corpus BLEU-1..4 and the per-image list.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoBleu {
    /// Corpus BLEU-1..4 (`score` in the Python).
    pub corpus: [f64; 4],
    /// Per-item BLEU-1..4 (`scores`, transposed to one row per item).
    pub per_item: Vec<[f64; 4]>,
}

const COCO_SMALL: f64 = 1e-9;
const COCO_TINY: f64 = 1e-15;

/// BLEU-1..4 from summed counts with pycocoevalcap's guards (`compute_score`, the
/// per-sentence and the corpus formula are the same).
fn coco_formula(correct: &[u64; 4], guess: &[u64; 4], test_len: usize, ref_len: usize) -> [f64; 4] {
    let mut out = [0.0; 4];
    let mut bleu = 1.0f64;
    for k in 0..4 {
        bleu *= (correct[k] as f64 + COCO_TINY) / (guess[k] as f64 + COCO_SMALL);
        out[k] = bleu.powf(1.0 / (k as f64 + 1.0));
    }
    let ratio = (test_len as f64 + COCO_TINY) / (ref_len as f64 + COCO_SMALL);
    if ratio < 1.0 {
        let penalty = (1.0 - 1.0 / ratio).exp();
        for value in &mut out {
            *value *= penalty;
        }
    }
    out
}

/// pycocoevalcap `Bleu(4)` on tokenized candidates (one per item) and references.
///
/// Tokens are compared as strings, exactly; pass PTB-tokenized text for COCO numbers.
pub fn coco_bleu<T: AsRef<str>>(
    candidates: &[Vec<T>],
    references: &[Vec<Vec<T>>],
) -> Result<CocoBleu, CorpusError> {
    check_corpus(candidates, references)?;
    let mut interner = Interner::default();
    let mut scratch = Scratch::default();
    let mut per_item = Vec::with_capacity(candidates.len());
    let (mut correct, mut guess) = ([0u64; 4], [0u64; 4]);
    let (mut test_len, mut ref_len) = (0usize, 0usize);
    for (candidate, refs) in candidates.iter().zip(references) {
        let seg = scratch.segment(&mut interner, candidate, refs, 4);
        let closest = closest_ref_len(&seg.ref_lens, seg.hyp_len);
        per_item.push(coco_formula(&seg.correct, &seg.total, seg.hyp_len, closest));
        for k in 0..4 {
            correct[k] += seg.correct[k];
            guess[k] += seg.total[k];
        }
        test_len += seg.hyp_len;
        ref_len += closest;
    }
    Ok(CocoBleu {
        corpus: coco_formula(&correct, &guess, test_len, ref_len),
        per_item,
    })
}

// ---------------------------------------------------------------------------------------
// NLTK.

/// NLTK's default weights, `(0.25,) * 4`.
pub const NLTK_DEFAULT_WEIGHTS: [f64; 4] = [0.25; 4];

/// NLTK 3.10 `SmoothingFunction` methods, with its parameters (defaults: ε = 0.1,
/// k = 5, α = 5; see [`Smoothing::nltk_default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    /// No smoothing: a zero precision becomes `sys.float_info.min` (score ≈ 0, not 0).
    Method0,
    /// Zero numerators become `epsilon`.
    Method1 {
        /// Added to zero counts (NLTK: 0.1).
        epsilon: f64,
    },
    /// Add one to numerator and denominator for orders ≥ 2.
    Method2,
    /// NIST geometric: the i-th zero order gets `1 / (2^i · denominator)`.
    Method3,
    /// Zero orders get `1 / (2^i · k / ln(hyp_len)) / denominator` when `hyp_len > 1`.
    Method4 {
        /// NLTK: 5.
        k: f64,
    },
    /// Averages neighbouring orders, with an extra 5-gram precision.
    Method5,
    /// Interpolates with the prior `p_{n-1}² / p_{n-2}` for orders ≥ 3.
    Method6 {
        /// NLTK: 5.
        alpha: f64,
    },
    /// Method 4, then method 5.
    Method7 {
        /// NLTK: 5.
        k: f64,
    },
}

impl Smoothing {
    /// `SmoothingFunction().method{n}` with NLTK's default parameters, for `n` in 0..=7.
    pub fn nltk_default(n: u8) -> Option<Smoothing> {
        Some(match n {
            0 => Smoothing::Method0,
            1 => Smoothing::Method1 { epsilon: 0.1 },
            2 => Smoothing::Method2,
            3 => Smoothing::Method3,
            4 => Smoothing::Method4 { k: 5.0 },
            5 => Smoothing::Method5,
            6 => Smoothing::Method6 { alpha: 5.0 },
            7 => Smoothing::Method7 { k: 5.0 },
            _ => return None,
        })
    }
}

/// A precision as NLTK holds it: an unnormalised `Fraction` until smoothing turns it
/// into a float. The numerator and denominator matter (methods read them), not just
/// the value.
#[derive(Debug, Clone, Copy)]
enum Precision {
    Fraction { num: u64, den: u64 },
    Float(f64),
}

impl Precision {
    fn value(self) -> f64 {
        match self {
            Precision::Fraction { num, den } => num as f64 / den as f64,
            Precision::Float(v) => v,
        }
    }
    fn is_zero_fraction(self) -> bool {
        matches!(self, Precision::Fraction { num: 0, .. })
    }
}

/// NLTK `method4` (in place).
fn nltk_method4(p_n: &mut [Precision], k: f64, hyp_len: usize) {
    let mut incvnt = 1i32;
    for p in p_n.iter_mut() {
        if let Precision::Fraction { num: 0, den } = *p {
            if hyp_len > 1 {
                let numerator = 1.0 / (2f64.powi(incvnt) * k / (hyp_len as f64).ln());
                *p = Precision::Float(numerator / den as f64);
                incvnt += 1;
            }
        }
    }
}

/// NLTK `method5` (in place); `p5` is the last segment's 5-gram precision.
fn nltk_method5(p_n: &mut [Precision], p5: f64) {
    let original: Vec<f64> = p_n.iter().map(|p| p.value()).collect();
    let mut previous = original.first().copied().unwrap_or(0.0) + 1.0;
    for i in 0..p_n.len() {
        let next = original.get(i + 1).copied().unwrap_or(p5);
        let value = (previous + original[i] + next) / 3.0;
        p_n[i] = Precision::Float(value);
        previous = value;
    }
}

/// NLTK `corpus_bleu(list_of_references, hypotheses, weights, smoothing, auto_reweigh)`
/// for one weight vector (its length is the largest n-gram order, at most 4).
///
/// Returns 0 when no unigram matches (NLTK returns the integer 0), and
/// [`CorpusError::ZeroTrigramPrecision`] where NLTK's method 6 asserts.
pub fn nltk_corpus_bleu<T: AsRef<str>>(
    list_of_references: &[Vec<Vec<T>>],
    hypotheses: &[Vec<T>],
    weights: &[f64],
    smoothing: Smoothing,
    auto_reweigh: bool,
) -> Result<f64, CorpusError> {
    check_corpus(hypotheses, list_of_references)?;
    if weights.len() > MAX_ORDER {
        return Err(CorpusError::TooManyOrders(weights.len()));
    }
    let max_n = weights.len();
    let mut interner = Interner::default();
    let mut scratch = Scratch::default();
    let (mut numerators, mut denominators) = ([0u64; MAX_ORDER], [0u64; MAX_ORDER]);
    let (mut hyp_lengths, mut ref_lengths) = (0usize, 0usize);
    for (references, hypothesis) in list_of_references.iter().zip(hypotheses) {
        let seg = scratch.segment(&mut interner, hypothesis, references, max_n);
        for n in 0..max_n {
            numerators[n] += seg.correct[n];
            // `modified_precision`'s denominator is at least 1 per segment.
            denominators[n] += seg.total[n].max(1);
        }
        hyp_lengths += seg.hyp_len;
        ref_lengths += closest_ref_len(&seg.ref_lens, seg.hyp_len);
    }
    let bp = if hyp_lengths > ref_lengths {
        1.0
    } else if hyp_lengths == 0 {
        0.0
    } else {
        (1.0 - ref_lengths as f64 / hyp_lengths as f64).exp()
    };
    if max_n == 0 || numerators[0] == 0 {
        return Ok(0.0);
    }
    let mut p_n: Vec<Precision> = (0..max_n)
        .map(|n| Precision::Fraction {
            num: numerators[n],
            den: denominators[n],
        })
        .collect();
    // Methods 5–7 look at the last segment only (NLTK passes the loop's leftovers).
    let last = list_of_references.len() - 1;
    match smoothing {
        Smoothing::Method0 => {
            for p in p_n.iter_mut().filter(|p| p.is_zero_fraction()) {
                *p = Precision::Float(f64::MIN_POSITIVE);
            }
        }
        Smoothing::Method1 { epsilon } => {
            for p in p_n.iter_mut() {
                if let Precision::Fraction { num: 0, den } = *p {
                    *p = Precision::Float((0.0 + epsilon) / den as f64);
                }
            }
        }
        Smoothing::Method2 => {
            for p in p_n.iter_mut().skip(1) {
                if let Precision::Fraction { num, den } = *p {
                    *p = Precision::Fraction {
                        num: num + 1,
                        den: den + 1,
                    };
                }
            }
        }
        Smoothing::Method3 => {
            let mut incvnt = 1u32;
            for p in p_n.iter_mut() {
                if let Precision::Fraction { num: 0, den } = *p {
                    *p = Precision::Float(1.0 / (2f64.powi(incvnt as i32) * den as f64));
                    incvnt += 1;
                }
            }
        }
        Smoothing::Method4 { k } => nltk_method4(&mut p_n, k, hyp_lengths),
        Smoothing::Method5 => {
            let p5 = nltk_p5(&mut interner, &hypotheses[last], &list_of_references[last]);
            nltk_method5(&mut p_n, p5);
        }
        Smoothing::Method6 { alpha } => {
            if p_n.get(2).is_none_or(|p| p.is_zero_fraction()) {
                return Err(CorpusError::ZeroTrigramPrecision);
            }
            let hyp_len_last = hypotheses[last].len();
            for i in 2..p_n.len() {
                let (p2, p1) = (p_n[i - 2].value(), p_n[i - 1].value());
                let pi0 = if p2 == 0.0 { 0.0 } else { p1 * p1 / p2 };
                let m = match p_n[i] {
                    Precision::Fraction { num, .. } => num as f64,
                    Precision::Float(v) => v,
                };
                let l = hyp_len_last.saturating_sub(i) as f64;
                p_n[i] = Precision::Float((m + alpha * pi0) / (l + alpha));
            }
        }
        Smoothing::Method7 { k } => {
            nltk_method4(&mut p_n, k, hyp_lengths);
            let p5 = nltk_p5(&mut interner, &hypotheses[last], &list_of_references[last]);
            nltk_method5(&mut p_n, p5);
        }
    }
    let weights: Vec<f64> = if auto_reweigh && hyp_lengths < 4 && weights == NLTK_DEFAULT_WEIGHTS {
        vec![1.0 / hyp_lengths as f64; hyp_lengths]
    } else {
        weights.to_vec()
    };
    let mut terms = Vec::with_capacity(max_n);
    for (w, p) in weights.iter().zip(&p_n) {
        let value = p.value();
        if value > 0.0 {
            terms.push(w * value.ln());
        }
    }
    Ok(bp * fsum(&terms).exp())
}

/// NLTK `sentence_bleu(references, hypothesis, ...)`: `corpus_bleu` on one segment.
pub fn nltk_sentence_bleu<T: AsRef<str> + Clone>(
    references: &[Vec<T>],
    hypothesis: &[T],
    weights: &[f64],
    smoothing: Smoothing,
    auto_reweigh: bool,
) -> Result<f64, CorpusError> {
    nltk_corpus_bleu(
        &[references.to_vec()],
        &[hypothesis.to_vec()],
        weights,
        smoothing,
        auto_reweigh,
    )
}

/// `modified_precision(references, hypothesis, 5)` as a float (method 5's extra order).
/// Called once per corpus, so plain quadratic counting is fine.
fn nltk_p5<'a, T: AsRef<str>>(
    interner: &mut Interner<'a>,
    hypothesis: &'a [T],
    references: &'a [Vec<T>],
) -> f64 {
    let mut hyp = Vec::new();
    interner.ids_into(hypothesis, &mut hyp);
    let refs: Vec<Vec<u32>> = references
        .iter()
        .map(|r| {
            let mut ids = Vec::new();
            interner.ids_into(r, &mut ids);
            ids
        })
        .collect();
    let count = |ids: &[u32], gram: &[u32]| ids.windows(5).filter(|w| *w == gram).count() as u64;
    let mut seen: Vec<&[u32]> = Vec::new();
    let mut numerator = 0u64;
    for gram in hyp.windows(5) {
        if seen.contains(&gram) {
            continue;
        }
        seen.push(gram);
        let best = refs.iter().map(|r| count(r, gram)).max().unwrap_or(0);
        numerator += count(&hyp, gram).min(best);
    }
    numerator as f64 / hyp.len().saturating_sub(4).max(1) as f64
}

/// `math.fsum`: an exactly rounded sum (Shewchuk's partials, as CPython does).
fn fsum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &value in values {
        let mut x = value;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    partials.iter().rev().fold(0.0, |acc, &p| acc + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn keys_know_their_order() {
        assert_eq!(key_order(ngram_key(&[0])), 1);
        assert_eq!(key_order(ngram_key(&[7, 0])), 2);
        assert_eq!(key_order(ngram_key(&[0, 0, 0])), 3);
        assert_eq!(key_order(ngram_key(&[u32::MAX - 1; 4])), 4);
    }

    #[test]
    fn identical_caption_scores_just_below_one() {
        let out = coco_bleu(&[toks("a b c d e")], &[vec![toks("a b c d e")]]).unwrap();
        // metrics.md §1a: the guards keep an exact match below 1.
        assert!(
            (out.corpus[0] - 0.99999999960).abs() < 1e-11,
            "{:?}",
            out.corpus
        );
        assert!(out.corpus[3] < 1.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let none: Vec<Vec<Vec<String>>> = vec![vec![]];
        assert_eq!(
            coco_bleu(&[toks("a")], &none),
            Err(CorpusError::NoReferences { index: 0 })
        );
        assert!(matches!(
            coco_bleu(&[toks("a")], &[]),
            Err(CorpusError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn fsum_is_exact() {
        assert_eq!(fsum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(fsum(&[0.1; 10]), 1.0);
    }
}
